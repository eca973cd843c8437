import Foundation
import Synchronization
import Testing
@testable import NimbusRuntime

/// Opened once; a wait before or after the opening ends when it is open.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

@Suite struct GroupCommitTests {
    /// A disk whose first write stays in flight until the test lets it finish (suspended, not
    /// blocking a thread of the pool), and a log of what happened in which order.
    final class Disk: Sendable {
        let events = Mutex<[String]>([])
        let started: AsyncStream<Void>
        private let startedContinuation: AsyncStream<Void>.Continuation
        private let gate = Gate()
        private let first = Atomic<Bool>(true)

        init() { (started, startedContinuation) = AsyncStream.makeStream(of: Void.self) }

        func write(_ batch: [Int]) async {
            if first.exchange(false, ordering: .relaxed) {
                startedContinuation.yield()
                await gate.wait()
            }
            note("wrote " + batch.sorted().map(String.init).joined(separator: ","))
        }

        func note(_ event: String) { events.withLock { $0.append(event) } }
        func letItFinish() { gate.open() }
    }

    /// Yields until `condition` holds, for at most 10 s.
    func until(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            try #require(ContinuousClock.now < deadline, "condition not reached within 10 s")
            await Task.yield()
        }
    }

    @Test func aBurstSharesTheNextWriteAndBatchesLandInOrder() async throws {
        let disk = Disk()
        let committer = GroupCommitter<Int>(write: { await disk.write($0) }, onFailure: { _ in })
        let first = Task { try await committer.commit([1]) }
        for await _ in disk.started { break }
        // While [1] is being written, three more commits queue up: one write for all three.
        let rest = (2...4).map { n in Task { try await committer.commit([n]) } }
        try await until { committer.state.withLock { $0.pending.count } == 3 }
        disk.letItFinish()
        try await first.value
        for task in rest { try await task.value }
        #expect(disk.events.withLock { $0 } == ["wrote 1", "wrote 2,3,4"])
    }

    @Test func durableWaitsForWhatIsInFlightAndPending() async throws {
        let disk = Disk()
        let committer = GroupCommitter<Int>(write: { await disk.write($0) }, onFailure: { _ in })
        let first = Task { try await committer.commit([1]) }
        for await _ in disk.started { break }
        let second = Task { try await committer.commit([2]) }
        try await until { !committer.state.withLock { $0.pending.isEmpty } }
        let barrier = Task {
            try await committer.durable()
            disk.note("durable")
        }
        disk.letItFinish()
        try await barrier.value
        try await first.value
        try await second.value
        #expect(disk.events.withLock { $0 } == ["wrote 1", "wrote 2", "durable"])
    }

    @Test func durableReturnsAtOnceWhenNothingIsBeingWritten() async throws {
        let disk = Disk()
        let committer = GroupCommitter<Int>(write: { await disk.write($0) }, onFailure: { _ in })
        try await committer.durable()
        #expect(disk.events.withLock { $0 }.isEmpty)
        #expect(!committer.state.withLock { $0.writing })
    }
}
