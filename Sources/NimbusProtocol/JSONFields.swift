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

    /// The member names of a top-level member that is an object (`RequestItems` of a
    /// BatchWriteItem: the tables it writes), in order; nil when there is no such member or it is
    /// not an object. Like `topLevelString`, anything the scanner is unsure of goes to JSONDecoder.
    public static func topLevelObjectKeys(_ key: String, in data: Data) -> [String]? {
        let found: [String]?? = data.withUnsafeBytes { raw -> [String]?? in
            var cursor = Cursor(raw.bindMemory(to: UInt8.self))
            return cursor.member(Array(key.utf8)) { cursor in cursor.objectKeys() }
        }
        if let found { return found }
        struct Keys: Decodable {
            static let key = CodingUserInfoKey(rawValue: "key")!
            var value: [String]?
            init(from decoder: Decoder) throws {
                let container = try decoder.container(keyedBy: AnyKey.self)
                let name = AnyKey(stringValue: decoder.userInfo[Self.key] as! String)
                value = (try? container.nestedContainer(keyedBy: AnyKey.self, forKey: name))?.allKeys.map(\.stringValue)
            }
        }
        let decoder = JSONDecoder()
        decoder.userInfo[Keys.key] = key
        return (try? decoder.decode(Keys.self, from: data))?.value
    }

    /// The text of top-level member `key` as it stands in `data` (any JSON value), when it is an
    /// object; nil when there is no such member, it is not an object, or the reader is unsure
    /// (escaped member names, a key given twice, bad JSON).
    public static func topLevelRaw(_ key: String, in data: Data) -> Data? {
        let found: Range<Int>?? = data.withUnsafeBytes { raw -> Range<Int>?? in
            var cursor = Cursor(raw.bindMemory(to: UInt8.self))
            return cursor.member(Array(key.utf8)) { cursor -> Range<Int>?? in
                cursor.space()
                let start = cursor.i
                guard start < cursor.b.count, cursor.b[start] == 0x7B, cursor.value() else { return nil }
                return .some(start..<cursor.i)
            }
        }
        guard let range = found ?? nil else { return nil }
        return data.subdata(in: (data.startIndex + range.lowerBound)..<(data.startIndex + range.upperBound))
    }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    /// `.some(value)` when decided here (`.some(nil)`: no such member), nil when unsure.
    private static func scan(_ b: UnsafeBufferPointer<UInt8>, key: [UInt8]) -> String?? {
        var cursor = Cursor(b)
        return cursor.member(key) { cursor -> String?? in
            guard let (range, escaped) = cursor.string() else { return nil }
            // Foundation's JSONEncoder writes "/" as "\/" in every URL: worth reading here.
            if escaped { return StringJSON.unescape(UnsafeBufferPointer(rebasing: b[range])).map { .some($0) } }
            return .some(String(decoding: UnsafeBufferPointer(rebasing: b[range]), as: UTF8.self))
        }
    }

    /// A forward reader over JSON bytes that skips what it does not need.
    private struct Cursor {
        let b: UnsafeBufferPointer<UInt8>
        var i = 0

        init(_ b: UnsafeBufferPointer<UInt8>) { self.b = b }

        mutating func space() { while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 } }

        /// Skips a string starting at the quote; returns its raw range and whether it had escapes.
        mutating func string() -> (Range<Int>, Bool)? {
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
        mutating func value() -> Bool {
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

        /// Walks the object that starts here, calling `visit` with the cursor at each member's
        /// value (unescaped name bytes); `visit` reads or skips the value and returns false to give
        /// up. `.some(true)` after the closing brace, nil when unsure (escaped names, bad JSON).
        mutating func members(_ visit: (inout Cursor, Range<Int>) -> Bool) -> Bool? {
            space()
            guard i < b.count, b[i] == 0x7B else { return nil }
            i += 1
            space()
            if i < b.count, b[i] == 0x7D { i += 1; return true }
            while true {
                space()
                guard let (name, nameEscaped) = string(), !nameEscaped else { return nil }
                space()
                guard i < b.count, b[i] == 0x3A else { return nil }
                i += 1
                space()
                guard visit(&self, name) else { return nil }
                space()
                guard i < b.count else { return nil }
                if b[i] == 0x2C { i += 1; continue }
                if b[i] == 0x7D { i += 1; return true }
                return nil
            }
        }

        /// The value of top-level member `key`, read by `read`: `.some(nil)` when there is no such
        /// member. The whole object is read: a key given twice is left to JSONDecoder, so the
        /// resource authorized is always the one the service acts on.
        mutating func member<T>(_ key: [UInt8], _ read: (inout Cursor) -> T??) -> T?? {
            var found: T?
            var matches = 0
            var unsure = false
            let b = self.b
            let complete = members { cursor, name in
                guard name.count == key.count,
                      key.withUnsafeBufferPointer({ memcmp($0.baseAddress!, b.baseAddress! + name.lowerBound, key.count) == 0 }) else {
                    return cursor.value()
                }
                matches += 1
                guard matches == 1, let value = read(&cursor) else { unsure = true; return false }
                found = value
                return true
            }
            guard complete == true, !unsure else { return nil }
            return .some(found)
        }

        /// The names of the object that starts here (nil when unsure).
        mutating func objectKeys() -> [String]?? {
            var names: [String] = []
            let b = self.b
            guard members({ cursor, name in
                names.append(String(decoding: UnsafeBufferPointer(rebasing: b[name]), as: UTF8.self))
                return cursor.value()
            }) == true else { return nil }
            return .some(names)
        }
    }
}
