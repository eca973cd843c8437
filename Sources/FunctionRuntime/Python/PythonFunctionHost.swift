import Foundation
import Logging
import NimbusAuth
import NimbusProtocol
import NimbusRuntime
import Synchronization

/// Python functions (`Runtime: python3.x`): which host runs a worker's function.
public enum PythonRuntime {
    public static func isPython(_ runtime: String?) -> Bool {
        guard let runtime, runtime.hasPrefix("python3.") else { return false }
        return !runtime.dropFirst(8).isEmpty && runtime.dropFirst(8).allSatisfy(\.isNumber)
    }

    /// Once the worker has read its function's definition: when the stack says python3.x, starts a
    /// Python host (one environment made ready ahead of the first event) and points the worker's
    /// `HostedFunction` at it, so the event source mappings and Invoke run the Python code. nil for
    /// a built-in function. Stop the host when the worker stops.
    public static func start(_ definition: FunctionDefinition, for handler: FunctionHandler, configuration: NodeConfiguration,
                             logger: Logger) -> PythonFunctionHost? {
        let hosted: HostedFunction?
        switch handler {
        case .sqs(let function): hosted = function as? HostedFunction
        case .stream(let function): hosted = function as? HostedFunction
        }
        guard isPython(definition.runtime) else { return nil }
        guard let hosted else {
            logger.error("\(definition.name) is a \(definition.runtime ?? "") function, but this worker hosts only its built-in handler")
            return nil
        }
        let host = PythonFunctionHost(definition: definition, configuration: configuration, logger: logger)
        host.start()
        hosted.use(host)
        return host
    }
}

/// The function a worker hosts: its built-in handler (`Runtime: nimbus-swift`) until the stack's
/// definition says python3.x, then the Python host. The worker's executables wrap their built-in
/// handler in it.
public final class HostedFunction: SQSFunction, StreamFunction, Sendable {
    public enum BuiltIn: Sendable {
        case sqs(any SQSFunction)
        case stream(any StreamFunction)
    }
    private let builtIn: BuiltIn
    private let python = Mutex<PythonFunctionHost?>(nil)

    public init(_ builtIn: any SQSFunction) { self.builtIn = .sqs(builtIn) }
    public init(_ builtIn: any StreamFunction) { self.builtIn = .stream(builtIn) }

    func use(_ host: PythonFunctionHost) { python.withLock { $0 = host } }

    public func handle(_ event: SQSEvent, context: FunctionContext) async throws -> BatchResponse {
        if let host = python.withLock({ $0 }) { return try await host.handle(event, context: context) }
        guard case .sqs(let function) = builtIn else { throw Self.mismatch("an SQS event", context) }
        return try await function.handle(event, context: context)
    }

    public func handle(_ event: DynamoDBStreamEvent, context: FunctionContext) async throws -> BatchResponse {
        if let host = python.withLock({ $0 }) { return try await host.handle(event, context: context) }
        guard case .stream(let function) = builtIn else { throw Self.mismatch("a DynamoDB stream event", context) }
        return try await function.handle(event, context: context)
    }

    static func mismatch(_ what: String, _ context: FunctionContext) -> WireError {
        WireError(code: "InvalidRequestContentException", message: "\(context.functionName)'s built-in handler does not take \(what)")
    }
}

/// Hosts a Python function as Lambda does: each execution environment is a child process,
/// `python3 -m awslambdaric MODULE.FUNCTION`, speaking Lambda's Runtime API to a server of the
/// worker's on 127.0.0.1 (RuntimeAPI, RuntimeAPIServer). Environments are kept warm between
/// invocations; one runs one invocation at a time, and more are started (up to the mappings'
/// concurrency, plus one for Invoke) when invocations overlap.
///
/// The child's environment is Lambda's: the function's variables, AWS_LAMBDA_*, _HANDLER,
/// LAMBDA_TASK_ROOT, the region, the worker's role credentials (temporary, with their session
/// token), and AWS_ENDPOINT_URL pointing boto3 at the cluster's AWS endpoint (`edge.http`). When the
/// supervisor renews the credentials, idle environments are replaced, so none signs with old keys.
/// Past the Timeout an environment is killed and replaced; a handler that raises fails the
/// invocation, which the event source mapping retries as it does a built-in handler's failure.
public final class PythonFunctionHost: SQSFunction, StreamFunction, Sendable {
    let definition: FunctionDefinition
    let configuration: NodeConfiguration
    let logger: Logger
    /// Environments at most (the pollers' concurrency plus one for Invoke).
    let capacity: Int
    /// How long a runtime may take to start before an invocation waiting for it fails (Lambda: 10 s).
    let initLimit: Duration

