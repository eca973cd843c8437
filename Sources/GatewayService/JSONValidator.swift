/// Checks that bytes are one complete JSON document (RFC 8259), without building any value: the
/// gateway forwards the body as it came, it only refuses what is not JSON. Depth is bounded.
enum JSONValidator {
    static func isValid(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 512) -> Bool {
        var p = Parser(bytes: bytes, maxDepth: maxDepth)
        p.space()
        guard p.value(depth: 0) else { return false }
        p.space()
        return p.at == bytes.count
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        let maxDepth: Int
        var at = 0

        var current: UInt8? { at < bytes.count ? bytes[at] : nil }

        mutating func space() {
            while let c = current, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { at += 1 }
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let n = word.utf8CodeUnitCount
            guard at + n <= bytes.count else { return false }
            for i in 0..<n where bytes[at + i] != word.utf8Start[i] { return false }
            at += n
            return true
        }

        mutating func value(depth: Int) -> Bool {
            guard depth <= maxDepth, let c = current else { return false }
            switch c {
            case 0x7B: return object(depth: depth)
            case 0x5B: return array(depth: depth)
            case 0x22: return string()
            case 0x74: return literal("true")
            case 0x66: return literal("false")
            case 0x6E: return literal("null")
            default: return number()
            }
        }

        mutating func object(depth: Int) -> Bool {
            at += 1
            space()
            if current == 0x7D { at += 1; return true }
            while true {
                space()
                guard current == 0x22, string() else { return false }
                space()
                guard current == 0x3A else { return false }
                at += 1
                space()
                guard value(depth: depth + 1) else { return false }
                space()
                if current == 0x2C { at += 1; continue }
                if current == 0x7D { at += 1; return true }
                return false
            }
        }

        mutating func array(depth: Int) -> Bool {
            at += 1
            space()
            if current == 0x5D { at += 1; return true }
            while true {
                space()
                guard value(depth: depth + 1) else { return false }
                space()
                if current == 0x2C { at += 1; continue }
                if current == 0x5D { at += 1; return true }
                return false
            }
        }

        /// A string with valid escapes and no raw control characters. UTF-8 validity of the rest is
        /// checked by the caller (the body must be text anyway).
        mutating func string() -> Bool {
            at += 1
            while let c = current {
                at += 1
                switch c {
                case 0x22: return true
                case 0x5C:
                    guard let e = current else { return false }
                    at += 1
                    switch e {
                    case 0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74: continue
                    case 0x75:
                        for _ in 0..<4 {
                            guard let h = current, (h >= 0x30 && h <= 0x39) || (h >= 0x41 && h <= 0x46) || (h >= 0x61 && h <= 0x66) else { return false }
                            at += 1
                        }
                    default: return false
                    }
                case ..<0x20: return false
                default: continue
                }
            }
            return false
        }

        mutating func digits() -> Int {
            let start = at
            while let c = current, c >= 0x30, c <= 0x39 { at += 1 }
            return at - start
        }

        mutating func number() -> Bool {
            if current == 0x2D { at += 1 }
            guard let first = current, first >= 0x30, first <= 0x39 else { return false }
            if first == 0x30 { at += 1 } else { _ = digits() }
            if current == 0x2E {
                at += 1
                guard digits() > 0 else { return false }
            }
            if current == 0x65 || current == 0x45 {
                at += 1
                if current == 0x2B || current == 0x2D { at += 1 }
                guard digits() > 0 else { return false }
            }
            return true
        }
    }
}
