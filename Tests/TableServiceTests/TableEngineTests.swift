import Foundation
import Logging
import Synchronization
import Testing
import NimbusTestSupport
import TableCore
@testable import NimbusRuntime
@testable import TableService

@Suite struct TableEngineTests {
    @Test func aGetItemDoesNotReturnAWriteWhoseCommitIsInFlight() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-table-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try TableStore(path: directory.appendingPathComponent("table.sqlite").path)
        // The store's commit, except that the first batch with an item in it stays in flight
        // (suspended, holding no thread) until the test lets it finish.
        let disk = SlowDisk<TableChange>(holding: { $0.contains { if case .putItem = $0 { true } else { false } } })
        let engine = TableEngine(tables: Tables(region: "us-east-1", account: "000000000000"), store: store,
                                 logger: Logger(label: "test"), write: { batch in
            if disk.holds(batch) {
                await disk.hold(batch)
                disk.note("wrote the item")
            }
            try store.commit(batch)
        })
        _ = try await engine.perform { t, now, changes in
            try t.createTable(name: "orders", partitionKey: .init(name: "orderID", type: "S"), sortKey: nil,
                              streamViewType: "NEW_IMAGE", shards: 1, now: now, changes: &changes)
        }
        let put = Task {
            try await engine.perform { t, now, changes in try t.putItem("orders", ["orderID": .s("1")], condition: nil, now: now, changes: &changes) }
        }
        for await _ in disk.started { break }
        let get = Task {
            let item = try await engine.readItems { t in
                disk.note("looked")
                return try t.getItem("orders", key: ["orderID": .s("1")])
            }
            disk.note(item == nil ? "answered nothing" : "answered the item")
        }
        // Let the write finish only once the GetItem has answered or waits at the committer (the
        // write in flight took its own waiters along): a GetItem that does not wait shows in the order.
        try await until("the GetItem answering or waiting") {
            disk.noted("answered the item") || engine.committer.state.withLock { $0.waiters.count } == 1
        }
        disk.letItFinish()
        try await get.value
        _ = try await put.value
        #expect(disk.events == ["looked", "wrote the item", "answered the item"])
    }
}
