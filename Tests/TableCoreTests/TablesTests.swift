import Foundation
import Testing
@testable import TableCore

/// The TableError `body` throws (any other error as code "?"), nil when it throws none.
func thrown(_ body: () throws -> Void) -> TableError? {
    do { try body(); return nil } catch let error as TableError { return error } catch { return TableError("?", "\(error)") }
}

@Suite struct TablesTests {
    func ordersTable(view: String? = "NEW_IMAGE", shards: Int = 1) throws -> (Tables, [TableChange]) {
        var tables = Tables(region: "us-east-1", account: "000000000000")
        var changes: [TableChange] = []
        _ = try tables.createTable(name: "orders", partitionKey: .init(name: "orderID", type: "S"), sortKey: nil,
                                   streamViewType: view, shards: shards, now: 1_800_000_000, changes: &changes)
        return (tables, changes)
    }

    func records(_ changes: [TableChange]) -> [StreamRecord] {
        changes.compactMap { if case .appendRecord(_, let r) = $0 { return r } else { return nil } }
    }

    @Test func putWritesTheItemAndItsInsertRecordTogether() throws {
        var (tables, changes) = try TablesTests().ordersTable()
        changes = []
        let item: Item = ["orderID": .s("o-1"), "order": .s(#"{"item": "latex gloves"}"#)]
        let notExists = try ConditionParser.parse("attribute_not_exists(orderID)", names: nil, values: nil)
        #expect(try tables.putItem("orders", item, condition: notExists, now: 1_800_000_001.5, changes: &changes) == nil)
        #expect(changes.count == 2)
        guard case .putItem(_, _, let written) = changes[0] else { Issue.record("no item write"); return }
        #expect(written == item)
        let record = records(changes)[0]
        #expect(record.eventName == "INSERT")
        #expect(record.dynamodb.Keys == ["orderID": .s("o-1")])
        #expect(record.dynamodb.NewImage == item)
        #expect(record.dynamodb.OldImage == nil)
        #expect(record.dynamodb.StreamViewType == "NEW_IMAGE")
        #expect(record.dynamodb.ApproximateCreationDateTime == 1_800_000_001)
        #expect(try tables.getItem("orders", key: ["orderID": .s("o-1")]) == item)
        // Idempotent insert: the same condition now fails, and nothing is written.
        changes = []
        do {
            _ = try tables.putItem("orders", item, condition: notExists, now: 1, changes: &changes)
            Issue.record("a second insert passed attribute_not_exists")
        } catch {
            #expect(error.code == "ConditionalCheckFailedException")
        }
        #expect(changes.isEmpty)
    }

    @Test func modifyAndRemoveCarryImagesByViewType() throws {
        var (tables, changes) = try ordersTable(view: "NEW_AND_OLD_IMAGES")
        let v1: Item = ["orderID": .s("o-1"), "n": .n("1")]
        let v2: Item = ["orderID": .s("o-1"), "n": .n("2")]
        _ = try tables.putItem("orders", v1, condition: nil, now: 1, changes: &changes)
        #expect(try tables.putItem("orders", v2, condition: nil, now: 2, changes: &changes) == v1)
        #expect(try tables.deleteItem("orders", key: ["orderID": .s("o-1")], condition: nil, now: 3, changes: &changes) == v2)
        let events = records(changes)
        #expect(events.map(\.eventName) == ["INSERT", "MODIFY", "REMOVE"])
        #expect(events[1].dynamodb.OldImage == v1 && events[1].dynamodb.NewImage == v2)
        #expect(events[2].dynamodb.OldImage == v2 && events[2].dynamodb.NewImage == nil)
        #expect(events.map(\.dynamodb.SequenceNumber) == events.map(\.dynamodb.SequenceNumber).sorted())
        #expect(Set(events.map(\.eventID)).count == 3)
    }

    @Test func aNoOpWriteAndADeleteOfNothingAppendNoRecord() throws {
        var (tables, changes) = try TablesTests().ordersTable()
        let item: Item = ["orderID": .s("o-1")]
        _ = try tables.putItem("orders", item, condition: nil, now: 1, changes: &changes)
        changes = []
        _ = try tables.putItem("orders", item, condition: nil, now: 2, changes: &changes)
        #expect(try tables.deleteItem("orders", key: ["orderID": .s("other")], condition: nil, now: 3, changes: &changes) == nil)
        #expect(changes.isEmpty)
    }

    @Test func keysAndTablesAreValidated() throws {
        var (tables, changes) = try TablesTests().ordersTable()
        #expect(thrown { _ = try tables.putItem("orders", ["order": .s("x")], condition: nil, now: 1, changes: &changes) }?.code == "ValidationException")
        #expect(thrown { _ = try tables.putItem("orders", ["orderID": .n("1")], condition: nil, now: 1, changes: &changes) }?.code == "ValidationException")
        #expect(thrown { _ = try tables.putItem("orders", ["orderID": .s("")], condition: nil, now: 1, changes: &changes) }?.code == "ValidationException")
        #expect(thrown { _ = try tables.putItem("nope", ["orderID": .s("x")], condition: nil, now: 1, changes: &changes) }?.code == "ResourceNotFoundException")
        #expect(thrown { _ = try tables.getItem("orders", key: ["orderID": .s("x"), "extra": .s("y")]) }?.code == "ValidationException")
        #expect(thrown {
            _ = try tables.createTable(name: "orders", partitionKey: .init(name: "orderID", type: "S"), sortKey: nil, streamViewType: nil,
                                       shards: 1, now: 1, changes: &changes)
        }?.code == "ResourceInUseException")
        #expect(thrown {
            _ = try tables.createTable(name: "x", partitionKey: .init(name: "k", type: "S"), sortKey: nil, streamViewType: nil, shards: 1, now: 1, changes: &changes)
        }?.code == "ValidationException")
        let big = String(repeating: "x", count: 401 * 1024)
        #expect(thrown { _ = try tables.putItem("orders", ["orderID": .s("b"), "blob": .s(big)], condition: nil, now: 1, changes: &changes) }?.code == "ValidationException")
        // Maps and lists nest at most 32 deep, as in DynamoDB.
        func nested(_ levels: Int) -> AttributeValue {
            (0..<levels).reduce(AttributeValue.s("x")) { inner, level in level.isMultiple(of: 2) ? .m(["a": inner]) : .l([inner]) }
        }
        #expect(nested(32).nesting == 32)
        #expect(thrown { _ = try tables.putItem("orders", ["orderID": .s("n32"), "doc": nested(32)], condition: nil, now: 1, changes: &changes) } == nil)
        #expect(thrown { _ = try tables.putItem("orders", ["orderID": .s("n33"), "doc": nested(33)], condition: nil, now: 1, changes: &changes) }?.code == "ValidationException")
    }

    @Test func aKeyAlwaysLandsInTheSameShardAndKeysSpreadOverShards() throws {
        var (tables, changes) = try ordersTable(shards: 4)
        changes = []
        for i in 0..<200 {
            _ = try tables.putItem("orders", ["orderID": .s("o-\(i)"), "v": .n("1")], condition: nil, now: 1, changes: &changes)
            _ = try tables.putItem("orders", ["orderID": .s("o-\(i)"), "v": .n("2")], condition: nil, now: 2, changes: &changes)
        }
        let all = records(changes)
        var shardOf: [Item: Int] = [:]
        for r in all {
            if let s = shardOf[r.dynamodb.Keys] { #expect(s == r.shard) } else { shardOf[r.dynamodb.Keys] = r.shard }
        }
        let perShard = Dictionary(grouping: all, by: \.shard)
        #expect(perShard.count == 4)
        for (_, rs) in perShard {
            let sequence = rs.map(\.dynamodb.SequenceNumber)
            #expect(sequence == sequence.sorted() && Set(sequence).count == sequence.count)
        }
    }
}

