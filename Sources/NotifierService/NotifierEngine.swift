import Foundation
import Logging
import NimbusRuntime
import NotifierCore
import Synchronization

/// The notifier's shell around its core: applies each operation to `SNSTopics` and answers once
/// its changes are on disk (group commit, like the queue and table nodes), and hands the delivery
/// loop the outbox entries that are due, keeping track of the ones being sent.
actor NotifierEngine {
    private var topics: SNSTopics
    private let committer: GroupCommitter<NotifierChange>
    /// One per delivery lane (`DeliveryLane.rawValue`): rung whenever the lane's part of the outbox
    /// may have something due sooner than its loop thinks.
    nonisolated let doorbells = DeliveryLane.allCases.map { _ in Doorbell() }
    /// Deliveries put into the outbox by commits not yet durable (with how many such commits).
    private var notDurable: [String: Int] = [:]

    init(topics: SNSTopics, store: NotifierStore, logger: Logger) {
        self.init(topics: topics, write: { try store.commit($0) }, logger: logger)
    }

    /// `write` makes a batch of changes durable (the store's commit; a test's stand-in).
    init(topics: SNSTopics, write: @escaping @Sendable ([NotifierChange]) async throws -> Void, logger: Logger) {
        self.topics = topics
        committer = GroupCommitter(write: write, onFailure: { error in
            // The core is now ahead of the disk: stop rather than answer from a state a restart
            // would not reproduce; the supervisor restarts the node from what is durable.
            logger.critical("commit failed: \(error); exiting so a restart reloads the durable state")
            exit(70)
        })
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    /// Runs `operation` on the core and returns once its changes are durable. A publish recognised
    /// as a duplicate (or one that fails) answers only once the state it was decided from is
    /// durable: "already published" must not be said of a publish a crash could lose.
    func perform<T: Sendable>(_ operation: @Sendable (inout SNSTopics, Double, inout [NotifierChange]) throws -> T) async throws -> T {
        var changes: [NotifierChange] = []
        let outcome = Result { try operation(&topics, Self.now(), &changes) }
        if changes.isEmpty { try await committer.durable() } else { try await commit(changes) }
        return try outcome.get()
    }

    /// Commits `changes`. The deliveries they put into the outbox are not handed out until the
    /// commit is durable: one sent before, followed by a crash, would be forgotten, and its publish,
    /// unanswered, sent again by the publisher as a new notification (a second mail).
    private func commit(_ changes: [NotifierChange]) async throws {
        let puts = changes.compactMap { change -> Delivery? in if case .putDelivery(let d) = change { d } else { nil } }
        for put in puts { notDurable[put.id, default: 0] += 1 }
        defer {
            for put in puts {
                if let n = notDurable[put.id], n > 1 { notDurable[put.id] = n - 1 } else { notDurable[put.id] = nil }
            }
            for lane in Set(puts.map(\.deliveryProtocol.lane)) { doorbells[lane.rawValue].ring() }
        }
        try await committer.commit(changes)
    }

    func read<T: Sendable>(_ operation: @Sendable (SNSTopics) throws -> T) rethrows -> T { try operation(topics) }

    /// Due deliveries of `lane` not already being sent, whose outbox rows are durable; they count as
    /// being sent until reported.
    func takeDue(limit: Int, lane: DeliveryLane) -> [Delivery] {
        topics.takeDue(now: Self.now(), limit: limit, lane: lane, notYet: notDurable.isEmpty ? [] : Set(notDurable.keys))
    }

    /// Seconds until the next delivery of `lane` not being sent falls due (nil: nothing waiting). One
    /// whose commit is in flight does not count: the commit rings the lane's doorbell when it is done.
    func secondsUntilNextDue(lane: DeliveryLane) -> Double? {
        topics.nextDueAt(lane: lane, notYet: notDurable.isEmpty ? [] : Set(notDurable.keys)).map { max(0, $0 - Self.now()) }
    }

    /// An attempt's result: nil error for delivered; `permanent` when the endpoint refused for good.
    struct Outcome: Sendable {
        var id: String
        var error: String?
        var permanent = false
    }

    /// Reports attempts, in one commit. An outbox row goes only once its outcome is durable, so a
    /// crash before that sends the delivery again (at least once, never lost). For each, whether a
    /// failure made the delivery be given up.
    func report(_ outcomes: [Outcome]) async throws -> [Bool] {
        var changes: [NotifierChange] = []
        var gaveUp: [Bool] = []
        gaveUp.reserveCapacity(outcomes.count)
        let now = Self.now()
        for outcome in outcomes {
            if let error = outcome.error {
                gaveUp.append(topics.deliveryFailed(outcome.id, error: error, permanent: outcome.permanent, now: now, changes: &changes))
            } else {
                topics.deliverySucceeded(outcome.id, now: now, changes: &changes)
                gaveUp.append(false)
            }
        }
        try await commit(changes)
        return gaveUp
    }

    func health() -> [String: String] {
        [
            "topics": String(topics.topics.count),
            "subscriptions": String(topics.subscriptions.count),
            "outboxDepth": String(topics.outbox.count),
            "sending": String(topics.handedOut.count),
            "delivered": String(topics.deliveredCount),
            "failed": String(topics.failedCount),
            "dedupeKeys": String(topics.dedupeKeyCount),
        ]
    }
}

/// A wake-up for one waiting loop: `wait(upTo:)` returns when rung or when the time is up. A ring
/// with nobody waiting is kept, so a ring between two waits is never lost.
final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Void, Never>?
    }
    private let state = Mutex(State())

    /// A ring no wait has used yet.
    var pending: Bool { state.withLock { $0.rung } }

    func ring() {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            if let w = s.waiter { s.waiter = nil; return w }
            s.rung = true
            return nil
        }
        waiter?.resume()
    }

    func wait(upTo seconds: Double) async {
        // Rung while the caller was busy (the usual case under load): no timer needed.
        if state.withLock({ s in defer { s.rung = false }; return s.rung }) { return }
        let timer = Task { [weak self] in
            // A cancelled timer (the bell rang first) must not ring: that would end the next wait early.
            guard (try? await Task.sleep(for: .milliseconds(Int64(max(0, seconds) * 1000) + 1))) != nil else { return }
            self?.ring()
        }
        defer { timer.cancel() }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.rung { s.rung = false; return true }
                s.waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }
}
