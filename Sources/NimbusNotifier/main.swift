import NimbusRuntime
import NotifierService

// Thin shell: the runtime does sockets, health, logs and lifecycle; NotifierService is SNS.
await NodeMain.run(kind: .notifier) { configuration in try NotifierNodeService(configuration: configuration) }
