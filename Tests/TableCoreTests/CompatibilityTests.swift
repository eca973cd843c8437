import Foundation
import NimbusProtocol
import Testing
@testable import TableCore

/// What the AWS endpoint's SDK tests (Tests/integration/test_edge_dynamodb.py) need of the core, as
/// the DynamoDB API reference describes it: projections, sort key order both ways, ListTables
/// pages, table sizes, duplicate keys in a batch, and the members a failed condition carries.
@Suite struct CompatibilityTests {
    func eventsTable() throws -> (Tables, [TableChange]) {
        var tables = Tables(region: "us-east-1", account: "000000000000")
        var changes: [TableChange] = []
        _ = try tables.createTable(name: "events", partitionKey: .init(name: "pk", type: "S"), sortKey: .init(name: "sk", type: "N"),
                                   streamViewType: nil, shards: 1, now: 1, changes: &changes)
        // Sort keys whose text order is not their numeric order (10 < 9 as text, -1 first by value).
        for sk in ["9", "10", "2", "-1", "100", "0.5"] {
            _ = try tables.putItem("events", ["pk": .s("p"), "sk": .n(sk), "kind": .s("k\(sk)")], condition: nil, now: 1, changes: &changes)
        }
        _ = try tables.putItem("events", ["pk": .s("other"), "sk": .n("1")], condition: nil, now: 1, changes: &changes)
        return (tables, changes)
    }

    func sortKeys(_ page: Tables.Page) -> [String] { page.items.compactMap { if case .n(let n)? = $0["sk"] { return n } else { return nil } } }

    // MARK: Query order

