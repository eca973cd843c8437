import Foundation
import Logging
import Synchronization
import Testing
import NimbusTestSupport
import IAMCore
@testable import IAMService
@testable import NimbusRuntime

@Suite struct IAMEngineTests {
    /// The operation under test has either answered (noted `answer`) or waits at the committer (the
    /// write in flight took its own waiters along, so this is the only one): only then does the test
    /// let the write finish, so an operation that does not wait shows in the order of events.
    func answeredOrWaiting(_ iam: IAMEngine, _ disk: SlowDisk<IAMChange>, answer: String) async throws {
        try await until { disk.noted(answer) || iam.committer.state.withLock { $0.waiters.count } == 1 }
    }

    static let trust = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#

    /// An engine whose first commit stays in flight (suspended, holding no thread) until the test
    /// lets it finish; each write is logged.
    func engine(_ disk: SlowDisk<IAMChange>) -> IAMEngine {
        IAMEngine(registry: IAMRegistry(account: "000000000000"), logger: Logger(label: "test"), write: { batch in
            await disk.hold(batch)
            disk.note("wrote \(batch.count)")
        })
    }

    @Test func aReadAnswersOnlyOnceWhatItReadIsDurable() async throws {
        let disk = SlowDisk<IAMChange>()
        let iam = engine(disk)
        let versionBefore = await iam.policyVersion
        let create = Task {
            try await iam.perform { reg, now, changes in try reg.createRole(name: "r", trustPolicy: Self.trust, description: nil, now: now, changes: &changes) }
        }
        for await _ in disk.started { break }
        // The role is in the registry, its row not on disk: a GetRole (or a decision) that sees it waits.
        let read = Task {
            let role = try await iam.read { reg in
                disk.note("looked")
                return try reg.getRole("r")
            }
            disk.note("answered \(role.name)")
        }
        try await answeredOrWaiting(iam, disk, answer: "answered r")
        #expect(await iam.policyVersion == versionBefore)
        disk.letItFinish()
        try await read.value
        _ = try await create.value
        #expect(disk.events == ["looked", "wrote 1", "answered r"])
        #expect(await iam.policyVersion == versionBefore + 1)
    }

    @Test func aRefusalDecidedFromAChangeInFlightWaitsForIt() async throws {
        let disk = SlowDisk<IAMChange>()
        let iam = engine(disk)
        let create = Task {
            try await iam.perform { reg, now, changes in try reg.createRole(name: "r", trustPolicy: Self.trust, description: nil, now: now, changes: &changes) }
        }
        for await _ in disk.started { break }
        let again = Task {
            do {
                _ = try await iam.perform { reg, now, changes in
                    disk.note("looked")
                    return try reg.createRole(name: "r", trustPolicy: Self.trust, description: nil, now: now, changes: &changes)
                }
                disk.note("created twice")
            } catch let error as PolicyError {
                disk.note(error.code)
            }
        }
        try await answeredOrWaiting(iam, disk, answer: "EntityAlreadyExists")
        disk.letItFinish()
        try await again.value
        _ = try await create.value
        #expect(disk.events == ["looked", "wrote 1", "EntityAlreadyExists"])
    }
}
