import Foundation
import GRDB
import NimbusStorage
import QueueCore

/// The broker's durable state in SQLite (WAL, synchronous=FULL): a change is on disk when `commit`
/// returns. Many changes go in one transaction; the engine makes sure every acknowledged one has.
final class QueueStore: Sendable {
    private let db: DatabaseQueue

    init(path: String) throws {
        db = try DurableDatabase.open(path, migrations: [("v1", """
            CREATE TABLE queues (
                name TEXT PRIMARY KEY,
                attributes BLOB NOT NULL,
                created INTEGER NOT NULL,
                modified INTEGER NOT NULL,
                tags BLOB NOT NULL
            );
            CREATE TABLE messages (
                seq INTEGER PRIMARY KEY,
                queue TEXT NOT NULL,
                message_id TEXT NOT NULL,
                body TEXT NOT NULL,
                md5 TEXT NOT NULL,
                attributes BLOB,
                md5_attributes TEXT,
                sender_id TEXT NOT NULL,
                sent INTEGER NOT NULL,
                visible_at INTEGER NOT NULL,
                receive_count INTEGER NOT NULL,
                first_receive INTEGER,
                receipt TEXT
            );
            CREATE INDEX messages_by_queue ON messages(queue);
            """), ("v2-idempotency-keys", """
            CREATE TABLE idempotency_keys (
                queue TEXT NOT NULL,
                key TEXT NOT NULL,
                message_id TEXT NOT NULL,
                md5 TEXT NOT NULL,
                md5_attributes TEXT,
                sent INTEGER NOT NULL,
                PRIMARY KEY (queue, key)
            );
            """)])
    }

    /// Everything the broker had, with the idempotency keys still inside their window at `now`
    /// (older ones are deleted here: their window passed while the broker was down).
    func load(now: Int64) throws -> (queues: [StoredQueue], messages: [StoredMessage], idempotentSends: [IdempotentSend]) {
        try db.write { db in
            try db.execute(sql: "DELETE FROM idempotency_keys WHERE sent <= ?", arguments: [now - QueueBroker.idempotencyWindow])
        }
        return try db.read { db in
            let decoder = JSONDecoder()
            let queues = try Row.fetchAll(db, sql: "SELECT * FROM queues").map { row in
                StoredQueue(name: row["name"], attributes: try decoder.decode(QueueAttributes.self, from: row["attributes"] as Data),
                            createdTimestamp: row["created"], lastModifiedTimestamp: row["modified"],
                            tags: try decoder.decode([String: String].self, from: row["tags"] as Data))
            }
            let messages = try Row.fetchAll(db, sql: "SELECT * FROM messages ORDER BY seq").map { row in
                StoredMessage(seq: row["seq"], queue: row["queue"], messageId: row["message_id"], body: row["body"],
                              md5OfBody: row["md5"], messageAttributes: row["attributes"], md5OfMessageAttributes: row["md5_attributes"],
                              senderId: row["sender_id"], sentTimestamp: row["sent"], visibleAt: row["visible_at"],
                              receiveCount: row["receive_count"], firstReceiveTimestamp: row["first_receive"], receipt: row["receipt"])
            }
            let sends = try Row.fetchAll(db, sql: "SELECT * FROM idempotency_keys ORDER BY sent").map { row in
                IdempotentSend(queue: row["queue"], key: row["key"], messageId: row["message_id"], md5OfBody: row["md5"],
                               md5OfMessageAttributes: row["md5_attributes"], sentTimestamp: row["sent"])
            }
            return (queues, messages, sends)
        }
    }

    /// Writes `changes` in one transaction. Within it only the last change to each message is
    /// written: a message sent, received and deleted in one batch costs nothing. A receive of a
    /// message already on disk updates the four columns a receive changes, not the whole row.
    func commit(_ changes: [StoreChange]) throws {
        var last: [Int64: Int] = [:]
        var putSeqs: Set<Int64> = []
        for (index, change) in changes.enumerated() {
            switch change {
            case .putMessage(let m): last[m.seq] = index; putSeqs.insert(m.seq)
            case .receiveMessage(let m): last[m.seq] = index
            case .deleteMessage(let seq): last[seq] = index
            default: break
            }
        }
        let batch = Batch(changes: changes, lastChange: last, putInBatch: putSeqs)
        try db.write { db in try batch.write(db) }
    }

