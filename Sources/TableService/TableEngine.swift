import Foundation
import Logging
import NimbusRuntime
import Synchronization
import TableCore

/// The table node's shell: owns the `Tables` core and answers each write once it and its stream
/// record are on disk, many writes per transaction (group commit), batches in order.
actor TableEngine {
    private var tables: Tables
    let store: TableStore
    private let logger: Logger
    nonisolated let committer: GroupCommitter<TableChange>

    /// Stream records on disk, for GetRecords' long poll; told once per committed batch, off the actor.
    nonisolated let watch: CommittedRecords

    /// `write` makes a batch durable; nil: the store's `commit` (tests hold a commit in flight with
    /// their own).
    init(tables: Tables, store: TableStore, logger: Logger, write: (@Sendable ([TableChange]) async throws -> Void)? = nil) {
        self.tables = tables
        self.store = store
        self.logger = logger
        let watch = CommittedRecords()
        self.watch = watch
        let write = write ?? { try store.commit($0) }
        committer = GroupCommitter(write: { batch in
            try await write(batch)
            watch.committed(batch)
        }, onFailure: { error in
            logger.critical("commit failed: \(error); exiting so a restart reloads the durable state")
            exit(70)
        })
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    /// Runs `operation` on the core and returns once its changes, and any it may have read, are
    /// durable. A write that changes nothing or fails (a condition that does not hold) answers only
    /// once the writes it saw are on disk: a retried PutItem refused with attribute_not_exists must
    /// not tell its caller "already there" about an item a crash could still lose. (Changes an
    /// operation made before it failed are committed too: the core has them.)
    func perform<T: Sendable>(_ operation: @Sendable (inout Tables, Double, inout [TableChange]) throws -> T) async throws -> T {
        var changes: [TableChange] = []
        let outcome = Result { try operation(&tables, Self.now(), &changes) }
        if changes.isEmpty { try await committer.durable() } else { try await committer.commit(changes) }
        return try outcome.get()
    }

    /// Returns once a record after `sequence` is committed in the shard, or after `timeout`.
    nonisolated func waitForRecords(table: String, shard: Int, after sequence: UInt64, timeout: Duration) async {
        await watch.wait(table: table, shard: shard, after: sequence, timeout: timeout)
    }

    func read<T: Sendable>(_ operation: @Sendable (Tables) throws -> T) rethrows -> T { try operation(tables) }

    /// Reads items, answering once what was read is durable: a GetItem, Query or Scan never returns
    /// a write whose commit is still in flight (one a crash could undo, unacknowledged to its writer).
    func readItems<T: Sendable>(_ operation: @Sendable (Tables) throws -> T) async throws -> T {
        let outcome = Result { try operation(tables) }
        try await committer.durable()
        return try outcome.get()
    }
}

/// Per table and shard: the last sequence counter on disk, and the GetRecords long polls waiting
/// for a newer one.
final class CommittedRecords: Sendable {
    private struct ShardKey: Hashable {
        var table: String
        var shard: Int
    }

    private struct State {
        var committed: [ShardKey: UInt64] = [:]
        var waiters: [ShardKey: [(id: Int, continuation: CheckedContinuation<Void, Never>)]] = [:]
        var nextWaiter = 0
        /// Committed item writes (puts, updates, deletes) per table since the process started.
        var itemWrites: [String: Int] = [:]
    }

    /// Committed item writes per table since the process started (health details: the console's rates).
    var itemWrites: [String: Int] { state.withLock { $0.itemWrites } }

    private let state = Mutex(State())

    func wait(table: String, shard: Int, after sequence: UInt64, timeout: Duration) async {
        let key = ShardKey(table: table, shard: shard)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let id = state.withLock { s -> Int? in
                if (s.committed[key] ?? 0) > sequence { return nil }
                let id = s.nextWaiter
                s.nextWaiter += 1
                s.waiters[key, default: []].append((id, continuation))
                return id
            }
            guard let id else { return continuation.resume() }
            Task {
                try? await Task.sleep(for: timeout)
                self.timeOut(key, id)
            }
        }
    }

    private func timeOut(_ key: ShardKey, _ id: Int) {
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            guard let index = s.waiters[key]?.firstIndex(where: { $0.id == id }) else { return nil }
            return s.waiters[key]!.remove(at: index).continuation
        }
        waiter?.resume()
    }

    /// A batch is on disk: wakes the readers of every shard it appended to. A deleted table's
    /// counters are forgotten: a new table of that name numbers its records from 1 again, and an
    /// old, higher counter would let its readers' long polls return at once, again and again.
    func committed(_ changes: [TableChange]) {
        var latest: [ShardKey: UInt64] = [:]
        var deleted: [String] = []
        // Item writes per table: a batch names one or two tables, so a list beats hashing each name.
        var writes: [(table: String, count: Int)] = []
        for change in changes {
            switch change {
            case .putItem(let table, _, _), .deleteItem(let table, _):
                if let i = writes.firstIndex(where: { $0.table == table }) { writes[i].count += 1 } else { writes.append((table, 1)) }
            case .appendRecord(let table, let record):
                let key = ShardKey(table: table, shard: record.shard)
                latest[key] = max(latest[key] ?? 0, TableStore.counter(record.dynamodb.SequenceNumber))
            case .deleteTable(let table):
                deleted.append(table)
                latest = latest.filter { $0.key.table != table }
            default:
                break
            }
        }
        if !writes.isEmpty {
            state.withLock { s in for (table, count) in writes { s.itemWrites[table, default: 0] += count } }
        }
        guard !latest.isEmpty || !deleted.isEmpty else { return }
        let woken = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            for table in deleted {
                s.committed = s.committed.filter { $0.key.table != table }
                s.itemWrites[table] = nil
            }
            var woken: [CheckedContinuation<Void, Never>] = []
            for (key, counter) in latest {
                s.committed[key] = max(s.committed[key] ?? 0, counter)
                woken += (s.waiters.removeValue(forKey: key) ?? []).map(\.continuation)
            }
            return woken
        }
        for continuation in woken { continuation.resume() }
    }
}
