import Foundation
@testable import FunctionRuntime
import Logging
import NimbusProtocol
import Testing

@Suite struct FunctionInvokerTests {
    func invoker(timeoutSeconds: Double) throws -> FunctionInvoker {
        var definition = FunctionDefinition(name: "f")
        definition.timeoutSeconds = timeoutSeconds
        return FunctionInvoker(definition: definition, region: "us-east-1", account: "000000000000", services: try FakeServices(),
                               logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
    }

    @Test func anInvocationWithinItsTimeoutReturnsItsAnswer() async throws {
        let f = try invoker(timeoutSeconds: 3)
        let answer = try await f.invoke(records: 2) { _ in BatchResponse(failures: ["m-2"]) }
        #expect(answer.failedIdentifiers == ["m-2"])
        #expect(f.statistics == .init(invocations: 1, errors: 0, records: 2, failedRecords: 1))
    }

    @Test func anInvocationPastItsTimeoutIsCancelledAndFailsWithTimeoutError() async throws {
        let f = try invoker(timeoutSeconds: 0.2)
        let started = ContinuousClock.now
        do {
            // Sleeps far longer than the timeout unless cancelled.
            _ = try await f.invoke(records: 1) { _ in try await Task.sleep(for: .seconds(30)); return BatchResponse() }
            Issue.record("the invocation should have timed out")
        } catch let error as WireError {
            #expect(error.code == "TimeoutError")
        }
        let took = ContinuousClock.now - started
        #expect(took >= .milliseconds(200) && took < .seconds(5), "took \(took)")
        #expect(f.statistics.errors == 1)
        // The caller's own task is not cancelled: a later invocation runs normally.
        #expect(!Task.isCancelled)
        let next = try await f.invoke { _ in BatchResponse() }
        #expect(next.batchItemFailures.isEmpty)
    }

    @Test func aFunctionThatIgnoresCancellationStillTimesOutWhenItReturns() async throws {
        let f = try invoker(timeoutSeconds: 0.1)
        await #expect(throws: WireError.self) {
            _ = try await f.invoke { _ in
                // Busy past the deadline without checking for cancellation (bounded).
                let end = ContinuousClock.now + .milliseconds(400)
                while ContinuousClock.now < end { await Task.yield() }
                return BatchResponse()
            }
        }
    }
}
