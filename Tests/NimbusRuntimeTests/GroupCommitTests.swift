import Foundation
import Synchronization
import Testing
import NimbusTestSupport
@testable import NimbusRuntime

@Suite struct GroupCommitTests {
    /// A committer over a disk whose first write stays in flight until the test lets it finish
    /// (suspended, not blocking a thread of the pool); each write is logged.
    func makeCommitter(_ disk: SlowDisk<Int>) -> GroupCommitter<Int> {
        GroupCommitter<Int>(write: { batch in
            await disk.hold(batch)
            disk.note("wrote " + batch.sorted().map(String.init).joined(separator: ","))
        }, onFailure: { _ in })
    }

    @Test func aBurstSharesTheNextWriteAndBatchesLandInOrder() async throws {
        let disk = SlowDisk<Int>()
        let committer = makeCommitter(disk)
        let first = Task { try await committer.commit([1]) }
        for await _ in disk.started { break }
        // While [1] is being written, three more commits queue up: one write for all three.
        let rest = (2...4).map { n in Task { try await committer.commit([n]) } }
        try await until { committer.state.withLock { $0.pending.count } == 3 }
        disk.letItFinish()
        try await first.value
        for task in rest { try await task.value }
        #expect(disk.events == ["wrote 1", "wrote 2,3,4"])
    }

    @Test func durableWaitsForWhatIsInFlightAndPending() async throws {
        let disk = SlowDisk<Int>()
        let committer = makeCommitter(disk)
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
        #expect(disk.events == ["wrote 1", "wrote 2", "durable"])
    }

    @Test func durableReturnsAtOnceWhenNothingIsBeingWritten() async throws {
        let disk = SlowDisk<Int>()
        let committer = makeCommitter(disk)
        try await committer.durable()
        #expect(disk.events.isEmpty)
        #expect(!committer.state.withLock { $0.writing })
    }
}
