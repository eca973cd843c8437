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
        return result
    }

    func read<T: Sendable>(_ operation: @Sendable (Tables) throws -> T) rethrows -> T { try operation(tables) }

}
