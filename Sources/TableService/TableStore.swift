import Foundation
import GRDB
import NimbusStorage
import TableCore

/// Tables, items and stream records in SQLite (WAL, synchronous=FULL). An item change and its stream
/// record are written in the same transaction.
final class TableStore: Sendable {
    private let db: DatabaseQueue

    init(path: String) throws {
        db = try DurableDatabase.open(path, migrations: [("v1", """
            CREATE TABLE tables (name TEXT PRIMARY KEY, json BLOB NOT NULL);
            CREATE TABLE items (table_name TEXT NOT NULL, key TEXT NOT NULL, json BLOB NOT NULL, PRIMARY KEY (table_name, key));
            CREATE TABLE records (table_name TEXT NOT NULL, shard INTEGER NOT NULL, seq INTEGER NOT NULL, created REAL NOT NULL,
                                  json BLOB NOT NULL, PRIMARY KEY (table_name, shard, seq));
            """), ("v2-trim", """
            CREATE TABLE trims (table_name TEXT NOT NULL, shard INTEGER NOT NULL, through INTEGER NOT NULL, PRIMARY KEY (table_name, shard));
            CREATE INDEX records_created ON records (created);
            """), ("v3-transaction-tokens", """
            CREATE TABLE transaction_tokens (token TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, expires_at REAL NOT NULL);
            """)])
    }

    func load() throws -> (tables: [TableSchema], items: [(String, String, Item)], sequences: [String: [Int: UInt64]],
                           tokens: [TransactionToken]) {
        try db.read { db in
            let decoder = JSONDecoder()
            let tables = try Data.fetchAll(db, sql: "SELECT json FROM tables").map { try decoder.decode(TableSchema.self, from: $0) }
            let items = try Row.fetchAll(db, sql: "SELECT table_name, key, json FROM items").map { row in
                (row["table_name"] as String, row["key"] as String, try decoder.decode(Item.self, from: row["json"] as Data))
            }
            var sequences: [String: [Int: UInt64]] = [:]
            // A shard whose records were all trimmed still remembers its counter through `trims`.
            for row in try Row.fetchAll(db, sql: """
                SELECT table_name, shard, MAX(last) AS last FROM (
                  SELECT table_name, shard, MAX(seq) AS last FROM records GROUP BY table_name, shard
                  UNION ALL SELECT table_name, shard, through AS last FROM trims) GROUP BY table_name, shard
                """) {
                sequences[row["table_name"], default: [:]][row["shard"]] = UInt64(row["last"] as Int64)
            }
            let tokens = try Row.fetchAll(db, sql: "SELECT token, fingerprint, expires_at FROM transaction_tokens").map { row in
                TransactionToken(token: row["token"], fingerprint: row["fingerprint"], expiresAt: row["expires_at"])
            }
            return (tables, items, sequences, tokens)
        }
    }

    func commit(_ changes: [TableChange]) throws {
        try db.write { db in
            let encoder = JSONEncoder()
            // A stream record's NewImage is the item its write just stored: encoded once, for both rows.
            var stored: (table: String, item: Item, json: Data)?
            for change in changes {
                switch change {
                case .putTable(let t):
                    try db.execute(sql: "INSERT OR REPLACE INTO tables (name, json) VALUES (?, ?)", arguments: [t.name, try encoder.encode(t)])
                case .deleteTable(let name):
                    try db.execute(sql: "DELETE FROM tables WHERE name = ?", arguments: [name])
                    try db.execute(sql: "DELETE FROM items WHERE table_name = ?", arguments: [name])
                    try db.execute(sql: "DELETE FROM records WHERE table_name = ?", arguments: [name])
                    try db.execute(sql: "DELETE FROM trims WHERE table_name = ?", arguments: [name])
                case .putItem(let table, let key, let item):
                    let json = DynamoJSON.encode(item)
                    stored = (table, item, json)
                    try db.cachedStatement(sql: "INSERT OR REPLACE INTO items (table_name, key, json) VALUES (?, ?, ?)").run {
                        $0.bind(table)
                        $0.bind(key)
                        $0.bind(json)
                    }
                case .deleteItem(let table, let key):
                    try db.cachedStatement(sql: "DELETE FROM items WHERE table_name = ? AND key = ?").run {
                        $0.bind(table)
                        $0.bind(key)
                    }
                case .putTransactionToken(let t):
                    try db.execute(sql: "INSERT OR REPLACE INTO transaction_tokens (token, fingerprint, expires_at) VALUES (?, ?, ?)",
                                   arguments: [t.token, t.fingerprint, t.expiresAt])
                case .deleteTransactionToken(let token):
                    try db.execute(sql: "DELETE FROM transaction_tokens WHERE token = ?", arguments: [token])
                case .appendRecord(let table, let record):
                    let newImage = stored.flatMap { $0.table == table && record.dynamodb.NewImage == $0.item ? $0.json : nil }
                    try db.cachedStatement(sql: "INSERT INTO records (table_name, shard, seq, created, json) VALUES (?, ?, ?, ?, ?)").run {
                        $0.bind(table)
                        $0.bind(record.shard)
                        $0.bind(Int64(Self.counter(record.dynamodb.SequenceNumber)))
                        $0.bind(record.dynamodb.ApproximateCreationDateTime)
                        $0.bind(record.jsonData(newImageJSON: newImage))
                    }
                }
            }
        }
    }

    /// The per-shard counter inside a sequence number (its last 20 digits).
    static func counter(_ sequence: String) -> UInt64 { UInt64(sequence.suffix(20)) ?? 0 }

    /// Records of one shard after `afterSeq`, oldest first: their JSON as stored (the served shape)
    /// and the last sequence counter read.
    func records(table: String, shard: Int, after afterSeq: UInt64, limit: Int) throws -> (json: [Data], last: UInt64) {
        try db.read { db in
            var json: [Data] = []
            var last = afterSeq
            let rows = try Row.fetchCursor(db, sql: "SELECT seq, json FROM records WHERE table_name = ? AND shard = ? AND seq > ? ORDER BY seq LIMIT ?",
                                           arguments: [table, shard, Int64(afterSeq), limit])
            while let row = try rows.next() {
                json.append(row["json"])
                last = UInt64(row["seq"] as Int64)
            }
            return (json, last)
        }
    }

    /// Deletes records created before `cutoff` (the stream's 24-hour retention) and remembers, per
    /// shard, the last sequence counter trimmed. Returns how many records went.
    func trim(before cutoff: Double) throws -> Int {
        try db.write { db in
            try db.execute(sql: """
                INSERT INTO trims (table_name, shard, through)
                  SELECT table_name, shard, MAX(seq) FROM records WHERE created < ? GROUP BY table_name, shard
                ON CONFLICT (table_name, shard) DO UPDATE SET through = MAX(through, excluded.through)
                """, arguments: [cutoff])
            try db.execute(sql: "DELETE FROM records WHERE created < ?", arguments: [cutoff])
            return db.changesCount
        }
    }

    /// The last sequence counter trimmed from a shard (0: nothing trimmed yet).
    func trimmedThrough(table: String, shard: Int) throws -> UInt64 {
        try db.read { db in
            UInt64(try Int64.fetchOne(db, sql: "SELECT through FROM trims WHERE table_name = ? AND shard = ?", arguments: [table, shard]) ?? 0)
        }
    }

    func lastSequence(table: String, shard: Int) throws -> UInt64 {
        try db.read { db in UInt64(try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM records WHERE table_name = ? AND shard = ?", arguments: [table, shard]) ?? 0) }
    }
}
