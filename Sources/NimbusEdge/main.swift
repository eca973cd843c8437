import EdgeService
import NimbusRuntime

// Thin shell: the runtime does sockets, health, logs and lifecycle; EdgeService speaks AWS's HTTP.
await NodeMain.run(kind: .edge, configure: EdgeNodeService.configure) { configuration in try EdgeNodeService(configuration: configuration) }
