import Foundation
import GRDB
import NimbusStorage
import IAMCore

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

/// Serializes IAM operations on the registry; each answers once its change is on disk. IAM writes
/// are rare (set-up, attach/detach), so one commit per operation is enough here.
actor IAMEngine {
    private var registry: IAMRegistry
    private let store: IAMStore
    /// Bumped on every change to policies, roles or attachments; nodes drop cached decisions when
    /// it moves. Starts at the start time (µs), so a restarted IAM node never repeats a version.
    private(set) var policyVersion = Int64(Date().timeIntervalSince1970 * 1_000_000)

    init(registry: IAMRegistry, store: IAMStore) {
        self.registry = registry
        self.store = store
    }

    func perform<T: Sendable>(_ operation: @Sendable (inout IAMRegistry, Int64, inout [IAMChange]) throws -> T) async throws -> T {
        var changes: [IAMChange] = []
        let result = try operation(&registry, Int64(Date().timeIntervalSince1970 * 1000), &changes)
        try await store.commit(changes)
        if !changes.isEmpty { policyVersion += 1 }
        return result
    }

    func read<T: Sendable>(_ operation: @Sendable (IAMRegistry) throws -> T) rethrows -> T {
        try operation(registry)
    }
}
