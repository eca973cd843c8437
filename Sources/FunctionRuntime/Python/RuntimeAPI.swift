import Foundation
import Synchronization

/// An error a function or its runtime reported, in Lambda's shape: the handler raised (`/error`), the
/// runtime could not start (`/init/error`), or the platform ended it (a timeout, the runtime's exit).
public struct FunctionErrorReport: Error, Sendable, Equatable, CustomStringConvertible {
    public var errorType: String
    public var errorMessage: String
    public var stackTrace: [String]

    public init(errorType: String, errorMessage: String, stackTrace: [String] = []) {
        self.errorType = errorType
        self.errorMessage = errorMessage
        self.stackTrace = stackTrace
    }

    public var description: String { "\(errorType): \(errorMessage)" }

    /// Lambda's error document (`{"errorMessage", "errorType", "stackTrace"}`); the
    /// Lambda-Runtime-Function-Error-Type header names the type when the body does not.
    public static func parse(_ body: Data, typeHeader: String?) -> FunctionErrorReport {
        let object = (try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])) as? [String: Any]
        let type = object?["errorType"] as? String ?? typeHeader ?? "Unhandled"
        let message = object?["errorMessage"] as? String ?? (object == nil ? String(decoding: body.prefix(4096), as: UTF8.self) : "")
        let trace = (object?["stackTrace"] as? [Any] ?? []).map { ($0 as? String) ?? "\($0)" }
        return FunctionErrorReport(errorType: type.isEmpty ? "Unhandled" : type, errorMessage: message, stackTrace: trace)
    }

    /// Lambda's error type for an invocation past its Timeout.
    public static let timeoutType = "Sandbox.Timedout"
}

/// How an invocation ended.
public enum RuntimeOutcome: Sendable, Equatable {
    /// What the runtime posted to `/response`.
    case response(Data)
    case failed(FunctionErrorReport)
}

/// One HTTP answer of the Runtime API.
public struct RuntimeAPIReply: Sendable, Equatable {
    public var status: Int
    public var headers: [String: String]
    public var body: Data

    init(status: Int, headers: [String: String] = ["Content-Type": "application/json"], body: Data) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The Runtime API's own errors, as Lambda's runtime endpoint answers them.
    static func error(_ status: Int, _ type: String, _ message: String) -> RuntimeAPIReply {
        let body = (try? JSONSerialization.data(withJSONObject: ["errorMessage": message, "errorType": type], options: [.sortedKeys])) ?? Data()
        return RuntimeAPIReply(status: status, body: body)
    }

