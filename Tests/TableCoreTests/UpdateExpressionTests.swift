import Foundation
import Testing
@testable import TableCore

@Suite struct UpdateExpressionTests {
    let item: Item = [
        "orderID": .s("o-1"), "count": .n("5"), "tags": .ss(["a", "b"]), "lines": .l([.s("x"), .s("y")]),
        "address": .m(["city": .s("Paris")]),
    ]

    func apply(_ text: String, names: [String: String]? = nil, values: [String: AttributeValue]? = nil, to base: Item? = nil) throws -> Item {
        let parsed = try UpdateParser.parse(text, names: names, values: values)
        return try UpdateEvaluator.apply(parsed.expression, to: base ?? item)
    }

    @Test func setAssignsArithmeticAndFunctions() throws {
        let out = try apply(
            "SET #c = #c + :one, total = :ten - :one, address.zip = :zip, fresh = if_not_exists(fresh, :ten), kept = if_not_exists(#c, :ten), lines = list_append(lines, :more)",
            names: ["#c": "count"], values: [":one": .n("1"), ":ten": .n("10"), ":zip": .s("75001"), ":more": .l([.s("z")])])
        #expect(out["count"] == .n("6"))
        #expect(out["total"] == .n("9"))
        #expect(out["address"] == .m(["city": .s("Paris"), "zip": .s("75001")]))
        #expect(out["fresh"] == .n("10"))
        #expect(out["kept"] == .n("5"))  // right-hand sides read the item before the update
        #expect(out["lines"] == .l([.s("x"), .s("y"), .s("z")]))
    }

    @Test func removeAddAndDelete() throws {
        let out = try apply("REMOVE lines[0], address ADD #c :two, tags :more DELETE other :gone",
                            names: ["#c": "count"], values: [":two": .n("2"), ":more": .ss(["c"]), ":gone": .ss(["q"])],
                            to: item.merging(["other": .ss(["q"])]) { a, _ in a })
        #expect(out["lines"] == .l([.s("y")]))
        #expect(out["address"] == nil)
        #expect(out["count"] == .n("7"))
        #expect(out["tags"] == .ss(["a", "b", "c"]))
        #expect(out["other"] == nil)  // an emptied set is removed
    }

    @Test(arguments: [
        ("", "can not be empty"),
        ("SET a = :v SET b = :v", "can only be used once"),
        ("SET a = :v, a.b = :v", "overlap"),
        ("SET a = nope(:v)", "Invalid function name"),
        ("UPSERT a = :v", "Syntax error"),
        ("SET a = :missing", "not defined"),
        ("ADD a b", "expression attribute value"),
    ])
    func badExpressionsAreValidationErrors(text: String, fragment: String) {
        do {
            _ = try apply(text, values: [":v": .s("x")])
            Issue.record("\(text) parsed")
        } catch let error as TableError {
            #expect(error.code == "ValidationException")
            #expect(error.message.contains(fragment), "\(error.message)")
            // Errors from the grammar it shares with conditions name the UpdateExpression too.
            #expect(!error.message.contains("ConditionExpression"), "\(error.message)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func aGrammarErrorNamesTheExpressionItIsAbout() {
        let error = TableError.validation("Invalid ConditionExpression: Syntax error; token: \"(\"")
        #expect(error.about("FilterExpression").message == "Invalid FilterExpression: Syntax error; token: \"(\"")
        #expect(error.about("ConditionExpression") == error)
        #expect(TableError.validation("Item size has exceeded the maximum allowed size").about("UpdateExpression").message
                == "Item size has exceeded the maximum allowed size")
    }

    @Test func typeErrorsAndMissingParentsAreRefused() throws {
        #expect(throws: TableError.self) { try apply("SET tags = tags + :one", values: [":one": .n("1")]) }
        #expect(throws: TableError.self) { try apply("SET nowhere.deep = :one", values: [":one": .n("1")]) }
        #expect(throws: TableError.self) { try apply("SET x = missing", values: nil) }
        #expect(throws: TableError.self) { try apply("ADD address :one", values: [":one": .n("1")]) }
    }

    @Test func updateItemOnTheTableKeepsKeysAndAppendsRecords() throws {
        var tables = Tables(region: "us-east-1", account: "000000000000")
        var changes: [TableChange] = []
        _ = try tables.createTable(name: "orders", partitionKey: .init(name: "orderID", type: "S"), sortKey: nil,
                                   streamViewType: "NEW_AND_OLD_IMAGES", shards: 1, now: 1, changes: &changes)
        let key: Item = ["orderID": .s("o-1")]
        let set = try UpdateParser.parse("SET n = :one", names: nil, values: [":one": .n("1")]).expression
        changes = []
        let created = try tables.updateItem("orders", key: key, update: set, condition: nil, now: 2, changes: &changes)
        #expect(created.old == nil && created.new == ["orderID": .s("o-1"), "n": .n("1")])
        #expect(changes.count == 2)
        // The same update again changes nothing: no record.
        changes = []
        _ = try tables.updateItem("orders", key: key, update: set, condition: nil, now: 3, changes: &changes)
        #expect(changes.isEmpty)
        // Conditions see the old item.
        let onlyIfTwo = try ConditionParser.parse("n = :two", names: nil, values: [":two": .n("2")])
        #expect(throws: TableError.self) { try tables.updateItem("orders", key: key, update: set, condition: onlyIfTwo, now: 4, changes: &changes) }
        // Keys cannot be updated.
        let setKey = try UpdateParser.parse("SET orderID = :x", names: nil, values: [":x": .s("o-2")]).expression
        #expect(throws: TableError.self) { try tables.updateItem("orders", key: key, update: setKey, condition: nil, now: 5, changes: &changes) }
        // REMOVE on a missing item creates nothing.
        let remove = try UpdateParser.parse("REMOVE n", names: nil, values: nil).expression
        changes = []
        let none = try tables.updateItem("orders", key: ["orderID": .s("o-9")], update: remove, condition: nil, now: 6, changes: &changes)
        #expect(none.new == nil && changes.isEmpty)
        #expect(try tables.getItem("orders", key: ["orderID": .s("o-9")]) == nil)
    }

    @Test func streamCanBeDisabledAndReEnabledAndTablesDeleted() throws {
        var tables = Tables(region: "us-east-1", account: "000000000000")
        var changes: [TableChange] = []
        _ = try tables.createTable(name: "orders", partitionKey: .init(name: "orderID", type: "S"), sortKey: nil,
                                   streamViewType: "NEW_IMAGE", shards: 1, now: 1, changes: &changes)
        #expect(throws: TableError.self) { try tables.updateStream("orders", enabled: true, viewType: "KEYS_ONLY", now: 2, changes: &changes) }
        let off = try tables.updateStream("orders", enabled: false, viewType: nil, now: 2, changes: &changes)
        #expect(off.streamViewType == nil)
        changes = []
        _ = try tables.putItem("orders", ["orderID": .s("a")], condition: nil, now: 3, changes: &changes)
        #expect(changes.count == 1)  // no record while the stream is off
        let on = try tables.updateStream("orders", enabled: true, viewType: "KEYS_ONLY", now: 4, changes: &changes)
        #expect(on.streamViewType == "KEYS_ONLY" && on.streamLabel != off.streamLabel)
        _ = try tables.deleteTable("orders", changes: &changes)
        #expect(throws: TableError.self) { try tables.describe("orders") }
        #expect(throws: TableError.self) { try tables.deleteTable("orders", changes: &changes) }
    }
}
