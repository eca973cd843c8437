import GatewayService
import NimbusRuntime

// Thin shell: the runtime does sockets, health, logs and lifecycle; GatewayService is the REST API.
await NodeMain.run(kind: .gateway) { configuration in GatewayNodeService(configuration: configuration) }