@Suite struct ReadManyTests {
    func filled(_ n: Int) throws -> Tables {
        var tables = Tables(region: "us-east-1", account: "000000000000")
        var changes: [TableChange] = []
        _ = try tables.createTable(name: "orders", partitionKey: .init(name: "orderID", type: "S"), sortKey: nil,
                                   streamViewType: nil, shards: 1, now: 1, changes: &changes)
        for i in 0..<n { _ = try tables.putItem("orders", ["orderID": .s(String(format: "o-%03d", i)), "n": .n("\(i)")], condition: nil, now: 1, changes: &changes) }
        return tables
    }

    @Test func scanPagesThroughEveryItemOnceInKeyOrder() throws {
        let tables = try filled(25)
        var seen: [String] = []
        var start: Item?
        for _ in 0..<10 {
            let page = try tables.scan("orders", filter: nil, limit: 10, exclusiveStartKey: start)
            seen += page.items.compactMap { if case .s(let id)? = $0["orderID"] { return id } else { return nil } }
            start = page.lastEvaluatedKey
            if start == nil { break }
        }
        #expect(seen == (0..<25).map { String(format: "o-%03d", $0) })
        let filtered = try tables.scan("orders", filter: try ConditionParser.parse("n >= :x", names: nil, values: [":x": .n("20")]), limit: nil, exclusiveStartKey: nil)
        #expect(filtered.items.count == 5 && filtered.scannedCount == 25)
    }