    private struct Pool {
        var idle: [PythonEnvironment] = []
        var count = 0
        var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
        var waiterCounter: UInt64 = 0
        var stopped = false
        var all: [ObjectIdentifier: PythonEnvironment] = [:]
        var watcher: Task<Void, Never>?
    }
    private let pool = Mutex(Pool())

    init(definition: FunctionDefinition, configuration: NodeConfiguration, logger: Logger, initLimit: Duration = .seconds(10)) {
        self.definition = definition
        self.configuration = configuration
        self.logger = logger
        self.initLimit = initLimit
        let pollers = definition.mappings.filter(\.enabled).reduce(0) { $0 + ($1.isStream ? configuration.cluster.table.streamShards : $1.concurrency) }
        capacity = min(64, max(2, pollers + 1))
    }

    // MARK: SQSFunction, StreamFunction

    public func handle(_ event: SQSEvent, context: FunctionContext) async throws -> BatchResponse {
        try Self.batchResponse(try await invoke(try JSONEncoder().encode(event), context: context))
    }

    public func handle(_ event: DynamoDBStreamEvent, context: FunctionContext) async throws -> BatchResponse {
        try Self.batchResponse(try await invoke(try JSONEncoder().encode(event), context: context))
    }

    /// Lambda's reading of a batch function's answer: null, `{}` or no batchItemFailures is complete
    /// success; an entry without a usable itemIdentifier fails the whole batch.
    static func batchResponse(_ payload: Data) throws -> BatchResponse {
        guard let object = (try? JSONSerialization.jsonObject(with: payload, options: [.fragmentsAllowed])) as? [String: Any],
              let failures = object["batchItemFailures"], !(failures is NSNull) else { return BatchResponse() }
        guard let list = failures as? [Any] else {
            throw FunctionErrorReport(errorType: "Runtime.InvalidResponse", errorMessage: "batchItemFailures must be a list")
        }
        let ids = try list.map { entry -> String in
            guard let id = (entry as? [String: Any])?["itemIdentifier"] as? String, !id.isEmpty else {
                throw FunctionErrorReport(errorType: "Runtime.InvalidResponse", errorMessage: "every batchItemFailures entry needs a non-empty itemIdentifier")
            }
            return id
        }
        return BatchResponse(failures: ids)
    }

    /// Runs one invocation in a free environment and returns what the handler returned (JSON). A
    /// failure is thrown as Lambda reports it (`errorType: errorMessage`).
    public func invoke(_ payload: Data, context: FunctionContext) async throws -> Data {
        let environment = try await acquire()
        let outcome = await environment.invoke(payload, context: context, timeout: .milliseconds(Int(definition.timeoutSeconds * 1000)))
        var replace = false
        if case .failed(let report) = outcome, report.errorType == FunctionErrorReport.timeoutType || report.errorType == "Runtime.Cancelled" {
            // Past its time the runtime may still be running the handler: the environment is killed
            // (Lambda's "Task timed out"), and a fresh one made ready if this one had started well.
            context.logger.warning("\(definition.name): \(report.errorMessage); restarting the Python runtime")
            replace = environment.isInitialized
            environment.stop()
        }
        release(environment)
        if replace { prewarm() }
        switch outcome {
        case .response(let data): return data
        case .failed(let report): throw WireError(code: report.errorType, message: report.errorMessage)
        }
    }

    // MARK: Lifecycle

