import Foundation
import Testing
@testable import NimbusProtocol

/// The hand-written JSON string literals: whatever goes in must come back out of a JSON parser
/// unchanged, escaped or not, at the start, middle or end of a run.
@Suite struct JSONTextTests {
    func roundTrip(_ value: String) throws -> String? {
        var bytes: [UInt8] = Array("[".utf8)
        JSONText.appendString(value, to: &bytes)
        bytes.append(UInt8(ascii: "]"))
        return try (JSONSerialization.jsonObject(with: Data(bytes)) as? [String])?.first
    }

    @Test(arguments: [
        "", "plain", #"{"item": "latex gloves", "customerID": "12345"}"#, #"\"#, #""""#, "a\nb\r\tc",
        "\u{0}\u{1}\u{1F} edge", "ends with quote\"", "\"starts with quote", #"back\slash\\"#,
        "a&b+c%d ünïcødé ✓ 🚀", String(repeating: #"x"y\"#, count: 500),
    ])
    func everyStringSurvivesAJSONParser(value: String) throws {
        #expect(try roundTrip(value) == value)
    }

    @Test func everyControlCharacterIsEscapedAndNothingElseIs() throws {
        for scalar in (0..<0x80).compactMap(Unicode.Scalar.init) {
            let value = "<\(Character(scalar))>"
            var bytes: [UInt8] = []
            JSONText.appendString(value, to: &bytes)
            let needsEscape = scalar.value < 0x20 || scalar == "\"" || scalar == "\\"
            #expect((bytes.count > value.utf8.count + 2) == needsEscape, "\(scalar.value)")
            #expect(try roundTrip(value) == value, "\(scalar.value)")
        }
    }

    @Test func appendsAfterWhatIsAlreadyThere() {
        var text = #"{"k":"#
        JSONText.appendString("v\"w", to: &text)
        #expect(text == #"{"k":"v\"w""#)
    }
}