    static let accepted = RuntimeAPIReply(status: 202, body: Data(#"{"status":"OK"}"#.utf8))
}

/// Lambda's Runtime API (`/2018-06-01/runtime/...`) for one execution environment: one runtime
/// process asks for invocations (`next`, a long poll) and posts each one's response or error; the
/// worker hands it invocations and waits for how each ends. The state machine only, no HTTP
/// (RuntimeAPIServer serves it): testable with no process and no socket.
///
/// An invocation's Timeout runs from the moment the runtime takes it (the runtime's init is not
/// counted, as in Lambda), bounded before that by `initLimit` (Lambda's 10 s for init).
public final class RuntimeAPI: Sendable {
    public static let version = "2018-06-01"
    /// Lambda's limit on a synchronous response (6 MB).
    public static let maxResponseBytes = 6 * 1024 * 1024

    public struct Invocation: Sendable, Equatable {
        public var requestID: String
        public var payload: Data
        public var functionARN: String
        /// Milliseconds since the epoch, set when the runtime takes the invocation.
        public var deadlineMillis: Int64 = 0
        public var traceID: String
    }

    private struct Pending {
        var invocation: Invocation
        var timeout: Duration
        var continuation: CheckedContinuation<RuntimeOutcome, Never>
        var takenAt: ContinuousClock.Instant?
        var timer: Task<Void, Never>?
    }

    private struct State {
        var pending: [String: Pending] = [:]
        /// Ids not yet taken by the runtime, oldest first.
        var queued: [String] = []
        var nextWaiters: [(id: UInt64, continuation: CheckedContinuation<NextResult, Never>)] = []
        var waiterCounter: UInt64 = 0
        /// The runtime asked for its first invocation: its init is done.
        var initialized = false
        var initError: FunctionErrorReport?
        /// Set when the environment is gone (the runtime exited or was stopped): nothing more runs.
        var closed: FunctionErrorReport?
    }

    /// What `next` gives the runtime.
    public enum NextResult: Sendable, Equatable {
        case invocation(Invocation)
        /// The runtime has not answered this invocation yet (asking again is out of order).
        case outstanding(String)
        /// The environment is closed.
        case closed
    }

    private let state = Mutex(State())
    private let initLimit: Duration
    private let now: @Sendable () -> Int64

    public init(initLimit: Duration = .seconds(10), now: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }) {
        self.initLimit = initLimit
        self.now = now
    }

    /// The runtime has asked for an invocation (its init is done).
    public var isInitialized: Bool { state.withLock { $0.initialized } }
    /// Why the environment ended, once it has.
    public var closedBecause: FunctionErrorReport? { state.withLock { $0.closed } }
    public var initError: FunctionErrorReport? { state.withLock { $0.initError } }

    // MARK: The worker's side

    /// Hands `payload` to the runtime and waits for its response or error, the timeout, or the
    /// environment's end. A cancelled caller gets a failure at once (the runtime's late answer is then
    /// refused as an unknown request id).
    public func invoke(_ payload: Data, requestID: String, functionARN: String, timeout: Duration) async -> RuntimeOutcome {
        let invocation = Invocation(requestID: requestID, payload: payload, functionARN: functionARN, traceID: Self.traceID())
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<RuntimeOutcome, Never>) in
                enum Step { case fail(FunctionErrorReport), hand(CheckedContinuation<NextResult, Never>, Invocation), wait }
                let step = state.withLock { s -> Step in
                    if let closed = s.closed { return .fail(s.initError ?? closed) }
                    if let initError = s.initError { return .fail(initError) }
                    s.pending[requestID] = Pending(invocation: invocation, timeout: timeout, continuation: continuation)
                    if !s.nextWaiters.isEmpty {
                        let waiter = s.nextWaiters.removeFirst()
                        return .hand(waiter.continuation, take(requestID, &s))
                    }
                    s.queued.append(requestID)
                    return .wait
                }
                switch step {
                case .fail(let report): continuation.resume(returning: .failed(report))
                case .hand(let waiter, let taken): waiter.resume(returning: .invocation(taken))
                case .wait: armInitLimit(requestID)
                }
                // Cancelled before the invocation was registered: the handler below found nothing to end.
                if Task.isCancelled { finish(requestID, Self.cancelled(requestID)) }
            }
        } onCancel: {
            finish(requestID, Self.cancelled(requestID))
        }
    }

    static func cancelled(_ requestID: String) -> RuntimeOutcome {
        .failed(FunctionErrorReport(errorType: "Runtime.Cancelled", errorMessage: "RequestId: \(requestID) Error: the invocation was cancelled"))
    }

    /// Ends the environment: every waiting invocation fails with `report` (or the init error the
    /// runtime posted before it exited), a waiting `next` is answered as closed.
    public func close(_ report: FunctionErrorReport) {
        let (pending, waiters) = state.withLock { s -> ([Pending], [CheckedContinuation<NextResult, Never>]) in
            if s.closed == nil { s.closed = report }
            let pending = Array(s.pending.values)
            s.pending = [:]
            s.queued = []
            let waiters = s.nextWaiters.map(\.continuation)
            s.nextWaiters = []
            return (pending, waiters)
        }
        let reason = initError ?? report
        for p in pending {
            p.timer?.cancel()
            p.continuation.resume(returning: .failed(reason))
        }
        for w in waiters { w.resume(returning: .closed) }
    }

    // MARK: The runtime's side

    /// `GET /runtime/invocation/next`: the next invocation, waiting for one (a long poll).
    public func next() async -> NextResult {
        let id = state.withLock { s -> UInt64 in
            s.waiterCounter += 1
            return s.waiterCounter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<NextResult, Never>) in
                let ready = state.withLock { s -> NextResult? in
                    if s.closed != nil { return .closed }
                    s.initialized = true
                    if let outstanding = s.pending.first(where: { $0.value.takenAt != nil })?.key { return .outstanding(outstanding) }
                    if !s.queued.isEmpty { return .invocation(take(s.queued.removeFirst(), &s)) }
                    s.nextWaiters.append((id, continuation))
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<NextResult, Never>? in
                guard let index = s.nextWaiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.nextWaiters.remove(at: index).continuation
            }
            waiter?.resume(returning: .closed)
        }
    }

    /// `POST /runtime/invocation/{id}/response`.
    public func respond(_ requestID: String, body: Data) -> RuntimeAPIReply {
        guard isTaken(requestID) else { return Self.invalidRequestID }
        guard body.count <= Self.maxResponseBytes else {
            finish(requestID, .failed(FunctionErrorReport(errorType: "Function.ResponseSizeTooLarge",
                                                          errorMessage: "Response payload size exceeded maximum allowed payload size (\(Self.maxResponseBytes) bytes).")))
            return .error(413, "RequestEntityTooLarge", "Exceeded maximum allowed payload size (\(Self.maxResponseBytes) bytes).")
        }
        return finish(requestID, .response(body)) ? .accepted : Self.invalidRequestID
    }

    /// `POST /runtime/invocation/{id}/error`: the handler failed.
    public func fail(_ requestID: String, body: Data, typeHeader: String?) -> RuntimeAPIReply {
        guard isTaken(requestID) else { return Self.invalidRequestID }
        return finish(requestID, .failed(.parse(body, typeHeader: typeHeader))) ? .accepted : Self.invalidRequestID
    }

    /// `POST /runtime/init/error`: the runtime could not start (its handler's module did not import,
    /// say). Every waiting invocation fails with it, as does every later one until the environment
    /// is replaced.
    public func initFailed(body: Data, typeHeader: String?) -> RuntimeAPIReply {
        let report = FunctionErrorReport.parse(body, typeHeader: typeHeader)
        let failed = state.withLock { s -> [Pending]? in
            if s.initialized || s.closed != nil { return nil }
            s.initError = report
            let queued = s.queued.compactMap { s.pending.removeValue(forKey: $0) }
            s.queued = []
            return queued
        }
        guard let failed else {
            return .error(403, "InvalidStateTransition", "State transition from Ready to InitError failed for runtime: init is already over")
        }
        for p in failed {
            p.timer?.cancel()
            p.continuation.resume(returning: .failed(report))
        }
        return .accepted
    }

    /// The Runtime API over HTTP: method, path (query ignored) and the headers (names in lower case).
    public func route(method: String, path rawPath: String, headers: [String: String], body: Data) async -> RuntimeAPIReply {
        let path = rawPath.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? rawPath
        let parts = path.split(separator: "/").map(String.init)
        guard parts.count >= 3, parts[0] == Self.version, parts[1] == "runtime" else { return Self.notFound(method, path) }
        let rest = Array(parts.dropFirst(2))
        enum Route { case next, response(String), error(String), initError }
        let route: Route
        if rest == ["invocation", "next"] {
            route = .next
        } else if rest == ["init", "error"] {
            route = .initError
        } else if rest.count == 3, rest[0] == "invocation", rest[2] == "response" {
            route = .response(rest[1])
        } else if rest.count == 3, rest[0] == "invocation", rest[2] == "error" {
            route = .error(rest[1])
        } else {
            return Self.notFound(method, path)
        }
        let expected: String
        if case .next = route { expected = "GET" } else { expected = "POST" }
        guard method == expected else { return .error(405, "MethodNotAllowed", "\(method) is not allowed on \(path)") }
        switch route {
        case .next:
            switch await next() {
            case .invocation(let invocation):
                return RuntimeAPIReply(status: 200, headers: [
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": invocation.requestID,
                    "Lambda-Runtime-Deadline-Ms": String(invocation.deadlineMillis),
                    "Lambda-Runtime-Invoked-Function-Arn": invocation.functionARN,
                    "Lambda-Runtime-Trace-Id": invocation.traceID,
                ], body: invocation.payload)
            case .outstanding(let id):
                return .error(403, "InvalidStateTransition", "State transition from Running to Ready failed for runtime: invocation \(id) has no response or error yet")
            case .closed:
                return .error(500, "Runtime.ExitError", "the execution environment is shutting down")
            }
        case .response(let id):
            return respond(id, body: body)
        case .error(let id):
            return fail(id, body: body, typeHeader: headers["lambda-runtime-function-error-type"])
        case .initError:
            return initFailed(body: body, typeHeader: headers["lambda-runtime-function-error-type"])
        }
    }

    // MARK: Internals

    static let invalidRequestID = RuntimeAPIReply.error(400, "InvalidRequestID", "Invalid request ID")

    static func notFound(_ method: String, _ path: String) -> RuntimeAPIReply {
        .error(404, "NotFound", "the Runtime API has no \(method) \(path)")
    }

    /// Marks a queued invocation taken (its deadline starts now) and arms its timeout. Under the lock.
    private func take(_ requestID: String, _ s: inout State) -> Invocation {
        var p = s.pending[requestID]!
        p.takenAt = .now
        p.invocation.deadlineMillis = now() + Int64(p.timeout.components.seconds * 1000) + p.timeout.components.attoseconds / 1_000_000_000_000_000
        p.timer?.cancel()
        let timeout = p.timeout
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        p.timer = Task { [weak self] in
            try? await Task.sleep(for: timeout)
            if Task.isCancelled { return }
            self?.finish(requestID, .failed(FunctionErrorReport(
                errorType: FunctionErrorReport.timeoutType,
                errorMessage: "RequestId: \(requestID) Error: Task timed out after \(String(format: "%.2f", seconds)) seconds")))
        }
        s.pending[requestID] = p
        return p.invocation
    }

    /// Fails a queued invocation the runtime has not taken within the init limit.
    private func armInitLimit(_ requestID: String) {
        let limit = initLimit
        let seconds = Double(limit.components.seconds) + Double(limit.components.attoseconds) / 1e18
        let timer = Task { [weak self] in
            try? await Task.sleep(for: limit)
            guard !Task.isCancelled, let self else { return }
            let stillQueued = self.state.withLock { $0.queued.contains(requestID) }
            if stillQueued {
                self.finish(requestID, .failed(FunctionErrorReport(
                    errorType: FunctionErrorReport.timeoutType,
                    errorMessage: "RequestId: \(requestID) Error: the runtime's init did not finish within \(String(format: "%.2f", seconds)) seconds")))
            }
        }
        let stale = state.withLock { s -> Bool in
            guard var p = s.pending[requestID], p.takenAt == nil else { return true }
            p.timer = timer
            s.pending[requestID] = p
            return false
        }
        if stale { timer.cancel() }
    }

    private func isTaken(_ requestID: String) -> Bool {
        state.withLock { $0.pending[requestID]?.takenAt != nil }
    }

    /// Ends an invocation (once); false when it had already ended.
    @discardableResult
    private func finish(_ requestID: String, _ outcome: RuntimeOutcome) -> Bool {
        let pending = state.withLock { s -> Pending? in
            s.queued.removeAll { $0 == requestID }
            return s.pending.removeValue(forKey: requestID)
        }
        guard let pending else { return false }
        pending.timer?.cancel()
        pending.continuation.resume(returning: outcome)
        return true
    }

    /// An X-Ray trace header as Lambda passes one (`Root=1-<time>-<24 hex>;Parent=<16 hex>;Sampled=0`).
    static func traceID() -> String {
        func hex(_ n: Int) -> String { (0..<n).map { _ in String(Int.random(in: 0..<16), radix: 16) }.joined() }
        return "Root=1-\(String(Int(Date().timeIntervalSince1970), radix: 16))-\(hex(24));Parent=\(hex(16));Sampled=0"
    }
}
