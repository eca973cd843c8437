import Foundation
import Logging
import NimbusProtocol
import Synchronization

/// Runs one invocation of the hosted function: a fresh context, the function's timeout, counters.
public final class FunctionInvoker: Sendable {
    public let definition: FunctionDefinition
    public let region: String
    public let account: String
    public let services: any ServiceCalling
    let logger: Logger
    private let stats = Mutex(Stats())
    /// Time spent in invocations, in microseconds, all together (the console's mean duration: its
    /// change over a second divided by the invocations').
    private let busy = Atomic<Int>(0)

    public struct Stats: Sendable, Equatable {
        public var invocations = 0
        public var errors = 0
        public var records = 0
        public var failedRecords = 0
    }

    public init(definition: FunctionDefinition, region: String, account: String, services: any ServiceCalling, logger: Logger) {
        self.definition = definition
        self.region = region
        self.account = account
        self.services = services
        self.logger = logger
    }

    public var functionARN: String { "arn:aws:lambda:\(region):\(account):function:\(definition.name)" }

    public var statistics: Stats { stats.withLock { $0 } }

    /// Microseconds spent in invocations since the process started.
    public var busyMicroseconds: Int { busy.load(ordering: .relaxed) }

    /// Invokes `body` with a new context; past the function's timeout the invocation fails
    /// (its partial work is not undone, as in Lambda). `requestID` and `logger`: an Invoke's own
    /// (its log is returned to the caller); by default a fresh id and the worker's logger.
    public func invoke(records: Int = 0, requestID: String = UUID().uuidString.lowercased(), logger: Logger? = nil,
                       _ body: @escaping @Sendable (FunctionContext) async throws -> BatchResponse) async throws -> BatchResponse {
        let context = FunctionContext(functionName: definition.name, functionARN: functionARN, requestID: requestID,
                                      environment: definition.environment, region: region, account: account,
                                      logger: logger ?? self.logger, services: services)
        // A Python runtime's host times an invocation itself, from when the runtime takes it (its init
        // is not counted, as in Lambda), and kills the runtime past it.
        let timeout: Duration? = PythonRuntime.isPython(definition.runtime) ? nil : .milliseconds(Int(definition.timeoutSeconds * 1000))
        let started = ContinuousClock.now
        defer {
            let spent = (ContinuousClock.now - started).components
            busy.wrappingAdd(Int(spent.seconds) * 1_000_000 + Int(spent.attoseconds / 1_000_000_000_000), ordering: .relaxed)
        }
        do {
            let response = try await withThrowingTaskGroup(of: BatchResponse?.self) { group in
                group.addTask { try await body(context) }
                if let timeout { group.addTask { try await Task.sleep(for: timeout); return nil } }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let response = first else {
                    throw WireError(code: "TimeoutError", message: "Task timed out after \(definition.timeoutSeconds) seconds")
                }
                return response
            }
            stats.withLock {
                $0.invocations += 1
                $0.records += records
                $0.failedRecords += response.batchItemFailures.count
            }
            return response
        } catch {
            stats.withLock {
                $0.invocations += 1
                $0.errors += 1
                $0.records += records
                $0.failedRecords += records
            }
            throw error
        }
    }
}
