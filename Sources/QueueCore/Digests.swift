import Crypto
import Foundation

enum Digests {
    static func md5Hex(_ bytes: some DataProtocol) -> String {
        Insecure.MD5.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
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
