import NimbusRuntime
import QueueService

// Thin shell: the runtime does sockets, health, logs and lifecycle; QueueService is SQS.
await NodeMain.run(kind: .queue) { configuration in try QueueNodeService(configuration: configuration) }
