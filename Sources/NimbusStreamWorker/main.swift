import FunctionRuntime
import LabFunctions
import NimbusRuntime

// Thin shell: the runtime does sockets, health, logs and lifecycle; FunctionRuntime is Lambda (the
// stream's event source mapping, with shard leases); LabFunctions has the lab's code (the
// built-in handler; with `Runtime: python3.x` in the stack, HostedFunction runs the stack's Python code).
await NodeMain.run(kind: .streamWorker) { configuration in
    FunctionNodeService(configuration: configuration, functionName: "POC-Lambda-2", handler: .stream(HostedFunction(NotifyOrders())))
}