    /// Makes one environment ready and watches the credentials.
    func start() {
        prewarm()
        let watcher = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                self?.recycleStale()
            }
        }
        pool.withLock { $0.watcher = watcher }
    }

    /// Kills every environment; invocations waiting for one fail.
    public func stop() {
        let (all, waiters, watcher) = pool.withLock { p -> ([PythonEnvironment], [CheckedContinuation<Void, Never>], Task<Void, Never>?) in
            p.stopped = true
            let all = Array(p.all.values)
            p.all = [:]
            p.idle = []
            let waiters = p.waiters.map(\.continuation)
            p.waiters = []
            return (all, waiters, p.watcher)
        }
        watcher?.cancel()
        for environment in all { environment.stop() }
        for waiter in waiters { waiter.resume() }
    }

    /// One environment ready ahead of an event (a runtime's start, boto3's import, takes a second).
    private func prewarm() {
        Task {
            guard let environment = try? await acquire() else { return }
            release(environment)
        }
    }

    /// Replaces idle environments started with credentials that have since been renewed.
    private func recycleStale() {
        let key = currentCredentials()?.accessKeyId
        let stale = pool.withLock { p -> [PythonEnvironment] in
            let stale = p.idle.filter { $0.credentialKey != key || !$0.isAlive }
            p.idle.removeAll { $0.credentialKey != key || !$0.isAlive }
            return stale
        }
        guard !stale.isEmpty else { return }
        var warm = false
        for environment in stale {
            if environment.isAlive && environment.credentialKey != key {
                logger.info("\(definition.name): the role's credentials were renewed; restarting the idle Python runtime")
                warm = true
            }
            retire(environment)
        }
        if warm { prewarm() }
    }

    // MARK: The pool

    private func acquire() async throws -> PythonEnvironment {
        while true {
            enum Step { case use(PythonEnvironment), create, wait(UInt64), stopped }
            let step = pool.withLock { p -> Step in
                if p.stopped { return .stopped }
                if let environment = p.idle.popLast() { return .use(environment) }
                if p.count < capacity {
                    p.count += 1
                    return .create
                }
                p.waiterCounter += 1
                return .wait(p.waiterCounter)
            }
            switch step {
            case .stopped:
                throw WireError(.serviceUnavailable, "\(definition.name)'s worker is stopping")
            case .use(let environment):
                if environment.isAlive && environment.credentialKey == currentCredentials()?.accessKeyId { return environment }
                retire(environment)
            case .create:
                let environment = await PythonEnvironment.start(host: self, credentials: currentCredentials())
                let kept = pool.withLock { p -> Bool in
                    if p.stopped { return false }
                    p.all[ObjectIdentifier(environment)] = environment
                    return true
                }
                if !kept {
                    environment.stop()
                    throw WireError(.serviceUnavailable, "\(definition.name)'s worker is stopping")
                }
                return environment
            case .wait(let id):
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let resumeNow = pool.withLock { p -> Bool in
                            if p.stopped || !p.idle.isEmpty || p.count < capacity { return true }
                            p.waiters.append((id, continuation))
                            return false
                        }
                        if resumeNow { continuation.resume() }
                    }
                } onCancel: {
                    let waiter = pool.withLock { p -> CheckedContinuation<Void, Never>? in
                        guard let index = p.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                        return p.waiters.remove(at: index).continuation
                    }
                    waiter?.resume()
                }
                try Task.checkCancellation()
            }
        }
    }

    /// Back to the pool when it can run another invocation, else retired.
    private func release(_ environment: PythonEnvironment) {
        guard environment.isAlive else { return retire(environment) }
        let (stopped, waiter) = pool.withLock { p -> (Bool, CheckedContinuation<Void, Never>?) in
            if p.stopped { return (true, nil) }
            p.idle.append(environment)
            return (false, p.waiters.isEmpty ? nil : p.waiters.removeFirst().continuation)
        }
        if stopped { environment.stop() }
        waiter?.resume()
    }

    /// Stops an environment for good and frees its place.
    private func retire(_ environment: PythonEnvironment) {
        environment.stop()
        let waiter = pool.withLock { p -> CheckedContinuation<Void, Never>? in
            guard p.all.removeValue(forKey: ObjectIdentifier(environment)) != nil else { return nil }
            p.idle.removeAll { $0 === environment }
            p.count -= 1
            return p.waiters.isEmpty ? nil : p.waiters.removeFirst().continuation
        }
        waiter?.resume()
    }

    /// An environment whose runtime exited by itself (crashed, or failed its init) leaves the pool
    /// when idle; a busy one is released by its invocation.
    fileprivate func exited(_ environment: PythonEnvironment) {
        let idle = pool.withLock { $0.idle.contains { $0 === environment } }
        if idle { retire(environment) }
    }

    // MARK: What a runtime gets

    func currentCredentials() -> Credentials? { configuration.credentials?.current() }

    /// The command that starts a runtime: `python3 -m awslambdaric HANDLER` (NIMBUS_PYTHON names
    /// another interpreter).
    var command: [String] {
        let python = ProcessInfo.processInfo.environment["NIMBUS_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? "python3"
        return [python, "-m", "awslambdaric", definition.handler ?? ""]
    }

    /// The AWS endpoint boto3 is pointed at.
    var endpointURL: String {
        var address = configuration.cluster.edge.http
        for wildcard in ["0.0.0.0:", "*:", "[::]:"] where address.hasPrefix(wildcard) {
            address = "127.0.0.1:" + address.dropFirst(wildcard.count)
        }
        return "http://" + address
    }

    /// Lambda's environment for a runtime on `port` with `credentials`. The worker's own variables
    /// stay (PATH and what finds the interpreter) except AWS's, so nothing of the operator's AWS
    /// configuration reaches the function.
    func environment(port: Int, taskRoot: String, credentials: Credentials?, logStream: String) -> [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { key, _ in
            !key.hasPrefix("AWS_") && !key.hasPrefix("LAMBDA_") && !key.hasPrefix("_LAMBDA") && key != "_HANDLER" && key != "PYTHONPATH"
                && !key.hasPrefix("NIMBUS_")
        }
        for (key, value) in definition.environment { env[key] = value }
        let region = configuration.cluster.region
        let lambda: [String: String] = [
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:\(port)",
            "AWS_LAMBDA_FUNCTION_NAME": definition.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": String(definition.memorySize),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/\(definition.name)",
            "AWS_LAMBDA_LOG_STREAM_NAME": logStream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": "AWS_Lambda_\(definition.runtime ?? "python3")",
            "_HANDLER": definition.handler ?? "",
            "LAMBDA_TASK_ROOT": taskRoot,
            "PYTHONPATH": taskRoot,
            // Compiled modules go to the data directory, not into a code folder of the repository.
            "PYTHONPYCACHEPREFIX": configuration.dataDirectory.appendingPathComponent("functions").appendingPathComponent(".pycache").path,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ENDPOINT_URL": endpointURL,
            // No shared config or credentials files: the environment is all the function has, as in Lambda.
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "TZ": ":UTC",
        ]
        env.merge(lambda) { $1 }
        if let credentials {
            env["AWS_ACCESS_KEY_ID"] = credentials.accessKeyId
            env["AWS_SECRET_ACCESS_KEY"] = credentials.secretAccessKey
            if let token = credentials.sessionToken { env["AWS_SESSION_TOKEN"] = token }
        } else {
            // IAM not enforced: the worker has no role credentials and the endpoint takes any key.
            env["AWS_ACCESS_KEY_ID"] = "AKIANIMBUSUNSIGNED00"
            env["AWS_SECRET_ACCESS_KEY"] = "nimbus-iam-not-enforced"
        }
        return env
    }

    /// Where the runtime imports the handler from, written out when the code is inline.
    func taskRoot() throws -> URL {
        guard let code = definition.code else {
            throw FunctionErrorReport(errorType: "Runtime.InvalidEntrypoint", errorMessage: "\(definition.name) has no Code in the stack")
        }
        do {
            return try code.taskRoot(function: definition.name, dataDirectory: configuration.dataDirectory,
                                     stackDirectory: configuration.stackFile?.deletingLastPathComponent())
        } catch let error as FunctionDefinitionError {
            throw FunctionErrorReport(errorType: "Runtime.InvalidEntrypoint", errorMessage: error.description)
        }
    }
}