    @Test func queryNeedsThePartitionKeyAndFindsItsItem() throws {
        let tables = try filled(5)
        let page = try tables.query("orders", keyCondition: try ConditionParser.parse("orderID = :id", names: nil, values: [":id": .s("o-003")]),
                                    filter: nil, limit: nil, exclusiveStartKey: nil)
        #expect(page.items.map { $0["n"] } == [.n("3")])
        #expect(throws: TableError.self) {
            try tables.query("orders", keyCondition: try ConditionParser.parse("n = :x", names: nil, values: [":x": .n("1")]), filter: nil, limit: nil, exclusiveStartKey: nil)
        }
    }

    @Test func batchWriteIsAllOrNothingOnValidationAndBatchGetReadsBack() throws {
        var tables = try filled(0)
        var changes: [TableChange] = []
        #expect(throws: TableError.self) {
            try tables.batchWrite(["orders": [(put: ["orderID": .s("a")], delete: nil), (put: ["nokey": .s("b")], delete: nil)]], now: 1, changes: &changes)
        }
        #expect(changes.isEmpty)
        try tables.batchWrite(["orders": [(put: ["orderID": .s("a")], delete: nil), (put: ["orderID": .s("b")], delete: nil)]], now: 1, changes: &changes)
        try tables.batchWrite(["orders": [(put: nil, delete: ["orderID": .s("a")])]], now: 2, changes: &changes)
        let got = try tables.batchGet(["orders": [["orderID": .s("a")], ["orderID": .s("b")]]])
        #expect(got["orders"] == [["orderID": .s("b")]])
        #expect(throws: TableError.self) {
            try tables.batchWrite(["orders": (0..<26).map { (put: ["orderID": .s("x\($0)")], delete: nil) }], now: 3, changes: &changes)
        }
    }
}

