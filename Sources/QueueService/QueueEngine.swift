import Foundation
import Logging
import NimbusRuntime
import QueueCore

/// The broker's shell: owns the `QueueBroker` core, makes its changes durable with group commit,
/// and parks long polls until a message may be there for them.
///
/// Group commit (`GroupCommitter`): an operation applies to the core at once and waits for the batch
/// its changes went into, so a burst of sends costs one fsync, not one each.
actor QueueEngine {
    private var broker: QueueBroker
    private let logger: Logger
    private let committer: GroupCommitter<StoreChange>
    private var parked: [String: [Int: Parked]] = [:]
    private var nextParkID = 0

    /// A parked poll's continuation and the messages a send received for it.
    private typealias Handoff = (continuation: CheckedContinuation<[ReceivedMessage]?, Never>, messages: [ReceivedMessage])

    private struct Parked {
        var options: QueueBroker.ReceiveOptions
        /// Resumed with messages received for the poll by a send (already durable), or with nil
        /// to look again (timer, another change, shutdown).
        var continuation: CheckedContinuation<[ReceivedMessage]?, Never>
        var timer: Task<Void, Never>
    }

    init(broker: QueueBroker, store: QueueStore, logger: Logger) {
        self.broker = broker
        self.logger = logger
        committer = GroupCommitter(write: { try store.commit($0) }, onFailure: { error in
            // The core already changed: it now says more than the disk. Stop rather than answer
            // from a state that a restart would not reproduce.
            logger.critical("commit failed: \(error); exiting so a restart reloads the durable state")
            exit(70)
        })
    }

    static func now() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: Operations

    /// Runs `operation` on the core and returns once its changes are durable. With `fromState`, an
    /// operation that changed nothing may have answered from changes still on their way to disk (a
    /// send recognised by its idempotency key, whose first send is in the batch being committed):
    /// it returns once those are durable too, so a crash cannot undo what its caller was told.
    func perform<T: Sendable>(fromState: Bool = false,
                              _ operation: @Sendable (inout QueueBroker, Int64, inout [StoreChange]) throws -> T) async throws -> T {
        var changes: [StoreChange] = []
        let result = try operation(&broker, Self.now(), &changes)
        if changes.isEmpty && fromState {
            try await committer.durable()
        } else {
            try await commit(changes)
        }
        return result
    }

    /// Reads the core without changing it.
    func read<T: Sendable>(_ operation: @Sendable (QueueBroker, Int64) throws -> T) rethrows -> T {
        try operation(broker, Self.now())
    }

    /// ReceiveMessage with long polling: waits up to `wait` seconds for a message, woken by a send,
    /// a visibility change or the moment a hidden message becomes visible (no sleep-polling).
    func receive(_ name: String, _ options: QueueBroker.ReceiveOptions, wait: Int) async throws -> [ReceivedMessage] {
        let deadline = Self.now() + Int64(wait) * 1000
        while true {
            var changes: [StoreChange] = []
            let now = Self.now()
            let messages = broker.receive(name, options, now: now, nonce: { UInt64.random(in: 1...UInt64.max) }, changes: &changes)
            if !messages.isEmpty || now >= deadline || !broker.queueExists(name) {
                try await commit(changes)
                return messages
            }
            try await commit(changes)  // expired or dead-lettered messages, if any
            if Task.isCancelled { return [] }
            let wake = min(deadline, broker.nextVisibleAt(name) ?? deadline)
            if let handed = await park(name, options, until: wake) { return handed }
        }
    }

    // MARK: Group commit

    /// Commits `changes`. A message they make visible goes straight to the polls parked on its
    /// queue: received in the same batch (one commit, not a second one for the receive) and handed
    /// over once that batch is durable.
    private func commit(_ changes: [StoreChange]) async throws {
        guard !changes.isEmpty else { return }
        var changes = changes
        let served = serveParked(for: &changes)
        wakeParked(for: changes)
        do {
            try await committer.commit(changes)
        } catch {
            for (continuation, _) in served { continuation.resume(returning: nil) }
            throw error
        }
        for (continuation, messages) in served { continuation.resume(returning: messages) }
    }

    // MARK: Long polls

    /// Parks a long poll until `wake` or a change to its queue; returns messages a send received for
    /// it, or nil to look again.
    private func park(_ name: String, _ options: QueueBroker.ReceiveOptions, until wake: Int64) async -> [ReceivedMessage]? {
        let id = nextParkID
        nextParkID += 1
        return await withCheckedContinuation { (continuation: CheckedContinuation<[ReceivedMessage]?, Never>) in
            let delay = max(0, wake - Self.now())
            let timer = Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(delay))
                await self?.unpark(name, id)
            }
            parked[name, default: [:]][id] = Parked(options: options, continuation: continuation, timer: timer)
        }
    }

    private func unpark(_ name: String, _ id: Int) {
        guard let entry = parked[name]?.removeValue(forKey: id) else { return }
        entry.timer.cancel()
        entry.continuation.resume(returning: nil)
    }

    /// Receives for the polls parked on queues where `changes` put a message, oldest poll first,
    /// adding the receives' changes to `changes`; returns who gets what once they are durable.
    private func serveParked(for changes: inout [StoreChange]) -> [Handoff] {
        guard !parked.isEmpty else { return [] }
        var queues: [String] = []
        for change in changes {
            if case .putMessage(let m) = change, parked[m.queue] != nil, !queues.contains(m.queue) { queues.append(m.queue) }
        }
        var served: [Handoff] = []
        let now = Self.now()
        for name in queues {
            for id in (parked[name]?.keys ?? [:].keys).sorted() {
                guard let options = parked[name]?[id]?.options else { continue }
                let messages = broker.receive(name, options, now: now, nonce: { UInt64.random(in: 1...UInt64.max) }, changes: &changes)
                if messages.isEmpty { break }  // nothing visible is left on this queue
                let entry = parked[name]!.removeValue(forKey: id)!
                entry.timer.cancel()
                served.append((entry.continuation, messages))
            }
            if parked[name]?.isEmpty == true { parked[name] = nil }
        }
        return served
    }

    /// A change that may make a message visible wakes the polls parked on its queue; they look again
    /// (and park again if another got there first).
    private func wakeParked(for changes: [StoreChange]) {
        guard !parked.isEmpty else { return }
        var queues: Set<String> = []
        for change in changes {
            // Any message change may bring a message's visibility closer; a woken poll recomputes.
            switch change {
            case .putMessage(let m), .receiveMessage(let m): queues.insert(m.queue)
            case .deleteQueue(let name): queues.insert(name)
            case .putQueue, .deleteMessage, .putIdempotentSend, .deleteIdempotentSend: break
            }
        }
        for name in queues {
            for id in Array(parked[name]?.keys ?? [:].keys) { unpark(name, id) }
        }
    }

    /// Wakes every parked poll (shutdown).
    func wakeAll() {
        for (name, entries) in parked { for id in entries.keys { unpark(name, id) } }
    }
}
