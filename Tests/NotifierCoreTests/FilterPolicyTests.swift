import Foundation
import Testing
@testable import NotifierCore
import NimbusProtocol

/// SNS filter policies on message attributes: what matches, what does not, what is refused.
@Suite struct FilterPolicyTests {
    static func s(_ value: String) -> MessageAttributeValue { MessageAttributeValue(DataType: "String", StringValue: value) }
    static func n(_ value: String) -> MessageAttributeValue { MessageAttributeValue(DataType: "Number", StringValue: value) }
    static func a(_ json: String) -> MessageAttributeValue { MessageAttributeValue(DataType: "String.Array", StringValue: json) }

    struct Case: Sendable, CustomTestStringConvertible {
        var policy: String
        var attributes: [String: MessageAttributeValue]
        var matches: Bool
        var testDescription: String { "\(policy) ~ \(attributes.mapValues { $0.StringValue ?? "" }) → \(matches)" }
    }

    static let cases: [Case] = [
        // exact strings and numbers; any value of the array; every key must match
        Case(policy: #"{"store":["example_corp"]}"#, attributes: ["store": s("example_corp")], matches: true),
        Case(policy: #"{"store":["example_corp"]}"#, attributes: ["store": s("other")], matches: false),
        Case(policy: #"{"store":["a","b"]}"#, attributes: ["store": s("b")], matches: true),
        Case(policy: #"{"store":["a"],"kind":["order"]}"#, attributes: ["store": s("a")], matches: false),
        Case(policy: #"{"store":["a"],"kind":["order"]}"#, attributes: ["store": s("a"), "kind": s("order")], matches: true),
        Case(policy: #"{"price":[100]}"#, attributes: ["price": n("100.0")], matches: true),
        Case(policy: #"{"price":[100]}"#, attributes: ["price": s("100")], matches: false),
        Case(policy: #"{"store":["a"]}"#, attributes: [:], matches: false),
        // prefix, suffix, equals-ignore-case
        Case(policy: #"{"sku":[{"prefix":"GL-"}]}"#, attributes: ["sku": s("GL-42")], matches: true),
        Case(policy: #"{"sku":[{"prefix":"GL-"}]}"#, attributes: ["sku": s("XGL-42")], matches: false),
        Case(policy: #"{"file":[{"suffix":".png"}]}"#, attributes: ["file": s("a.png")], matches: true),
        Case(policy: #"{"name":[{"equals-ignore-case":"Gloves"}]}"#, attributes: ["name": s("GLOVES")], matches: true),
        // anything-but: values, a single value, numbers, a prefix; never a missing attribute
        Case(policy: #"{"c":[{"anything-but":["red","blue"]}]}"#, attributes: ["c": s("green")], matches: true),
        Case(policy: #"{"c":[{"anything-but":["red","blue"]}]}"#, attributes: ["c": s("red")], matches: false),
        Case(policy: #"{"c":[{"anything-but":"red"}]}"#, attributes: ["c": s("red")], matches: false),
        Case(policy: #"{"q":[{"anything-but":[0]}]}"#, attributes: ["q": n("3")], matches: true),
        Case(policy: #"{"q":[{"anything-but":[0]}]}"#, attributes: ["q": n("0")], matches: false),
        Case(policy: #"{"c":[{"anything-but":{"prefix":"test-"}}]}"#, attributes: ["c": s("test-1")], matches: false),
        Case(policy: #"{"c":[{"anything-but":{"prefix":"test-"}}]}"#, attributes: ["c": s("prod-1")], matches: true),
        Case(policy: #"{"c":[{"anything-but":["red"]}]}"#, attributes: [:], matches: false),
        // numeric comparisons and ranges, on Number attributes only
        Case(policy: #"{"p":[{"numeric":["=",5]}]}"#, attributes: ["p": n("5")], matches: true),
        Case(policy: #"{"p":[{"numeric":["<",5]}]}"#, attributes: ["p": n("5")], matches: false),
        Case(policy: #"{"p":[{"numeric":["<=",5]}]}"#, attributes: ["p": n("5")], matches: true),
        Case(policy: #"{"p":[{"numeric":[">",0,"<=",150]}]}"#, attributes: ["p": n("150")], matches: true),
        Case(policy: #"{"p":[{"numeric":[">",0,"<=",150]}]}"#, attributes: ["p": n("0")], matches: false),
        Case(policy: #"{"p":[{"numeric":[">=",10]}]}"#, attributes: ["p": s("20")], matches: false),
        // exists
        Case(policy: #"{"x":[{"exists":true}]}"#, attributes: ["x": s("anything")], matches: true),
        Case(policy: #"{"x":[{"exists":true}]}"#, attributes: [:], matches: false),
        Case(policy: #"{"x":[{"exists":false}]}"#, attributes: [:], matches: true),
        Case(policy: #"{"x":[{"exists":false}]}"#, attributes: ["x": s("v")], matches: false),
        Case(policy: #"{"x":[{"exists":true}]}"#, attributes: ["x": MessageAttributeValue(DataType: "Binary", BinaryValue: "AA==")], matches: true),
        // String.Array: one element is enough; custom type suffixes keep their base type
        Case(policy: #"{"tags":["b"]}"#, attributes: ["tags": a(#"["a","b"]"#)], matches: true),
        Case(policy: #"{"tags":["c"]}"#, attributes: ["tags": a(#"["a","b"]"#)], matches: false),
        Case(policy: #"{"tags":[3]}"#, attributes: ["tags": a(#"[1,3]"#)], matches: true),
        Case(policy: #"{"k":["v"]}"#, attributes: ["k": MessageAttributeValue(DataType: "String.custom", StringValue: "v")], matches: true),
        // several conditions for one key: OR
        Case(policy: #"{"k":["v",{"prefix":"w"},{"exists":false}]}"#, attributes: ["k": s("wx")], matches: true),
        Case(policy: #"{"k":["v",{"prefix":"w"},{"exists":false}]}"#, attributes: [:], matches: true),
    ]

    @Test(arguments: cases)
    func matching(_ c: Case) throws {
        #expect(try FilterPolicy(json: c.policy).matches(c.attributes) == c.matches)
    }

    @Test(arguments: [
        "not json", "[]", "{}", #"{"k":"v"}"#, #"{"k":[]}"#, #"{"k":{"nested":["v"]}}"#, #"{"k":[true]}"#, #"{"k":[null]}"#,
        #"{"k":[{"prefix":""}]}"#, #"{"k":[{"prefix":5}]}"#, #"{"k":[{"exists":"yes"}]}"#, #"{"k":[{"wildcard":"*"}]}"#,
        #"{"k":[{"prefix":"a","suffix":"b"}]}"#, #"{"k":[{"numeric":["<"]}]}"#, #"{"k":[{"numeric":["!=",1]}]}"#,
        #"{"k":[{"numeric":["<",5,">",1]}]}"#, #"{"k":[{"numeric":[">",5,"<",1]}]}"#, #"{"k":[{"anything-but":[]}]}"#,
        #"{"k":[{"anything-but":{"suffix":"x"}}]}"#, #"{"$or":[{"a":["b"]}]}"#,
        #"{"a":["1"],"b":["1"],"c":["1"],"d":["1"],"e":["1"],"f":["1"]}"#,
    ])
    func invalidPoliciesAreRefusedWithInvalidParameter(policy: String) {
        do {
            _ = try FilterPolicy(json: policy)
            Issue.record("accepted \(policy)")
        } catch let error as SNSError {
            #expect(error.code == "InvalidParameter" && error.message.contains("FilterPolicy"), "\(error)")
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func tooManyCombinationsAreRefused() {
        let values = (0..<13).map { "\"v\($0)\"" }.joined(separator: ",")
        #expect(throws: SNSError.self) { try FilterPolicy(json: #"{"a":[\#(values)],"b":[\#(values)]}"#) }  // 169 > 150
        #expect(throws: Never.self) { try FilterPolicy(json: #"{"a":[\#(values)],"b":["x"]}"#) }
    }
}
