import Foundation
import NimbusProtocol
import Testing
@testable import TableCore

let order: Item = [
    "orderID": .s("a1"), "order": .s(#"{"item": "latex gloves"}"#), "qty": .n("3"), "price": .n("12.50"),
    "tags": .ss(["rush", "gift"]), "lines": .l([.m(["sku": .s("G-1")])]), "flag": .bool(true),
]

struct ConditionCase: CustomTestStringConvertible, Sendable {
    var expression: String
    var names: [String: String]? = nil
    var values: [String: AttributeValue]? = nil
    var onItem: Bool
    var onMissing: Bool
    var testDescription: String { expression }
}

let conditionCases: [ConditionCase] = [
    .init(expression: "attribute_not_exists(orderID)", onItem: false, onMissing: true),
    .init(expression: "attribute_exists(orderID)", onItem: true, onMissing: false),
    .init(expression: "attribute_exists(#o)", names: ["#o": "order"], onItem: true, onMissing: false),
    .init(expression: "qty = :three", values: [":three": .n("3.0")], onItem: true, onMissing: false),
    .init(expression: "qty <> :three", values: [":three": .n("3")], onItem: false, onMissing: false),
    .init(expression: "price < :p", values: [":p": .n("13")], onItem: true, onMissing: false),
    .init(expression: "price >= :p", values: [":p": .n("12.5")], onItem: true, onMissing: false),
    .init(expression: "orderID > :s", values: [":s": .s("a0")], onItem: true, onMissing: false),
    .init(expression: "qty = :s", values: [":s": .s("3")], onItem: false, onMissing: false),
    .init(expression: "qty BETWEEN :lo AND :hi", values: [":lo": .n("1"), ":hi": .n("3")], onItem: true, onMissing: false),
    .init(expression: "qty IN (:a, :b)", values: [":a": .n("1"), ":b": .n("3")], onItem: true, onMissing: false),
    .init(expression: "begins_with(#o, :p)", names: ["#o": "order"], values: [":p": .s("{\"item\"")], onItem: true, onMissing: false),
    .init(expression: "contains(tags, :t)", values: [":t": .s("gift")], onItem: true, onMissing: false),
    .init(expression: "size(tags) = :two", values: [":two": .n("2")], onItem: true, onMissing: false),
    .init(expression: "lines[0].sku = :s", values: [":s": .s("G-1")], onItem: true, onMissing: false),
    .init(expression: "attribute_type(flag, :t)", values: [":t": .s("BOOL")], onItem: true, onMissing: false),
    .init(expression: "attribute_exists(orderID) AND qty > :z", values: [":z": .n("0")], onItem: true, onMissing: false),
    .init(expression: "attribute_not_exists(orderID) OR qty > :z", values: [":z": .n("0")], onItem: true, onMissing: true),
    .init(expression: "NOT attribute_exists(orderID)", onItem: false, onMissing: true),
    .init(expression: "NOT (qty = :a OR qty = :b)", values: [":a": .n("1"), ":b": .n("2")], onItem: true, onMissing: true),
    .init(expression: "attribute_exists(nope) or attribute_exists(orderID) and qty = :q", values: [":q": .n("3")], onItem: true, onMissing: false),
]

@Suite struct ConditionTests {
    @Test(arguments: conditionCases)
    func evaluation(_ c: ConditionCase) throws {
        let condition = try ConditionParser.parse(c.expression, names: c.names, values: c.values)
        #expect(ConditionEvaluator.holds(condition, on: order) == c.onItem)
        #expect(ConditionEvaluator.holds(condition, on: nil) == c.onMissing)
    }

    @Test func andBindsTighterThanOr() throws {
        let c = try ConditionParser.parse("a = :x OR b = :x AND c = :x", names: nil, values: [":x": .n("1")])
        guard case .or(_, .and) = c else { Issue.record("parsed as \(c)"); return }
    }

    @Test(arguments: [
        ("attribute_exists(", "ValidationException"),
        ("qty = :missing", "ValidationException"),
        ("#missing = :v", "ValidationException"),
        ("qty === :v", "ValidationException"),
        ("frobnicate(qty)", "ValidationException"),
        ("qty", "ValidationException"),
        ("attribute_exists(a) extra", "ValidationException"),
    ])
    func badExpressionsAreValidationErrors(expression: String, code: String) {
        do {
            _ = try ConditionParser.parse(expression, names: nil, values: [":v": .n("1")].filter { _ in expression.contains(":v") })
            Issue.record("accepted \(expression)")
        } catch {
            #expect(error.code == code)
        }
    }

    /// Deep nesting is refused before it can exhaust a thread's stack (a 20,000-deep "(" once
    /// crashed the table node), and so is an expression longer than DynamoDB's 4 KB.
    @Test func nestingAndSizeAreBounded() throws {
        let inner = "attribute_not_exists(a)"
        let fine = String(repeating: "(", count: 100) + inner + String(repeating: ")", count: 100)
        #expect(try ConditionParser.parse(fine, names: nil, values: nil) == .notExists([.name("a")]))
        _ = try ConditionParser.parse(String(repeating: "NOT ", count: 100) + inner, names: nil, values: nil)
        for deep in [String(repeating: "(", count: 101) + inner + String(repeating: ")", count: 101),
                     String(repeating: "NOT ", count: 101) + inner,
                     String(repeating: "(NOT ", count: 60) + inner + String(repeating: ")", count: 60)] {
            #expect { try ConditionParser.parse(deep, names: nil, values: nil) } throws: { error in
                (error as? TableError)?.message.contains("nested levels") == true
            }
        }
        let long = String(repeating: "(", count: 2100) + inner + String(repeating: ")", count: 2100)
        #expect { try ConditionParser.parse(long, names: nil, values: nil) } throws: { error in
            (error as? TableError)?.message.contains("maximum allowed size") == true
        }
    }

    @Test func unusedPlaceholdersAreRefused() {
        #expect(throws: TableError.self) { try ConditionParser.parse("attribute_exists(a)", names: ["#n": "x"], values: nil) }
        #expect(throws: TableError.self) { try ConditionParser.parse("attribute_exists(a)", names: nil, values: [":v": .n("1")]) }
    }

    /// Plain expressions are cached by their text: a second parse must say what the first said,
    /// errors included, and a cached plain text must not leak into a request with placeholders.
    @Test func cachedPlainExpressionsParseAsTheFirstTime() throws {
        for _ in 0..<2 {
            #expect(try ConditionParser.parse("attribute_not_exists(cacheKey) AND NOT attribute_exists(other)", names: nil, values: nil)
                == .and(.notExists([.name("cacheKey")]), .not(.exists([.name("other")]))))
            #expect(throws: TableError.self) { try ConditionParser.parse("attribute_not_exists(cacheKey) AND", names: nil, values: nil) }
        }
        #expect(throws: TableError.self) { try ConditionParser.parse("attribute_not_exists(cacheKey) AND NOT attribute_exists(other)", names: ["#x": "y"], values: nil) }
    }
}

