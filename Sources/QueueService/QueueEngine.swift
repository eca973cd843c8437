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

    private struct Parked {
        var continuation: CheckedContinuation<Void, Never>
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

    /// Runs `operation` on the core and returns once its changes are durable.
    func perform<T: Sendable>(_ operation: @Sendable (inout QueueBroker, Int64, inout [StoreChange]) throws -> T) async throws -> T {
        var changes: [StoreChange] = []
        let result = try operation(&broker, Self.now(), &changes)
        try await commit(changes)
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
            await park(name, until: wake)
        }
    }

    // MARK: Group commit

    private func commit(_ changes: [StoreChange]) async throws {
        guard !changes.isEmpty else { return }
        wakeParked(for: changes)
        try await committer.commit(changes)
    }

    // MARK: Long polls

    private func park(_ name: String, until wake: Int64) async {
        let id = nextParkID
        nextParkID += 1
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let delay = max(0, wake - Self.now())
            let timer = Task { [weak self] in
                try? await Task.sleep(for: .milliseconds(delay))
                await self?.unpark(name, id)
            }
            parked[name, default: [:]][id] = Parked(continuation: continuation, timer: timer)
        }
    }

    private func unpark(_ name: String, _ id: Int) {
        guard let entry = parked[name]?.removeValue(forKey: id) else { return }
        entry.timer.cancel()
        entry.continuation.resume()
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
            case .putQueue, .deleteMessage: break
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
