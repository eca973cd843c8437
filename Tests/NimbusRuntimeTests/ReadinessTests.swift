import Synchronization
import Testing
@testable import NimbusRuntime

/// Readiness with a hand-moved clock: each condition with its start, the reason with its age, and
/// a change told once.
@Suite struct ReadinessTests {
    @Test func notReadyUntilStartUpEndsThenEachConditionWithItsAge() {
        let now = Atomic<Int64>(1_000_000)
        let told = Mutex<[(Bool, String?)]>([])
        let readiness = Readiness(clock: { now.load(ordering: .relaxed) }, onChange: { ready, reason in told.withLock { $0.append((ready, reason)) } })
        #expect(!readiness.isReady)
        #expect(readiness.reason == "start-up not finished")
        readiness.dependency("iam", reachable: true)
        readiness.startupFinished()
        #expect(readiness.isReady && readiness.reason == nil)

        readiness.dependency("iam", reachable: false)
        now.add(12_400, ordering: .relaxed)
        readiness.dependency("iam", reachable: false)
        #expect(readiness.reason == "iam unreachable for 12 s", "the age counts from the first failure")
        #expect(readiness.unreachableReason("iam") == "iam unreachable for 12 s")
        readiness.alarm("disk alarm: 10 MB free")
        #expect(readiness.reason == "iam unreachable for 12 s; disk alarm: 10 MB free")
        readiness.dependency("iam", reachable: true)
        readiness.alarm(nil)
        #expect(readiness.isReady && readiness.unreachableReason("iam") == nil)

        // Told at each change, not for each probe that finds the same.
        let changes = told.withLock { $0 }
        #expect(changes.map(\.0) == [false, true, false, false, false, true])
        #expect(changes[2].1 == "iam unreachable")
    }
}
