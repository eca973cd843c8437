import GRDB

/// How every Nimbus service keeps state: one SQLite file in WAL mode with synchronous=FULL, so a
/// committed transaction is on disk (fsync) before anyone is told of it.
public enum DurableDatabase {
    /// Opens (creating if needed) the database at `path` and applies `migrations` in order, each once.
    public static func open(_ path: String, migrations: [(name: String, sql: String)]) throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        let db = try DatabaseQueue(path: path, configuration: configuration)
        var migrator = DatabaseMigrator()
        for migration in migrations {
            migrator.registerMigration(migration.name) { db in try db.execute(sql: migration.sql) }
        }
        try migrator.migrate(db)
        return db
    }
}
