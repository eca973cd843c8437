import Crypto
import Foundation
import NimbusProtocol

enum Digests {
    static func md5Hex(_ bytes: some DataProtocol) -> String {
        Insecure.MD5.hash(data: bytes).withUnsafeBytes { Hex.encode($0) }
    }

    /// A random (version 4) UUID in lowercase, as SQS message ids are; Foundation's UUID() plus
    /// lowercasing costs several microseconds.
    static func messageID() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes = withUnsafeBytes(of: (generator.next() as UInt64, generator.next() as UInt64)) { Array($0) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let h = Array(Hex.encode(bytes).utf8)
        var out: [UInt8] = []
        out.reserveCapacity(36)
        for (i, c) in h.enumerated() {
            if i == 8 || i == 12 || i == 16 || i == 20 { out.append(0x2D) }
            out.append(c)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// SQS's MD5OfMessageAttributes: over the attributes sorted by name, each as length-prefixed
    /// name, length-prefixed data type, a transport byte (1 string, 2 binary) and the length-prefixed value.
    static func md5OfAttributes(_ attributes: [String: MessageAttributeValue]) -> String {
        var bytes: [UInt8] = []
        func prefixed(_ part: [UInt8]) {
            let n = UInt32(part.count).bigEndian
            withUnsafeBytes(of: n) { bytes.append(contentsOf: $0) }
            bytes.append(contentsOf: part)
        }
        for name in attributes.keys.sorted() {
            let value = attributes[name]!
            prefixed(Array(name.utf8))
            prefixed(Array(value.DataType.utf8))
            if let string = value.StringValue {
                bytes.append(1)
                prefixed(Array(string.utf8))
            } else if let binary = value.BinaryValue, let data = Data(base64Encoded: binary) {
                bytes.append(2)
                prefixed(Array(data))
            }
        }
        return md5Hex(bytes)
    }
}
