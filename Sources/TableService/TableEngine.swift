import Foundation
import Logging
import NimbusRuntime
import TableCore

/// The table node's shell: owns the `Tables` core and answers each write once it and its stream
/// record are on disk, many writes per transaction (group commit), batches in order.
actor TableEngine {
    private var tables: Tables
    let store: TableStore
    private let logger: Logger
    private let committer: GroupCommitter<TableChange>

    init(tables: Tables, store: TableStore, logger: Logger) {
        self.tables = tables
        self.store = store
        self.logger = logger
        committer = GroupCommitter(write: { try await store.commit($0) }, onFailure: { error in
            logger.critical("commit failed: \(error); exiting so a restart reloads the durable state")
            exit(70)
        })
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    func perform<T: Sendable>(_ operation: @Sendable (inout Tables, Double, inout [TableChange]) throws -> T) async throws -> T {
        var changes: [TableChange] = []
        let result = try operation(&tables, Self.now(), &changes)
        try await committer.commit(changes)
        recordsCommitted(changes)
        return result
    }

    // MARK: Long-polling readers (GetRecords with WaitTimeMilliseconds)

    /// Per "table|shard": the last sequence counter on disk, and the readers waiting for a newer one.
    private var committed: [String: UInt64] = [:]
    private var waiters: [String: [(id: Int, continuation: CheckedContinuation<Void, Never>)]] = [:]
    private var nextWaiter = 0

    /// Returns once a record after `sequence` is committed in the shard, or after `timeout`.
    func waitForRecords(table: String, shard: Int, after sequence: UInt64, timeout: Duration) async {
        let key = table + "|" + String(shard)
        if (committed[key] ?? 0) > sequence { return }
        let id = nextWaiter
        nextWaiter += 1
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            waiters[key, default: []].append((id, continuation))
            Task { [weak self] in
                try? await Task.sleep(for: timeout)
                await self?.timeOut(key, id)
            }
        }
    }

    private func timeOut(_ key: String, _ id: Int) {
        guard let index = waiters[key]?.firstIndex(where: { $0.id == id }) else { return }
        waiters[key]!.remove(at: index).continuation.resume()
    }

    private func recordsCommitted(_ changes: [TableChange]) {
        for case .appendRecord(let table, let record) in changes {
            let key = table + "|" + String(record.shard)
            committed[key] = max(committed[key] ?? 0, TableStore.counter(record.dynamodb.SequenceNumber))
            for waiter in waiters.removeValue(forKey: key) ?? [] { waiter.continuation.resume() }
        }
    }

    func read<T: Sendable>(_ operation: @Sendable (Tables) throws -> T) rethrows -> T { try operation(tables) }

}
