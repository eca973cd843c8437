import Foundation
import Logging
import Synchronization
import Testing
import TableCore
@testable import NimbusRuntime
@testable import TableService

@Suite struct TableEngineTests {
    /// The store's commit, except that the first batch with an item in it stays in flight
    /// (suspended, holding no thread) until the test lets it finish; and a log of events.
    final class SlowDisk: Sendable {
        let events = Mutex<[String]>([])
        let started: AsyncStream<Void>
        private let startedContinuation: AsyncStream<Void>.Continuation
        private let gate = Mutex<(open: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))
        let store: TableStore

        init(store: TableStore) {
            self.store = store
            (started, startedContinuation) = AsyncStream.makeStream(of: Void.self)
        }

        func write(_ batch: [TableChange]) async throws {
            if batch.contains(where: { if case .putItem = $0 { true } else { false } }) {
                startedContinuation.yield()
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let open = gate.withLock { g -> Bool in
                        if !g.open { g.waiter = continuation }
                        return g.open
                    }
                    if open { continuation.resume() }
                }
                note("wrote the item")
            }
            try store.commit(batch)
        }

        func note(_ event: String) { events.withLock { $0.append(event) } }
        func noted(_ event: String) -> Bool { events.withLock { $0.contains(event) } }

        func letItFinish() {
            gate.withLock { g -> CheckedContinuation<Void, Never>? in
                g.open = true
                defer { g.waiter = nil }
                return g.waiter
            }?.resume()
        }
    }

    @Test func aGetItemDoesNotReturnAWriteWhoseCommitIsInFlight() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-table-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let disk = SlowDisk(store: try TableStore(path: directory.appendingPathComponent("table.sqlite").path))
        let engine = TableEngine(tables: Tables(region: "us-east-1", account: "000000000000"), store: disk.store,
                                 logger: Logger(label: "test"), write: { try await disk.write($0) })
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
        let deadline = ContinuousClock.now + .seconds(10)
        while !disk.noted("answered the item"), engine.committer.state.withLock({ $0.waiters.count }) != 1 {
            try #require(ContinuousClock.now < deadline, "the GetItem neither answered nor waited within 10 s")
            await Task.yield()
        }
        disk.letItFinish()
        try await get.value
        _ = try await put.value
        #expect(disk.events.withLock { $0 } == ["looked", "wrote the item", "answered the item"])
    }
}