/// One execution environment: a Runtime API, its server and the runtime process using it.
final class PythonEnvironment: Sendable {
    let api: RuntimeAPI
    let credentialKey: String?
    private let name: String
    private struct Parts {
        var server: RuntimeAPIServer?
        var process: RuntimeProcess?
        var stopped = false
        /// The invocation running now: where the runtime's lines go.
        var current: (requestID: String, logger: Logger)?
    }
    private let parts = Mutex(Parts())

    private init(api: RuntimeAPI, credentialKey: String?, name: String) {
        self.api = api
        self.credentialKey = credentialKey
        self.name = name
    }

    var isAlive: Bool { api.closedBecause == nil && !parts.withLock { $0.stopped } }
    var isInitialized: Bool { api.isInitialized }

    /// Starts the server and the runtime. A runtime that cannot start makes an environment that is
    /// already closed with the reason, so the invocation that asked for it fails with it.
    static func start(host: PythonFunctionHost, credentials: Credentials?) async -> PythonEnvironment {
        let api = RuntimeAPI(initLimit: host.initLimit)
        let environment = PythonEnvironment(api: api, credentialKey: credentials?.accessKeyId, name: host.definition.name)
        let logger = host.logger
        do {
            let root = try host.taskRoot()
            let server = try await RuntimeAPIServer.start(api, logger: logger)
            environment.parts.withLock { $0.server = server }
            let stream = Self.logStreamName()
            let command = host.command
            let started = ContinuousClock.now
            let process = try RuntimeProcess.start(
                command, environment: host.environment(port: server.port, taskRoot: root.path, credentials: credentials, logStream: stream),
                directory: root.path, memoryLimitBytes: UInt64(host.definition.memorySize) * 1024 * 1024,
                onLine: { [weak environment] line in environment?.log(line, fallback: logger) },
                onExit: { [weak environment, weak host] status in
                    guard let environment else { return }
                    let wanted = environment.parts.withLock { $0.stopped }
                    let report = api.initError ?? FunctionErrorReport(errorType: "Runtime.ExitError",
                                                                      errorMessage: "Runtime exited with error: \(Self.lambdaStatus(status))")
                    if !wanted {
                        let seconds = Double((ContinuousClock.now - started).components.seconds)
                        logger.warning("\(environment.name): the Python runtime exited (\(status)) after \(Int(seconds)) s: \(report)")
                    }
                    api.close(report)
                    environment.stopServer()
                    host?.exited(environment)
                })
            environment.parts.withLock { $0.process = process }
            logger.info("\(host.definition.name): Python runtime started (pid \(process.pid), \(command.joined(separator: " ")), Runtime API 127.0.0.1:\(server.port))")
        } catch let report as FunctionErrorReport {
            logger.error("\(host.definition.name): \(report)")
            api.close(report)
            environment.stop()
        } catch let error as RuntimeSpawnError {
            let report = FunctionErrorReport(errorType: "Runtime.InvalidEntrypoint", errorMessage: "\(error) (is Python 3 installed? NIMBUS_PYTHON names another interpreter)")
            logger.error("\(host.definition.name): \(report)")
            api.close(report)
            environment.stop()
        } catch {
            let report = FunctionErrorReport(errorType: "Runtime.Unknown", errorMessage: "\(error)")
            logger.error("\(host.definition.name): \(report)")
            api.close(report)
            environment.stop()
        }
        return environment
    }

