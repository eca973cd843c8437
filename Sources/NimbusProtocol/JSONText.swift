/// Minimal JSON text building for the few hot, fixed shapes the protocol writes itself.
public enum JSONText {
    /// Appends `value` as a JSON string literal (quotes and escapes included).
    public static func appendString(_ value: String, to out: inout String) {
        var bytes: [UInt8] = []
        appendString(value, to: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }

    /// Appends `value` as a JSON string literal to UTF-8 bytes. Strings that need no escaping (ids,
    /// names, ARNs: nearly all) are copied in one go; others (a notification's JSON message) run by
    /// run between the bytes that need an escape.
    public static func appendString(_ value: String, to out: inout [UInt8]) {
        out.append(0x22)
        var value = value
        value.withUTF8 { utf8 in
            var runStart = 0
            for index in utf8.indices {
                let byte = utf8[index]
                guard byte < 0x20 || byte == 0x22 || byte == 0x5C else { continue }
                if runStart < index {
                    if runStart == 0 { out.reserveCapacity(out.count + utf8.count + 16) }
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                }
                out.append(0x5C)
                switch byte {
                case 0x22: out.append(0x22)
                case 0x5C: out.append(0x5C)
                case 0x0A: out.append(0x6E)
                case 0x0D: out.append(0x72)
                case 0x09: out.append(0x74)
                default:
                    out.append(contentsOf: [0x75, 0x30, 0x30, Hex.digits[Int(byte >> 4)], Hex.digits[Int(byte & 0xF)]])
                }
                runStart = index + 1
            }
            if runStart < utf8.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...])) }
        }
        out.append(0x22)
    }

    public static func append(_ literal: StaticString, to out: inout [UInt8]) {
        literal.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    public static func appendInteger(_ value: Int64, to out: inout [UInt8]) {
        out.append(contentsOf: String(value).utf8)
    }
}
