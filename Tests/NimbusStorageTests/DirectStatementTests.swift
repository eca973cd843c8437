import Foundation
import GRDB
import NimbusStorage
import Testing

/// Values bound through SQLite's C API must read back exactly as GRDB's own binding would store them.
@Suite struct DirectStatementTests {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-direct-\(UUID().uuidString)")

    func database() throws -> DatabaseQueue {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return try DurableDatabase.open(folder.appendingPathComponent("db.sqlite").path,
                                        migrations: [("v1", "CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT, b BLOB, d REAL, o TEXT)")])
    }

    @Test func everyKindOfValueReadsBackAsBound() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        let db = try database()
        try db.write { db in
            let insert = try db.cachedStatement(sql: "INSERT INTO t (id, s, b, d, o) VALUES (?, ?, ?, ?, ?)")
            for (id, text, blob) in [(1, "ünï 🚀 \"x\"", Data([0, 1, 255])), (2, "", Data()), (3, "plain", Data("{}".utf8))] {
                try insert.run {
                    $0.bind(Int64(id))
                    $0.bind(text)
                    $0.bind(blob)
                    $0.bind(Double(id) + 0.5)
                    $0.bind(id == 3 ? "set" : nil as String?)
                }
            }
        }
        let rows = try db.read { try Row.fetchAll($0, sql: "SELECT id, s, b, d, o, typeof(s) AS ts, typeof(b) AS tb FROM t ORDER BY id") }
        #expect(rows.map { $0["s"] as String } == ["ünï 🚀 \"x\"", "", "plain"])
        #expect(rows.map { $0["b"] as Data } == [Data([0, 1, 255]), Data(), Data("{}".utf8)])
        // An empty text or blob is an empty value, not NULL.
        #expect(rows.map { $0["ts"] as String } == ["text", "text", "text"])
        #expect(rows.map { $0["tb"] as String } == ["blob", "blob", "blob"])
        #expect(rows.map { $0["d"] as Double } == [1.5, 2.5, 3.5])
        #expect(rows.map { $0["o"] as String? } == [nil, nil, "set"])
    }

    @Test func aFailedStatementThrowsAndTheStatementStaysUsable() throws {
        defer { try? FileManager.default.removeItem(at: folder) }
        let db = try database()
        try db.write { db in
            let insert = try db.cachedStatement(sql: "INSERT INTO t (id, s) VALUES (?, ?)")
            try insert.run { $0.bind(Int64(1)); $0.bind("a") }
            #expect(throws: DatabaseError.self) { try insert.run { $0.bind(Int64(1)); $0.bind("again") } }
            try insert.run { $0.bind(Int64(2)); $0.bind("b") }
        }
        #expect(try db.read { try String.fetchAll($0, sql: "SELECT s FROM t ORDER BY id") } == ["a", "b"])
    }
}