    /// One invocation; the runtime's lines meanwhile go to `context.logger` (the invocation's log).
    func invoke(_ payload: Data, context: FunctionContext, timeout: Duration) async -> RuntimeOutcome {
        parts.withLock { $0.current = (context.requestID, context.logger) }
        let outcome = await api.invoke(payload, requestID: context.requestID, functionARN: context.functionARN, timeout: timeout)
        // What the runtime printed before it answered is in the pipe: read it into this invocation's log.
        parts.withLock { $0.process }?.drain()
        parts.withLock { $0.current = nil }
        return outcome
    }

    /// Kills the runtime and stops the server (once).
    func stop() {
        let (process, first) = parts.withLock { p -> (RuntimeProcess?, Bool) in
            defer { p.stopped = true }
            return (p.process, !p.stopped)
        }
        guard first else { return }
        api.close(FunctionErrorReport(errorType: "Runtime.ExitError", errorMessage: "the execution environment was stopped"))
        process?.kill()
        stopServer()
    }

    private func stopServer() {
        parts.withLock { p -> RuntimeAPIServer? in
            defer { p.server = nil }
            return p.server
        }?.stop()
    }

    /// A line the runtime wrote: into the running invocation's log (with its request id), else the
    /// worker's (the runtime's init, say).
    private func log(_ line: String, fallback: Logger) {
        if let current = parts.withLock({ $0.current }) {
            current.logger.info("\(line)", metadata: ["function": .string(name), "requestId": .string(current.requestID)])
        } else {
            fallback.info("\(line)", metadata: ["function": .string(name)])
        }
    }

    /// Lambda's log stream name: `YYYY/MM/DD/[$LATEST]` and 32 hex digits.
    static func logStreamName() -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let d = calendar.dateComponents([.year, .month, .day], from: Date())
        let hex = (0..<32).map { _ in String(Int.random(in: 0..<16), radix: 16) }.joined()
        return String(format: "%04d/%02d/%02d/[$LATEST]", d.year ?? 0, d.month ?? 0, d.day ?? 0) + hex
    }

    /// "exit 1" → "exit status 1", "signal 9 (KILL)" → "signal: killed", as Lambda words a runtime's end.
    static func lambdaStatus(_ status: String) -> String {
        if status.hasPrefix("exit ") { return "exit status " + status.dropFirst(5) }
        if status.contains("(KILL)") { return "signal: killed" }
        return status
    }
}
