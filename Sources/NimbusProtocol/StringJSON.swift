import Foundation

/// A strict reader for the JSON the hot request shapes are made of: objects, arrays and strings,
/// nothing else. SendMessage, SendMessageBatch and their kin cross every node on an order's way, and
/// JSONDecoder costs ~10 µs for one of them; this reads one in about a tenth of that.
///
/// It returns nil for anything outside that subset (numbers, booleans, null, `\u` escapes, a key
/// given twice, invalid UTF-8, control characters, trailing bytes), and callers then decode with
/// JSONDecoder: so it never accepts what JSONDecoder refuses, and never reads anything differently.
public indirect enum StringJSON: Equatable, Sendable {
    case string(String)
    case array([StringJSON])
    case object([(key: String, value: StringJSON)])

    public static func == (a: StringJSON, b: StringJSON) -> Bool {
        switch (a, b) {
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)): return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    /// Nesting deeper than this goes to JSONDecoder (which has its own limit).
    static let maxDepth = 16

    public static func parse(_ data: Data) -> StringJSON? {
        data.withUnsafeBytes { raw -> StringJSON? in
            var reader = Reader(bytes: raw.bindMemory(to: UInt8.self))
            guard let value = reader.value(depth: 0) else { return nil }
            reader.space()
            return reader.at == reader.bytes.count ? value : nil
        }
    }

    /// The members of an object, when every key is one of `allowed` (keys are unique already).
    public func members(allowed: Set<String>) -> Members? {
        guard case .object(let pairs) = self, pairs.allSatisfy({ allowed.contains($0.key) }) else { return nil }
        return Members(pairs: pairs)
    }

    /// An object's members by name: a handful at most, so a scan rather than a dictionary.
    public struct Members: Sendable {
        let pairs: [(key: String, value: StringJSON)]
        public subscript(key: String) -> StringJSON? { pairs.first { $0.key == key }?.value }
        public var values: [StringJSON] { pairs.map(\.value) }
    }

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var array: [StringJSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var at = 0

        mutating func space() {
            while at < bytes.count, bytes[at] == 0x20 || bytes[at] == 0x0A || bytes[at] == 0x0D || bytes[at] == 0x09 { at += 1 }
        }

        mutating func value(depth: Int) -> StringJSON? {
            space()
            guard at < bytes.count, depth <= StringJSON.maxDepth else { return nil }
            switch bytes[at] {
            case 0x22: return string().map(StringJSON.string)
            case 0x5B:
                at += 1
                var items: [StringJSON] = []
                space()
                if at < bytes.count, bytes[at] == 0x5D { at += 1; return .array(items) }
                while true {
                    guard let item = value(depth: depth + 1) else { return nil }
                    items.append(item)
                    space()
                    guard at < bytes.count else { return nil }
                    if bytes[at] == 0x2C { at += 1; continue }
                    if bytes[at] == 0x5D { at += 1; return .array(items) }
                    return nil
                }
            case 0x7B:
                at += 1
                var pairs: [(key: String, value: StringJSON)] = []
                space()
                if at < bytes.count, bytes[at] == 0x7D { at += 1; return .object(pairs) }
                while true {
                    space()
                    guard let key = string() else { return nil }
                    // A key given twice: which one wins is JSONDecoder's to say.
                    if pairs.contains(where: { $0.key == key }) { return nil }
                    space()
                    guard at < bytes.count, bytes[at] == 0x3A else { return nil }
                    at += 1
                    guard let item = value(depth: depth + 1) else { return nil }
                    pairs.append((key, item))
                    space()
                    guard at < bytes.count else { return nil }
                    if bytes[at] == 0x2C { at += 1; continue }
                    if bytes[at] == 0x7D { at += 1; return .object(pairs) }
                    return nil
                }
            default:
                return nil
            }
        }

        /// A string at the cursor: valid UTF-8, no raw control characters, simple escapes only.
        mutating func string() -> String? {
            guard at < bytes.count, bytes[at] == 0x22 else { return nil }
            at += 1
            let start = at
            var escaped = false
            while at < bytes.count {
                let byte = bytes[at]
                if byte == 0x22 {
                    let raw = UnsafeBufferPointer(rebasing: bytes[start..<at])
                    at += 1
                    return escaped ? StringJSON.unescape(raw) : UTF8Text.validated(raw)
                }
                if byte < 0x20 { return nil }
                if byte == 0x5C { escaped = true; at += 2; continue }
                at += 1
            }
            return nil
        }
    }

    /// The text of a JSON string's contents (between its quotes) with its simple escapes resolved;
    /// nil for `\u` escapes (JSONDecoder's), a malformed escape or invalid UTF-8.
    static func unescape(_ raw: UnsafeBufferPointer<UInt8>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = 0
        while i < raw.count {
            let c = raw[i]
            guard c == 0x5C else { out.append(c); i += 1; continue }
            guard i + 1 < raw.count else { return nil }
            switch raw[i + 1] {
            case 0x22: out.append(0x22)
            case 0x5C: out.append(0x5C)
            case 0x2F: out.append(0x2F)
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            default: return nil  // \u (and anything malformed) is JSONDecoder's
            }
            i += 2
        }
        return out.withUnsafeBufferPointer { UTF8Text.validated($0) }
    }
}
