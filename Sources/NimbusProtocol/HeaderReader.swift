import Foundation

/// A fast reader for the header JSON as Nimbus writes it: one object of known fields whose strings
/// have no escapes, and integer numbers. Anything else returns nil, and the caller falls back to
/// JSONDecoder, so this never accepts what JSONDecoder would refuse nor reads anything differently.
/// (JSONDecoder costs ~10 µs per header and the header is on every message.)
enum HeaderReader {
    static func read(_ data: Data) -> EnvelopeHeader? {
        data.withUnsafeBytes { raw -> EnvelopeHeader? in
            var reader = Cursor(bytes: raw.bindMemory(to: UInt8.self))
            return reader.header()
        }
    }

    private struct Cursor {
        let bytes: UnsafeBufferPointer<UInt8>
        var at = 0

        mutating func skipSpace() {
            while at < bytes.count, bytes[at] == 0x20 || bytes[at] == 0x0A || bytes[at] == 0x0D || bytes[at] == 0x09 { at += 1 }
        }

        mutating func take(_ byte: UInt8) -> Bool {
            skipSpace()
            guard at < bytes.count, bytes[at] == byte else { return false }
            at += 1
            return true
        }

        mutating func peek(_ byte: UInt8) -> Bool {
            skipSpace()
            return at < bytes.count && bytes[at] == byte
        }

        /// A string without escapes or control characters, valid UTF-8.
        mutating func string() -> String? {
            guard take(0x22) else { return nil }
            let start = at
            while at < bytes.count {
                let byte = bytes[at]
                if byte == 0x22 {
                    let text = UTF8Text.validated(UnsafeBufferPointer(rebasing: bytes[start..<at]))
                    at += 1
                    return text
                }
                if byte == 0x5C || byte < 0x20 { return nil }
                at += 1
            }
            return nil
        }

        mutating func integer() -> Int64? {
            skipSpace()
            var negative = false
            if at < bytes.count, bytes[at] == 0x2D { negative = true; at += 1 }
            let start = at
            var value: Int64 = 0
            while at < bytes.count, bytes[at] >= 0x30, bytes[at] <= 0x39 {
                let (times, o1) = value.multipliedReportingOverflow(by: 10)
                let (plus, o2) = times.addingReportingOverflow(Int64(bytes[at] - 0x30))
                if o1 || o2 { return nil }
                value = plus
                at += 1
            }
            // No leading zeros, fractions or exponents on this path.
            if at == start || (at - start > 1 && bytes[start] == 0x30) { return nil }
            if at < bytes.count, bytes[at] == 0x2E || bytes[at] == 0x65 || bytes[at] == 0x45 { return nil }
            return negative ? -value : value
        }

        /// A key from a fixed list, compared as bytes: its index, or nil for any other key.
        mutating func key(_ known: [[UInt8]]) -> Int? {
            guard take(0x22) else { return nil }
            let start = at
            while at < bytes.count, bytes[at] != 0x22, bytes[at] != 0x5C { at += 1 }
            guard at < bytes.count, bytes[at] == 0x22 else { return nil }
            let length = at - start
            at += 1
            guard take(0x3A) else { return nil }
            for (index, name) in known.enumerated() where name.count == length {
                if name.withUnsafeBufferPointer({ memcmp($0.baseAddress!, bytes.baseAddress! + start, length) == 0 }) { return index }
            }
            return nil
        }

        static let headerKeys: [[UInt8]] = ["kind", "id", "action", "resource", "sender", "auth"].map { Array($0.utf8) }
        static let senderKeys: [[UInt8]] = ["name", "incarnation"].map { Array($0.utf8) }
        static let authKeys: [[UInt8]] = ["accessKeyId", "sessionToken", "timestamp", "signature"].map { Array($0.utf8) }

        /// Reads `{ "key": value, ... }` over known keys only, each at most once; `value` reads the
        /// value of key number `index` and says whether it could.
        mutating func members(_ keys: [[UInt8]], _ value: (inout Cursor, Int) -> Bool) -> Bool {
            guard take(0x7B) else { return false }
            if take(0x7D) { return true }
            var seen = 0
            repeat {
                guard let index = key(keys), seen & (1 << index) == 0, value(&self, index) else { return false }
                seen |= 1 << index
            } while take(0x2C)
            return take(0x7D)
        }

        // A value this path does not take (null, a number where a string goes, an escape, an unknown
        // key) makes it give up: JSONDecoder then decides, and names the mistake.
        mutating func header() -> EnvelopeHeader? {
            var kind: MessageKind?
            var id: String?
            var action: String?
            var resource: String?
            var sender: NodeStamp?
            var auth: RequestAuth?
            let ok = members(Self.headerKeys) { cursor, index in
                switch index {
                case 0: kind = cursor.string().flatMap(MessageKind.init(rawValue:)); return kind != nil
                case 1: id = cursor.string(); return id != nil
                case 2: action = cursor.string(); return action != nil
                case 3: resource = cursor.string(); return resource != nil
                case 4: sender = cursor.sender(); return sender != nil
                default: auth = cursor.auth(); return auth != nil
                }
            }
            guard ok, !peekTrailing(), let kind, let id else { return nil }
            return EnvelopeHeader(kind: kind, id: id, action: action, resource: resource, sender: sender, auth: auth)
        }

        mutating func sender() -> NodeStamp? {
            var name: String?
            var incarnation: String?
            guard members(Self.senderKeys, { cursor, index in
                if index == 0 { name = cursor.string(); return name != nil }
                incarnation = cursor.string()
                return incarnation != nil
            }), let name, let incarnation else { return nil }
            return NodeStamp(name: name, incarnation: incarnation)
        }

        mutating func auth() -> RequestAuth? {
            var keyID: String?
            var token: String?
            var timestamp: Int64?
            var signature: String?
            guard members(Self.authKeys, { cursor, index in
                switch index {
                case 0: keyID = cursor.string(); return keyID != nil
                case 1: token = cursor.string(); return token != nil
                case 2: timestamp = cursor.integer(); return timestamp != nil
                default: signature = cursor.string(); return signature != nil
                }
            }), let keyID, let timestamp, let signature else { return nil }
            return RequestAuth(accessKeyId: keyID, sessionToken: token, timestamp: timestamp, signature: signature)
        }

        /// True when anything but white space follows the object.
        mutating func peekTrailing() -> Bool {
            skipSpace()
            return at != bytes.count
        }
    }
}
