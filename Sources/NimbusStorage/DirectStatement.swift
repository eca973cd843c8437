import Foundation
import GRDB
import GRDBSQLite

/// Values bound straight into a prepared statement through SQLite's C API, in parameter order.
public struct DirectBindings {
    fileprivate let statement: SQLiteStatement
    fileprivate var index: Int32 = 0
    /// The first failed bind's result code (a value too big, say); `run` throws it.
    fileprivate var failure = SQLITE_OK

    private mutating func check(_ code: Int32) {
        if code != SQLITE_OK && failure == SQLITE_OK { failure = code }
    }

    /// SQLITE_TRANSIENT: SQLite copies the bytes, so they need not outlive the call.
    private static let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

    public mutating func bind(_ value: String) {
        index += 1
        var value = value
        let statement = statement, index = index
        check(value.withUTF8 { utf8 in
            // A nil pointer would bind NULL, not an empty text.
            guard let base = utf8.baseAddress, !utf8.isEmpty else { return sqlite3_bind_text(statement, index, "", 0, Self.transient) }
            return base.withMemoryRebound(to: CChar.self, capacity: utf8.count) { sqlite3_bind_text(statement, index, $0, Int32(utf8.count), Self.transient) }
        })
    }

    public mutating func bind(_ value: String?) {
        guard let value else { return bindNull() }
        bind(value)
    }

    public mutating func bind(_ value: Data) {
        index += 1
        let statement = statement, index = index
        check(value.withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress, !bytes.isEmpty else { return sqlite3_bind_zeroblob(statement, index, 0) }
            return sqlite3_bind_blob(statement, index, base, Int32(bytes.count), Self.transient)
        })
    }

    public mutating func bind(_ value: Data?) {
        guard let value else { return bindNull() }
        bind(value)
    }

    public mutating func bind(_ value: Int64) {
        index += 1
        check(sqlite3_bind_int64(statement, index, value))
    }

    public mutating func bind(_ value: Int64?) {
        guard let value else { return bindNull() }
        bind(value)
    }

    public mutating func bind(_ value: Int) { bind(Int64(value)) }

    public mutating func bind(_ value: Double) {
        index += 1
        check(sqlite3_bind_double(statement, index, value))
    }

    public mutating func bind(_ value: Double?) {
        guard let value else { return bindNull() }
        bind(value)
    }

    public mutating func bindNull() {
        index += 1
        check(sqlite3_bind_null(statement, index))
    }
}

extension Statement {
    /// Runs an INSERT, REPLACE or DELETE that returns no rows, binding its parameters with `bind`.
    /// GRDB's `execute(arguments:)` boxes every argument into an existential and converts it, which
    /// showed in the profile of every durable write; this binds directly. Only for plain writes
    /// inside a transaction GRDB opened: GRDB's transaction observers are not told of them (Nimbus
    /// registers none), and every parameter must be bound each time.
    public func run(_ bind: (inout DirectBindings) -> Void) throws {
        let statement = sqliteStatement
        sqlite3_reset(statement)
        var bindings = DirectBindings(statement: statement)
        bind(&bindings)
        precondition(bindings.index == sqlite3_bind_parameter_count(statement), "every parameter is bound")
        let code = bindings.failure == SQLITE_OK ? sqlite3_step(statement) : bindings.failure
        guard code == SQLITE_DONE else {
            let message = String(cString: sqlite3_errmsg(sqlite3_db_handle(statement)))
            sqlite3_reset(statement)
            throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: sql)
        }
    }
}
