import NimbusRuntime

// Thin shell: the runtime does sockets, health, logs and lifecycle; the service core plugs in here.
await NodeMain.run(kind: .table) { _ in HealthOnlyService() }