@Suite struct AttributeValueTests {
    @Test func dynamoJSONRoundTrips() throws {
        let json = #"{"orderID":{"S":"a1"},"n":{"N":"-12.5e3"},"b":{"B":"aGk="},"t":{"BOOL":true},"z":{"NULL":true},"m":{"M":{"x":{"L":[{"S":"y"},{"NS":["1","2"]}]}}},"ss":{"SS":["a","b"]},"bs":{"BS":["aGk="]}}"#
        let item = try JSONDecoder().decode(Item.self, from: Data(json.utf8))
        #expect(item["b"] == .b(Data("hi".utf8)))
        #expect(item["n"] == .n("-12500"))  // stored canonical, as DynamoDB stores numbers
        let again = try JSONDecoder().decode(Item.self, from: try JSONEncoder().encode(item))
        #expect(again == item)
    }

    @Test(arguments: [
        #"{"a":{"N":"abc"}}"#, #"{"a":{"N":"1e200"}}"#, #"{"a":{"N":"123456789012345678901234567890123456789"}}"#,
        #"{"a":{"B":"***"}}"#, #"{"a":{"SS":[]}}"#, #"{"a":{"SS":["x","x"]}}"#, #"{"a":{"NS":["1","1.0"]}}"#,
        #"{"a":{"S":"x","N":"1"}}"#, #"{"a":{}}"#, #"{"a":{"Q":"x"}}"#, #"{"a":{"NULL":false}}"#,
    ])
    func invalidValuesAreRefused(json: String) {
        #expect(throws: (any Error).self) { try JSONDecoder().decode(Item.self, from: Data(json.utf8)) }
    }
}

@Suite struct NumberTests {
    /// DynamoDB keeps numbers canonical ("Supported data types": leading and trailing zeroes are
    /// trimmed): `{"N": "012.50"}` reads back as `12.5`, an exponent is expanded, zero has no sign.
    @Test(arguments: [
        ("0", "0"), ("0.000", "0"), ("-0", "0"), ("-0.0e5", "0"), ("0e999999999999999999999", "0"), ("012.50", "12.5"), ("1.0", "1"),
        ("100", "100"), ("-12.5e3", "-12500"), ("1.5E2", "150"), ("1.5e-3", "0.0015"), ("+3", "3"), (".5", "0.5"), ("5.", "5"),
        ("0.1", "0.1"), ("-0.0100", "-0.01"), ("00042", "42"), ("1E+2", "100"), ("120e-1", "12"),
        ("12345678901234567890123456789012345678", "12345678901234567890123456789012345678"),
        ("1.00000000000000007629769841092E+50", "100000000000000007629769841092000000000000000000000"),
        ("9.99E+125", "999" + String(repeating: "0", count: 123)),
        ("1E-130", "0." + String(repeating: "0", count: 129) + "1"),
    ])
    func acceptedCanonical(_ n: String, _ canonical: String) throws { #expect(try AttributeValue.number(n) == canonical) }

    @Test func numbersAreCanonicalInItemsAndSets() throws {
        let json = #"{"a":{"N":"012.50"},"s":{"NS":["1.0","2e1"]},"l":{"L":[{"N":"-0"}]}}"#
        let item = try JSONDecoder().decode(Item.self, from: Data(json.utf8))
        #expect(item == ["a": .n("12.5"), "s": .ns(["1", "20"]), "l": .l([.n("0")])])
        // the hand-written reader agrees
        #expect(DynamoJSON.item(try #require(StringJSON.parse(Data(#"{"a":{"N":"012.50"},"s":{"NS":["1.0","2e1"]}}"#.utf8)))) == ["a": .n("12.5"), "s": .ns(["1", "20"])])
        // arithmetic answers canonical numbers too
        let sum = try UpdateEvaluator.apply(try UpdateParser.parse("SET a = a + :x", names: nil, values: [":x": .n("0.50")]).expression, to: item)
        #expect(sum["a"] == .n("13"))
    }

    @Test(arguments: ["1E126", "1E-131", "123456789012345678901234567890123456789", "1.2.3", "", "e5", "1e", "NaN"])
    func refused(_ n: String) { #expect(throws: TableError.self) { try AttributeValue.number(n) } }
}
