import Foundation
import GRDB
import NimbusStorage
import NotifierCore

/// The notifier's durable state in SQLite (WAL, synchronous=FULL): topics, subscriptions (with their
/// pending confirmation tokens), the outbox of deliveries, the delivery log and the Publish
/// idempotency keys. Records are stored as JSON beside the columns that are queried.
final class NotifierStore: Sendable {
    private let db: DatabaseQueue

    init(path: String) throws {
        db = try DurableDatabase.open(path, migrations: [("v1", """
            CREATE TABLE topics (arn TEXT PRIMARY KEY, record BLOB NOT NULL);
            CREATE TABLE subscriptions (
                arn TEXT PRIMARY KEY,
                topic_arn TEXT NOT NULL,
                confirmed INTEGER NOT NULL,
                token_expires_at REAL,
                record BLOB NOT NULL
            );
            CREATE TABLE outbox (id TEXT PRIMARY KEY, due_at REAL NOT NULL, record BLOB NOT NULL);
            CREATE TABLE delivery_log (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                delivery_id TEXT NOT NULL,
                message_id TEXT NOT NULL,
                subscription_arn TEXT NOT NULL,
                protocol TEXT NOT NULL,
                endpoint TEXT NOT NULL,
                delivered INTEGER NOT NULL,
                attempts INTEGER NOT NULL,
                at REAL NOT NULL,
                error TEXT
            );
            CREATE TABLE dedupe (key TEXT PRIMARY KEY, message_id TEXT NOT NULL, expires_at REAL NOT NULL);
            """)])
    }

    struct Loaded {
        var topics: [Topic]
        var subscriptions: [Subscription]
        var outbox: [Delivery]
        var dedupe: [DedupeEntry]
        var delivered: Int
        var failed: Int
    }

    func load() throws -> Loaded {
        try db.read { db in
            let decoder = JSONDecoder()
            func records<T: Decodable>(_ type: T.Type, _ sql: String) throws -> [T] {
                try Row.fetchAll(db, sql: sql).map { try decoder.decode(T.self, from: $0["record"] as Data) }
            }
            return Loaded(
                topics: try records(Topic.self, "SELECT record FROM topics"),
                subscriptions: try records(Subscription.self, "SELECT record FROM subscriptions"),
                outbox: try records(Delivery.self, "SELECT record FROM outbox ORDER BY due_at"),
                dedupe: try Row.fetchAll(db, sql: "SELECT * FROM dedupe").map {
                    DedupeEntry(key: $0["key"], messageId: $0["message_id"], expiresAt: $0["expires_at"])
                },
                delivered: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM delivery_log WHERE delivered = 1") ?? 0,
                failed: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM delivery_log WHERE delivered = 0") ?? 0)
        }
    }

    /// Writes `changes` in one transaction, in order.
    func commit(_ changes: [NotifierChange]) throws {
        try db.write { db in
            let encoder = JSONEncoder()
            for change in changes {
                switch change {
                case .putTopic(let t):
                    try db.execute(sql: "INSERT OR REPLACE INTO topics (arn, record) VALUES (?, ?)", arguments: [t.arn, try encoder.encode(t)])
                case .deleteTopic(let arn):
                    try db.execute(sql: "DELETE FROM topics WHERE arn = ?", arguments: [arn])
                case .putSubscription(let s):
                    try db.execute(sql: """
                        INSERT OR REPLACE INTO subscriptions (arn, topic_arn, confirmed, token_expires_at, record) VALUES (?, ?, ?, ?, ?)
                        """, arguments: [s.arn, s.topicArn, s.confirmed, s.tokenExpiresAt, try encoder.encode(s)])
                case .deleteSubscription(let arn):
                    try db.execute(sql: "DELETE FROM subscriptions WHERE arn = ?", arguments: [arn])
                case .putDelivery(let d):
                    try db.cachedStatement(sql: "INSERT OR REPLACE INTO outbox (id, due_at, record) VALUES (?, ?, ?)")
                        .execute(arguments: [d.id, d.dueAt, d.jsonData()])
                case .deleteDelivery(let id):
                    try db.cachedStatement(sql: "DELETE FROM outbox WHERE id = ?").execute(arguments: [id])
                case .logOutcome(let o):
                    try db.cachedStatement(sql: """
                        INSERT INTO delivery_log (delivery_id, message_id, subscription_arn, protocol, endpoint, delivered, attempts, at, error)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """).execute(arguments: [o.deliveryId, o.messageId, o.subscriptionArn, o.deliveryProtocol.rawValue, o.endpoint,
                                                 o.delivered, o.attempts, o.at, o.error])
                case .putDedupe(let e):
                    try db.cachedStatement(sql: "INSERT OR REPLACE INTO dedupe (key, message_id, expires_at) VALUES (?, ?, ?)")
                        .execute(arguments: [e.key, e.messageId, e.expiresAt])
                case .deleteDedupe(let key):
                    try db.cachedStatement(sql: "DELETE FROM dedupe WHERE key = ?").execute(arguments: [key])
                }
            }
        }
    }

    /// Trims the delivery log to its newest `keep` rows (it is for inspection, not for recovery).
    func trimLog(keep: Int) async throws {
        try await db.write { db in
            try db.execute(sql: "DELETE FROM delivery_log WHERE seq <= (SELECT MAX(seq) FROM delivery_log) - ?", arguments: [keep])
        }
    }
}