    @Test func queryReadsThePartitionInSortKeyOrderBothWays() throws {
        let (tables, _) = try eventsTable()
        let partition = try ConditionParser.parse("pk = :p", names: nil, values: [":p": .s("p")])
        let forward = try tables.query("events", keyCondition: partition, filter: nil, limit: nil, exclusiveStartKey: nil)
        #expect(sortKeys(forward) == ["-1", "0.5", "2", "9", "10", "100"])
        let backward = try tables.query("events", keyCondition: partition, filter: nil, limit: nil, exclusiveStartKey: nil, scanIndexForward: false)
        #expect(sortKeys(backward) == ["100", "10", "9", "2", "0.5", "-1"])
        let between = try ConditionParser.parse("pk = :p AND sk BETWEEN :a AND :b", names: nil, values: [":p": .s("p"), ":a": .n("2"), ":b": .n("10")])
        #expect(sortKeys(try tables.query("events", keyCondition: between, filter: nil, limit: nil, exclusiveStartKey: nil, scanIndexForward: false))
            == ["10", "9", "2"])
    }

    @Test func queryPagesContinueAfterTheLastKeyInEitherDirection() throws {
        let (tables, _) = try eventsTable()
        let partition = try ConditionParser.parse("pk = :p", names: nil, values: [":p": .s("p")])
        for forward in [true, false] {
            var seen: [String] = []
            var start: Item?
            var pages = 0
            repeat {
                let page = try tables.query("events", keyCondition: partition, filter: nil, limit: 4, exclusiveStartKey: start, scanIndexForward: forward)
                seen += sortKeys(page)
                start = page.lastEvaluatedKey
                if let start { #expect(start == ["pk": .s("p"), "sk": page.items.last!["sk"]!]) }
                pages += 1
            } while start != nil && pages < 10
            #expect(pages == 2)
            #expect(seen == (forward ? ["-1", "0.5", "2", "9", "10", "100"] : ["100", "10", "9", "2", "0.5", "-1"]))
        }
        // A start key whose item is gone still places the page.
        let page = try tables.query("events", keyCondition: partition, filter: nil, limit: nil, exclusiveStartKey: ["pk": .s("p"), "sk": .n("5")])
        #expect(sortKeys(page) == ["9", "10", "100"])
    }

    // MARK: Projection

    @Test func projectionKeepsTheNamedPathsOnly() throws {
        let item: Item = [
            "orderID": .s("o-1"), "item": .s("gloves"), "customerID": .s("1"),
            "address": .m(["city": .s("Seattle"), "zip": .s("98101")]),
            "lines": .l([.s("a"), .m(["sku": .s("b"), "qty": .n("2")]), .s("c")]),
        ]
        func project(_ text: String, _ names: [String: String]? = nil) throws -> Item {
            try ProjectionParser.parse(text, names: names).projection.apply(to: item)
        }
        #expect(try project("#i, address.city", ["#i": "item"]) == ["item": .s("gloves"), "address": .m(["city": .s("Seattle")])])
        #expect(try project("lines[2], lines[0]") == ["lines": .l([.s("a"), .s("c")])])
        #expect(try project("lines[1].qty, orderID") == ["lines": .l([.m(["qty": .n("2")])]), "orderID": .s("o-1")])
        // Paths that lead nowhere add nothing (not an empty parent).
        #expect(try project("missing, address.country, lines[7], item.x") == [:])
        #expect(try ProjectionParser.parse("#i, address.city", names: ["#i": "item"]).usedNames == ["#i"])
    }

    @Test(arguments: [
        ("", "empty"), ("a,", "Syntax error"), ("a b", "Syntax error"), ("a, a.b", "overlap"), ("a, a", "overlap"),
        ("#missing", "not defined"), (":v", "Syntax error"), ("a[x]", "index"),
    ])
    func badProjectionsAreValidationErrors(text: String, fragment: String) {
        let error = thrown { _ = try ProjectionParser.parse(text, names: nil) }
        #expect(error?.code == "ValidationException")
        #expect(error?.message.contains(fragment) == true, "\(error?.message ?? "no error")")
        #expect(error?.message.contains("ProjectionExpression") == true, "\(error?.message ?? "no error")")
    }

    // MARK: Tables

    @Test func listTablesPagesByName() throws {
        var tables = Tables(region: "us-east-1", account: "000000000000")
        var changes: [TableChange] = []
        for name in ["ccc", "aaa", "bbb"] {
            _ = try tables.createTable(name: name, partitionKey: .init(name: "k", type: "S"), sortKey: nil, streamViewType: nil, shards: 1, now: 1, changes: &changes)
        }
        #expect(try tables.listTables(limit: nil, exclusiveStart: nil) == (["aaa", "bbb", "ccc"], nil))
        #expect(try tables.listTables(limit: 2, exclusiveStart: nil) == (["aaa", "bbb"], "bbb"))
        #expect(try tables.listTables(limit: 2, exclusiveStart: "bbb") == (["ccc"], nil))
        #expect(try tables.listTables(limit: 3, exclusiveStart: nil) == (["aaa", "bbb", "ccc"], nil))  // no more: no LastEvaluatedTableName
        #expect(try tables.listTables(limit: 1, exclusiveStart: "a") == (["aaa"], "aaa"))  // the start need not exist
        #expect(thrown { _ = try tables.listTables(limit: 0, exclusiveStart: nil) }?.code == "ValidationException")
        #expect(thrown { _ = try tables.listTables(limit: 101, exclusiveStart: nil) }?.code == "ValidationException")
    }

    @Test func tableSizeFollowsTheItems() throws {
        var (tables, changes) = try TablesTests().ordersTable()
        #expect(tables.sizeBytes("orders") == 0)
        let a: Item = ["orderID": .s("a"), "item": .s("gloves")]  // 7 + 1 + 4 + 6
        _ = try tables.putItem("orders", a, condition: nil, now: 1, changes: &changes)
        #expect(tables.sizeBytes("orders") == 18)
        _ = try tables.putItem("orders", ["orderID": .s("a")], condition: nil, now: 2, changes: &changes)  // replaced by a smaller item
        #expect(tables.sizeBytes("orders") == 8)
        _ = try tables.updateItem("orders", key: ["orderID": .s("a")], update: try UpdateParser.parse("SET x = :v", names: nil, values: [":v": .s("abc")]).expression,
                                  condition: nil, now: 3, changes: &changes)
        #expect(tables.sizeBytes("orders") == 12)
        _ = try tables.deleteItem("orders", key: ["orderID": .s("a")], condition: nil, now: 4, changes: &changes)
        #expect(tables.sizeBytes("orders") == 0)
        // Restored from the store, the size is counted again.
        var restored = Tables(region: "us-east-1", account: "000000000000")
        restored.restore(tables: tables.allTables, items: [("orders", "Sa", a), ("orders", "Sb", ["orderID": .s("b")])], lastSequences: [:])
        #expect(restored.sizeBytes("orders") == 26)
    }

    @Test func aStreamLabelTellsWhenTheStreamWasCreated() throws {
        let (tables, _) = try TablesTests().ordersTable()
        let label = try #require(tables.allTables.first?.streamLabel)
        #expect(Tables.labelDate(label) == 1_800_000_000)
        #expect(Tables.labelDate("not a label") == nil)
    }

    // MARK: Batches

    @Test func aBatchNamingOneItemTwiceIsRefused() throws {
        var (tables, changes) = try TablesTests().ordersTable()
        changes = []
        for twice in [[(put: ["orderID": .s("a")], delete: nil), (put: ["orderID": .s("a"), "v": .n("1")], delete: nil)],
                      [(put: ["orderID": .s("a")], delete: nil), (put: nil, delete: ["orderID": .s("a")])]] as [[(put: Item?, delete: Item?)]] {
            let error = thrown { try tables.batchWrite(["orders": twice], now: 1, changes: &changes) }
            #expect(error?.message == "Provided list of item keys contains duplicates")
        }
        #expect(changes.isEmpty)
        #expect(thrown { _ = try tables.batchGet(["orders": [["orderID": .s("a")], ["orderID": .s("a")]]]) }?.message
            == "Provided list of item keys contains duplicates")
    }

    // MARK: Errors' further members

    @Test func aFailedConditionCarriesTheItemAsItWas() throws {
        var (tables, changes) = try TablesTests().ordersTable()
        let shipped: Item = ["orderID": .s("o-1"), "status": .s("shipped")]
        _ = try tables.putItem("orders", shipped, condition: nil, now: 1, changes: &changes)
        let isNew = try ConditionParser.parse("#s = :n", names: ["#s": "status"], values: [":n": .s("new")])
        let put = thrown { _ = try tables.putItem("orders", ["orderID": .s("o-1")], condition: isNew, now: 2, changes: &changes) }
        #expect(put?.code == "ConditionalCheckFailedException" && put?.item == shipped)
        let update = thrown {
            _ = try tables.updateItem("orders", key: ["orderID": .s("o-1")], update: try UpdateParser.parse("SET x = :v", names: nil, values: [":v": .n("1")]).expression,
                                      condition: isNew, now: 3, changes: &changes)
        }
        #expect(update?.item == shipped)
        #expect(thrown { _ = try tables.deleteItem("orders", key: ["orderID": .s("o-1")], condition: isNew, now: 4, changes: &changes) }?.item == shipped)
        // No item: none to carry.
        let missing = thrown { _ = try tables.deleteItem("orders", key: ["orderID": .s("none")], condition: isNew, now: 5, changes: &changes) }
        #expect(missing?.code == "ConditionalCheckFailedException" && missing?.item == nil && missing?.fields == nil)
        // The error's fields are DynamoDB's `Item` member.
        let fields = try #require(put?.fields)
        #expect(try JSONSerialization.jsonObject(with: fields) as? NSDictionary
            == ["Item": ["orderID": ["S": "o-1"], "status": ["S": "shipped"]]] as NSDictionary)
    }

    @Test func aCancelledTransactionGivesAReasonPerAction() throws {
        var (tables, changes) = try TablesTests().ordersTable()
        _ = try tables.putItem("orders", ["orderID": .s("b"), "stock": .n("5")], condition: nil, now: 1, changes: &changes)
        let big = try ConditionParser.parse("stock > :big", names: nil, values: [":big": .n("100")])
        let error = thrown {
            try tables.transactWrite([.put(table: "orders", item: ["orderID": .s("d")], condition: nil),
                                      .conditionCheck(table: "orders", key: ["orderID": .s("b")], condition: big)], now: 2, changes: &changes)
        }
        #expect(error?.code == "TransactionCanceledException")
        #expect(error?.cancellationReasons == [.none, CancellationReason(code: "ConditionalCheckFailed", message: "The conditional request failed",
                                                                          item: ["orderID": .s("b"), "stock": .n("5")])])
        let fields = try #require(error?.fields)
        let object = try #require(try JSONSerialization.jsonObject(with: fields) as? [String: Any])
        let reasons = try #require(object["CancellationReasons"] as? [[String: Any]])
        #expect(reasons.count == 2)
        #expect(reasons[0] as NSDictionary == ["Code": "None"] as NSDictionary)
        #expect(reasons[1]["Code"] as? String == "ConditionalCheckFailed")
        #expect(reasons[1]["Message"] as? String == "The conditional request failed")
        #expect(reasons[1]["Item"] as? NSDictionary == ["orderID": ["S": "b"], "stock": ["N": "5"]] as NSDictionary)
    }

    // MARK: Update functions

    @Test func functionsNestInsideListAppend() throws {
        let parsed = try UpdateParser.parse("ADD qty :two SET #l = list_append(if_not_exists(#l, :empty), :line)", names: ["#l": "lines"],
                                            values: [":two": .n("2"), ":empty": .l([]), ":line": .l([.s("gloves")])])
        let first = try UpdateEvaluator.apply(parsed.expression, to: ["orderID": .s("o-1"), "qty": .n("1")])
        #expect(first == ["orderID": .s("o-1"), "qty": .n("3"), "lines": .l([.s("gloves")])])
        let second = try UpdateEvaluator.apply(parsed.expression, to: first)
        #expect(second["lines"] == .l([.s("gloves"), .s("gloves")]))
        let prepend = try UpdateParser.parse("SET l = list_append(:front, list_append(l, :back)), n = if_not_exists(n, :zero) + :one", names: nil,
                                             values: [":front": .l([.n("0")]), ":back": .l([.n("9")]), ":zero": .n("0"), ":one": .n("1")])
        let out = try UpdateEvaluator.apply(prepend.expression, to: ["l": .l([.n("5")])])
        #expect(out == ["l": .l([.n("0"), .n("5"), .n("9")]), "n": .n("1")])
    }
}
