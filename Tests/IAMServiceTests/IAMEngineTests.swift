import Foundation
import Logging
import Synchronization
import Testing
import IAMCore
@testable import IAMService
@testable import NimbusRuntime

@Suite struct IAMEngineTests {
    /// A disk whose first write stays in flight (suspended, holding no thread) until the test lets
    /// it finish, and a log of what happened in which order.
    final class SlowDisk: Sendable {
        let events = Mutex<[String]>([])
        let started: AsyncStream<Void>
        private let startedContinuation: AsyncStream<Void>.Continuation
        private let gate = Mutex<(open: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

        init() { (started, startedContinuation) = AsyncStream.makeStream(of: Void.self) }

        func write(_ batch: [IAMChange]) async {
            startedContinuation.yield()
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let open = gate.withLock { g -> Bool in
                    if !g.open { g.waiter = continuation }
                    return g.open
                }
                if open { continuation.resume() }
            }
            note("wrote \(batch.count)")
        }

        func note(_ event: String) { events.withLock { $0.append(event) } }

        func letItFinish() {
            gate.withLock { g -> CheckedContinuation<Void, Never>? in
                g.open = true
                defer { g.waiter = nil }
                return g.waiter
            }?.resume()
        }

        func noted(_ event: String) -> Bool { events.withLock { $0.contains(event) } }
    }

    /// Yields until `condition` holds, for at most 10 s.
    func until(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            try #require(ContinuousClock.now < deadline, "condition not reached within 10 s")
            await Task.yield()
        }
    }

    /// The operation under test has either answered (noted `answer`) or waits at the committer (the
    /// write in flight took its own waiters along, so this is the only one): only then does the test
    /// let the write finish, so an operation that does not wait shows in the order of events.
    func answeredOrWaiting(_ iam: IAMEngine, _ disk: SlowDisk, answer: String) async throws {
        try await until { disk.noted(answer) || iam.committer.state.withLock { $0.waiters.count } == 1 }
    }

    static let trust = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#

    func engine(_ disk: SlowDisk) -> IAMEngine {
        IAMEngine(registry: IAMRegistry(account: "000000000000"), logger: Logger(label: "test"), write: { await disk.write($0) })
    }

    @Test func aReadAnswersOnlyOnceWhatItReadIsDurable() async throws {
        let disk = SlowDisk()
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
        #expect(disk.events.withLock { $0 } == ["looked", "wrote 1", "answered r"])
        #expect(await iam.policyVersion == versionBefore + 1)
    }

    @Test func aRefusalDecidedFromAChangeInFlightWaitsForIt() async throws {
        let disk = SlowDisk()
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
        #expect(disk.events.withLock { $0 } == ["looked", "wrote 1", "EntityAlreadyExists"])
    }
}
