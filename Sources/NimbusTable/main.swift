import NimbusRuntime
import TableService

// Thin shell: the runtime does sockets, health, logs and lifecycle; TableService is DynamoDB.
await NodeMain.run(kind: .table) { configuration in try TableNodeService(configuration: configuration) }
