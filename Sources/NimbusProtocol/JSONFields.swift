import Foundation

/// Reads one top-level string member of a JSON object without decoding the rest: what the
/// authorizer needs from every request body (the QueueUrl of a SendMessage) before the service
/// decodes it. Nested values are skipped by bracket counting; a string member with escapes, or
/// any doubt, falls back to JSONDecoder for that one member, so the answer is always JSON's.
public enum JSONFields {
    public static func topLevelString(_ key: String, in data: Data) -> String? {
        let found: String?? = data.withUnsafeBytes { raw -> String?? in
            let bytes = raw.bindMemory(to: UInt8.self)
            return scan(bytes, key: Array(key.utf8))
        }
        if let found { return found }
        // Escapes or a shape the scanner does not take: let JSONDecoder say.
        struct AnyKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        struct One: Decodable {
            static let key = CodingUserInfoKey(rawValue: "key")!
            var value: String?
            init(from decoder: Decoder) throws {
                let container = try decoder.container(keyedBy: AnyKey.self)
                value = try? container.decodeIfPresent(String.self, forKey: AnyKey(stringValue: decoder.userInfo[Self.key] as! String))
            }
        }
        let decoder = JSONDecoder()
        decoder.userInfo[One.key] = key
        return (try? decoder.decode(One.self, from: data))?.value
    }

    /// `.some(value)` when decided here (`.some(nil)`: no such member), nil when unsure.
    private static func scan(_ b: UnsafeBufferPointer<UInt8>, key: [UInt8]) -> String?? {
        var i = 0
        func space() { while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 } }
        /// Skips a string starting at the quote; returns its raw range and whether it had escapes.
        func string() -> (Range<Int>, Bool)? {
            guard i < b.count, b[i] == 0x22 else { return nil }
            i += 1
            let start = i
            var escaped = false
            while i < b.count {
                if b[i] == 0x5C { escaped = true; i += 2; continue }
                if b[i] == 0x22 { let r = start..<i; i += 1; return (r, escaped) }
                i += 1
            }
            return nil
        }
        /// Skips any value.
        func value() -> Bool {
            space()
            guard i < b.count else { return false }
            if b[i] == 0x22 { return string() != nil }
            if b[i] == 0x7B || b[i] == 0x5B {
                var depth = 0
                while i < b.count {
                    switch b[i] {
                    case 0x22: if string() == nil { return false }; continue
                    case 0x7B, 0x5B: depth += 1
                    case 0x7D, 0x5D:
                        depth -= 1
                        if depth == 0 { i += 1; return true }
                    default: break
                    }
                    i += 1
                }
                return false
            }
            while i < b.count, b[i] != 0x2C, b[i] != 0x7D, b[i] != 0x5D { i += 1 }
            return true
        }
        space()
        guard i < b.count, b[i] == 0x7B else { return nil }
        i += 1
        space()
        if i < b.count, b[i] == 0x7D { return .some(nil) }
        // The whole object is read: a key given twice is left to JSONDecoder, so the resource
        // authorized is always the one the service acts on.
        var found: String?
        var matches = 0
        while true {
            space()
            guard let (name, nameEscaped) = string(), !nameEscaped else { return nil }
            space()
            guard i < b.count, b[i] == 0x3A else { return nil }
            i += 1
            space()
            if name.count == key.count, key.withUnsafeBufferPointer({ memcmp($0.baseAddress!, b.baseAddress! + name.lowerBound, key.count) == 0 }) {
                matches += 1
                guard matches == 1, i < b.count, b[i] == 0x22 else { return nil }
                guard let (range, escaped) = string() else { return nil }
                if escaped {
                    // Foundation's JSONEncoder writes "/" as "\/" in every URL: worth reading here.
                    guard let text = StringJSON.unescape(UnsafeBufferPointer(rebasing: b[range])) else { return nil }
                    found = text
                } else {
                    found = String(decoding: UnsafeBufferPointer(rebasing: b[range]), as: UTF8.self)
                }
            } else {
                guard value() else { return nil }
            }
            space()
            guard i < b.count else { return nil }
            if b[i] == 0x2C { i += 1; continue }
            if b[i] == 0x7D { return .some(found) }
            return nil
        }
    }
}
