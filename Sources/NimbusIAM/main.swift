import IAMService
import NimbusRuntime

// Thin shell: the runtime does sockets, health, logs and lifecycle; IAMService is IAM.
await NodeMain.run(kind: .iam) { configuration in try IAMNodeService(configuration: configuration) }
