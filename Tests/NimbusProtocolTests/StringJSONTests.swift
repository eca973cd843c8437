import Foundation
import Testing
@testable import NimbusProtocol

/// The strict objects-arrays-strings reader: whatever it accepts it must read exactly as JSON does,
/// and whatever is outside its subset it must leave to JSONDecoder (nil).
@Suite struct StringJSONTests {
    /// The same value through JSONSerialization, for comparison.
    func foundation(_ text: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed]) }

    func same(_ value: StringJSON, _ other: Any) -> Bool {
        switch value {
        case .string(let s): return (other as? String) == s
        case .array(let items):
            guard let others = other as? [Any], others.count == items.count else { return false }
            return zip(items, others).allSatisfy { same($0, $1) }
        case .object(let pairs):
            guard let others = other as? [String: Any], others.count == pairs.count else { return false }
            return pairs.allSatisfy { pair in others[pair.key].map { same(pair.value, $0) } ?? false }
        }
    }

    @Test(arguments: [
        #"{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/000000000000/POC-Queue","MessageBody":"{\"item\": \"latex gloves\", \"customerID\": \"12345\"}"}"#,
        #" { "a" : [ "x" , { "b" : "c\/d\\e\n\t\r\b\f" } , [ ] ] , "e" : { } } "#,
        #"{"QueueUrl":"q","Entries":[{"Id":"m0","MessageBody":"a&b+c%d ünïcødé ✓ 🚀"},{"Id":"m1","MessageBody":""}]}"#,
        #"["only","strings"]"#,
        #""top-level string""#,
    ])
    func readsItsSubsetExactlyAsJSONDoes(text: String) throws {
        let value = try #require(StringJSON.parse(Data(text.utf8)))
        let expected = try #require(foundation(text))
        #expect(same(value, expected))
    }

    @Test(arguments: [
        #"{"DelaySeconds":5}"#,                          // numbers
        #"{"a":true}"#, #"{"a":null}"#,                  // literals
        #"{"a":"\u0041"}"#,                              // \u escapes go to JSONDecoder
        #"{"a":"x","a":"y"}"#,                           // a key twice
        #"{"a":"x"} trailing"#, #"{"a":"x"}}"#,          // bytes after the value
        "{\"a\":\"x\ny\"}",                              // raw control character
        #"{"a":"x",}"#, #"{"a" "x"}"#, #"{"a":"x""#,     // malformed
        #"{"a":"\q"}"#,                                  // bad escape
        "", "   ",
        String(repeating: "[", count: 40) + String(repeating: "]", count: 40),  // deeper than the limit
    ])
    func leavesEverythingElseToJSONDecoder(text: String) {
        #expect(StringJSON.parse(Data(text.utf8)) == nil)
    }

    @Test func invalidUTF8IsNotRead() {
        var bytes = Array(#"{"a":"x"}"#.utf8)
        bytes[6] = 0xFF
        #expect(StringJSON.parse(Data(bytes)) == nil)
        var escaped = Array(#"{"a":"\nx"}"#.utf8)
        escaped[8] = 0xC3  // a lone lead byte after an escape
        #expect(StringJSON.parse(Data(escaped)) == nil)
    }

    @Test func membersAreOnlyTheAllowedKeys() throws {
        let value = try #require(StringJSON.parse(Data(#"{"QueueUrl":"q","MessageBody":"b"}"#.utf8)))
        #expect(value.members(allowed: ["QueueUrl", "MessageBody"])?["MessageBody"]?.string == "b")
        #expect(value.members(allowed: ["QueueUrl"]) == nil)
        #expect(StringJSON.string("x").members(allowed: []) == nil)
    }
}
