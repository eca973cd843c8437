import Foundation
import GRDB
import NimbusStorage
import IAMCore
import Logging
import NimbusRuntime

/// IAM's policies and roles in SQLite (WAL, synchronous=FULL), one JSON row each.
final class IAMStore: Sendable {
    private let db: DatabaseQueue

    init(path: String) throws {
        db = try DurableDatabase.open(path, migrations: [("v1", """
            CREATE TABLE policies (arn TEXT PRIMARY KEY, json BLOB NOT NULL);
            CREATE TABLE roles (name TEXT PRIMARY KEY, json BLOB NOT NULL);
            """)])
    }

    func load() throws -> (policies: [ManagedPolicy], roles: [Role]) {
        try db.read { db in
            let decoder = JSONDecoder()
            let policies = try Data.fetchAll(db, sql: "SELECT json FROM policies").map { try decoder.decode(ManagedPolicy.self, from: $0) }
            let roles = try Data.fetchAll(db, sql: "SELECT json FROM roles").map { try decoder.decode(Role.self, from: $0) }
            return (policies, roles)
        }
    }

    func commit(_ changes: [IAMChange]) async throws {
        guard !changes.isEmpty else { return }
        try await db.write { db in
            let encoder = JSONEncoder()
            for change in changes {
                switch change {
                case .putPolicy(let p):
                    try db.execute(sql: "INSERT OR REPLACE INTO policies (arn, json) VALUES (?, ?)", arguments: [p.arn, try encoder.encode(p)])
                case .deletePolicy(let arn):
                    try db.execute(sql: "DELETE FROM policies WHERE arn = ?", arguments: [arn])
                case .putRole(let r):
                    try db.execute(sql: "INSERT OR REPLACE INTO roles (name, json) VALUES (?, ?)", arguments: [r.name, try encoder.encode(r)])
                case .deleteRole(let name):
                    try db.execute(sql: "DELETE FROM roles WHERE name = ?", arguments: [name])
                }
            }
        }
    }
}

/// Serializes IAM operations on the registry. Each answers once the state it changed or read is
/// on disk: its changes go through a group committer, and an operation that changes nothing (a
/// read, a refusal, an authorization decision) waits for the commits in flight, since it may have
/// decided from them. Before, the actor ran other operations while a commit was pending, and one
/// could answer from a role or attachment that a crash would then undo.
actor IAMEngine {
    private var registry: IAMRegistry
    nonisolated let committer: GroupCommitter<IAMChange>
    /// Bumped on every change to policies, roles or attachments, once it is durable; nodes drop
    /// cached decisions when it moves. Starts at the start time (µs), so a restarted IAM node never
    /// repeats a version.
    private(set) var policyVersion = Int64(Date().timeIntervalSince1970 * 1_000_000)

    /// `write` makes a batch of changes durable (the store's `commit`). A failed write leaves the
    /// registry ahead of the disk: the node exits, and its restart reloads what is durable.
    init(registry: IAMRegistry, logger: Logger, write: @escaping @Sendable ([IAMChange]) async throws -> Void) {
        self.registry = registry
        committer = GroupCommitter(write: write, onFailure: { error in
            logger.critical("commit failed: \(error); exiting so a restart reloads the durable state")
            exit(70)
        })
    }

    func perform<T: Sendable>(_ operation: @Sendable (inout IAMRegistry, Int64, inout [IAMChange]) throws -> T) async throws -> T {
        var changes: [IAMChange] = []
        let outcome = Result { try operation(&registry, Int64(Date().timeIntervalSince1970 * 1000), &changes) }
        if changes.isEmpty {
            try await committer.durable()
        } else {
            try await committer.commit(changes)
            policyVersion += 1
        }
        return try outcome.get()
    }

    func read<T: Sendable>(_ operation: @Sendable (IAMRegistry) throws -> T) async throws -> T {
        let outcome = Result { try operation(registry) }
        try await committer.durable()
        return try outcome.get()
    }
}