    private struct Batch {
        var changes: [StoreChange]
        /// The index of the last change to each message in `changes`: only that one is written.
        var lastChange: [Int64: Int]
        /// Messages put in this batch: not on disk yet, so a later receive writes the whole row.
        var putInBatch: Set<Int64>

        func write(_ db: Database) throws {
            let encoder = JSONEncoder()
            let put = try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO messages (seq, queue, message_id, body, md5, attributes, md5_attributes, sender_id, sent,
                    visible_at, receive_count, first_receive, receipt) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)
                """)
            let delete = try db.cachedStatement(sql: "DELETE FROM messages WHERE seq = ?")
            let received = try db.cachedStatement(sql: "UPDATE messages SET visible_at = ?, receive_count = ?, first_receive = ?, receipt = ? WHERE seq = ?")
            // Prepared only when a batch has keys: sends without one cost nothing more.
            var putKey: Statement?
            var deleteKey: Statement?
            for (index, change) in changes.enumerated() {
                switch change {
                case .putQueue(let q):
                    try db.execute(sql: "INSERT OR REPLACE INTO queues (name, attributes, created, modified, tags) VALUES (?,?,?,?,?)",
                                   arguments: [q.name, try encoder.encode(q.attributes), q.createdTimestamp, q.lastModifiedTimestamp,
                                               try encoder.encode(q.tags)])
                case .deleteQueue(let name):
                    try db.execute(sql: "DELETE FROM queues WHERE name = ?", arguments: [name])
                    try db.execute(sql: "DELETE FROM messages WHERE queue = ?", arguments: [name])
                    try db.execute(sql: "DELETE FROM idempotency_keys WHERE queue = ?", arguments: [name])
                case .putIdempotentSend(let k):
                    if putKey == nil {
                        putKey = try db.cachedStatement(sql: """
                            INSERT OR REPLACE INTO idempotency_keys (queue, key, message_id, md5, md5_attributes, sent) VALUES (?,?,?,?,?,?)
                            """)
                    }
                    try putKey!.run {
                        $0.bind(k.queue)
                        $0.bind(k.key)
                        $0.bind(k.messageId)
                        $0.bind(k.md5OfBody)
                        $0.bind(k.md5OfMessageAttributes)
                        $0.bind(k.sentTimestamp)
                    }
                case .deleteIdempotentSend(let queue, let key):
                    if deleteKey == nil { deleteKey = try db.cachedStatement(sql: "DELETE FROM idempotency_keys WHERE queue = ? AND key = ?") }
                    try deleteKey!.run {
                        $0.bind(queue)
                        $0.bind(key)
                    }
                case .receiveMessage(let m) where lastChange[m.seq] == index && !putInBatch.contains(m.seq):
                    try received.run {
                        $0.bind(m.visibleAt)
                        $0.bind(m.receiveCount)
                        $0.bind(m.firstReceiveTimestamp)
                        $0.bind(m.receipt)
                        $0.bind(m.seq)
                    }
                case .putMessage(let m) where lastChange[m.seq] == index,
                     .receiveMessage(let m) where lastChange[m.seq] == index:
                    try put.run {
                        $0.bind(m.seq)
                        $0.bind(m.queue)
                        $0.bind(m.messageId)
                        $0.bind(m.body)
                        $0.bind(m.md5OfBody)
                        $0.bind(m.messageAttributes)
                        $0.bind(m.md5OfMessageAttributes)
                        $0.bind(m.senderId)
                        $0.bind(m.sentTimestamp)
                        $0.bind(m.visibleAt)
                        $0.bind(m.receiveCount)
                        $0.bind(m.firstReceiveTimestamp)
                        $0.bind(m.receipt)
                    }
                case .deleteMessage(let seq) where lastChange[seq] == index:
                    try delete.run { $0.bind(seq) }
                case .putMessage, .receiveMessage, .deleteMessage:
                    break
                }
            }
        }
    }
}