@Suite struct TransactionTests {
    @Test func aTransactionWritesAllOrNothingAndSaysWhichConditionFailed() throws {
        var (tables, changes) = try TablesTests().ordersTable()
        try tables.batchWrite(["orders": [(put: ["orderID": .s("a"), "n": .n("1")], delete: nil), (put: ["orderID": .s("b")], delete: nil)]],
                              now: 1, changes: &changes)
        changes = []
        let notExists = try ConditionParser.parse("attribute_not_exists(orderID)", names: nil, values: nil)
        let exists = try ConditionParser.parse("attribute_exists(orderID)", names: nil, values: nil)
        let increment = try UpdateParser.parse("SET n = n + :one", names: nil, values: [":one": .n("1")]).expression
        // The second action's condition fails: nothing is written, and the reasons name it, in order.
        let failing: [Tables.TransactWrite] = [
            .put(table: "orders", item: ["orderID": .s("c")], condition: notExists),
            .put(table: "orders", item: ["orderID": .s("a"), "n": .n("9")], condition: notExists),
            .update(table: "orders", key: ["orderID": .s("a2")], update: try UpdateParser.parse("SET m = :one", names: nil, values: [":one": .n("1")]).expression,
                    condition: nil),
        ]
        let cancelled = thrown { try tables.transactWrite(failing, now: 2, changes: &changes) }
        #expect(cancelled?.code == "TransactionCanceledException")
        #expect(cancelled?.message.hasSuffix("[None, ConditionalCheckFailed, None]") == true)
        #expect(changes.isEmpty)
        #expect(try tables.getItem("orders", key: ["orderID": .s("c")]) == nil)
        // An update whose result is invalid (n + 1 on a missing n) fails the whole request before any write.
        #expect(thrown {
            try tables.transactWrite([.put(table: "orders", item: ["orderID": .s("c")], condition: nil),
                                      .update(table: "orders", key: ["orderID": .s("b")], update: increment, condition: nil)], now: 2, changes: &changes)
        }?.code == "ValidationException")
        #expect(changes.isEmpty)
        // All hold: every write lands, with its stream record, and the check writes nothing.
        try tables.transactWrite([
            .put(table: "orders", item: ["orderID": .s("c")], condition: notExists),
            .update(table: "orders", key: ["orderID": .s("a")], update: increment, condition: exists),
            .delete(table: "orders", key: ["orderID": .s("b")], condition: exists),
        ], now: 3, changes: &changes)
        #expect(TablesTests().records(changes).map(\.eventName) == ["INSERT", "MODIFY", "REMOVE"])
        let read = try tables.transactGet([("orders", ["orderID": .s("a")]), ("orders", ["orderID": .s("b")]), ("orders", ["orderID": .s("c")])])
        #expect(read == [["orderID": .s("a"), "n": .n("2")], nil, ["orderID": .s("c")]])
        changes = []
        try tables.transactWrite([.conditionCheck(table: "orders", key: ["orderID": .s("c")], condition: exists)], now: 4, changes: &changes)
        #expect(changes.isEmpty)
    }

    @Test func aTransactionRefusesTwoActionsOnOneItemAndMoreThanAHundred() throws {
        var tables = try ReadManyTests().filled(0)
        var changes: [TableChange] = []
        let twice = thrown {
            try tables.transactWrite([.put(table: "orders", item: ["orderID": .s("a"), "x": .s("1")], condition: nil),
                                      .delete(table: "orders", key: ["orderID": .s("a")], condition: nil)], now: 1, changes: &changes)
        }
        #expect(twice?.code == "ValidationException" && twice?.message == "Transaction request cannot include multiple operations on one item")
        #expect(thrown { try tables.transactWrite([], now: 1, changes: &changes) }?.code == "ValidationException")
        let many = (0...100).map { Tables.TransactWrite.put(table: "orders", item: ["orderID": .s("k\($0)")], condition: nil) }
        #expect(thrown { try tables.transactWrite(many, now: 1, changes: &changes) }?.code == "ValidationException")
        #expect(thrown { try tables.transactWrite([.put(table: "nope", item: ["orderID": .s("a")], condition: nil)], now: 1, changes: &changes) }?.code
                == "ResourceNotFoundException")
        #expect(thrown { _ = try tables.transactGet([("orders", ["orderID": .s("a")]), ("orders", ["orderID": .s("a")])]) }?.code == "ValidationException")
        #expect(changes.isEmpty)
    }

    @Test func aClientRequestTokenAppliesATransactionOnceForTenMinutes() throws {
        var (tables, changes) = try TablesTests().ordersTable()
        let add = try UpdateParser.parse("ADD n :one", names: nil, values: [":one": .n("1")]).expression
        let once: [Tables.TransactWrite] = [.update(table: "orders", key: ["orderID": .s("a")], update: add, condition: nil)]
        func n() throws -> AttributeValue? { try tables.getItem("orders", key: ["orderID": .s("a")])?["n"] }
        try tables.transactWrite(once, token: ("t-1", "digest-1"), now: 100, changes: &changes)
        // The same token and items again (a retry): answered, not applied again.
        changes = []
        try tables.transactWrite(once, token: ("t-1", "digest-1"), now: 200, changes: &changes)
        #expect(try n() == .n("1") && changes.isEmpty)
        // The token with other items is refused.
        #expect(thrown { try tables.transactWrite(once, token: ("t-1", "digest-2"), now: 300, changes: &changes) }?.code
                == "IdempotentParameterMismatchException")
        // Kept durable, and through a restart.
        var restarted = tables
        restarted.restore(tables: [try tables.describe("orders")], items: [], lastSequences: [:],
                          transactionTokens: [TransactionToken(token: "t-1", fingerprint: "digest-1", expiresAt: 700)])
        #expect(thrown { try restarted.transactWrite(once, token: ("t-1", "digest-2"), now: 300, changes: &changes) }?.code
                == "IdempotentParameterMismatchException")
        // Ten minutes after the first, the token is new again: applied, and the old one forgotten on disk.
        changes = []
        try tables.transactWrite(once, token: ("t-1", "digest-1"), now: 100 + Tables.transactionTokenWindow, changes: &changes)
        #expect(try n() == .n("2"))
        #expect(changes.contains(.deleteTransactionToken("t-1")))
        #expect(changes.contains(.putTransactionToken(TransactionToken(token: "t-1", fingerprint: "digest-1", expiresAt: 100 + 2 * Tables.transactionTokenWindow))))
        // A cancelled transaction leaves its token unused.
        let exists = try ConditionParser.parse("attribute_exists(orderID)", names: nil, values: nil)
        let failing: [Tables.TransactWrite] = [.conditionCheck(table: "orders", key: ["orderID": .s("none")], condition: exists)]
        #expect(thrown { try tables.transactWrite(failing, token: ("t-2", "digest-3"), now: 1_000, changes: &changes) }?.code == "TransactionCanceledException")
        #expect(tables.transactionTokens["t-2"] == nil)
    }
}

