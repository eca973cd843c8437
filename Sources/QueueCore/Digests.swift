import Crypto
import Foundation
import NimbusProtocol

enum Digests {
    static func md5Hex(_ bytes: some DataProtocol) -> String {
        Insecure.MD5.hash(data: bytes).withUnsafeBytes { Hex.encode($0) }
    }

    /// MD5 of a string's UTF-8 bytes, hashed in place (no copy into a Data first).
    static func md5Hex(of text: String) -> String {
        var text = text
        return text.withUTF8 { Insecure.MD5.hash(data: UnsafeRawBufferPointer($0)) }.withUnsafeBytes { Hex.encode($0) }
    }

    /// A random (version 4) UUID in lowercase, as SQS message ids are; Foundation's UUID() plus
    /// lowercasing costs several microseconds. The random bytes come from /dev/urandom 4 KiB at a
    /// time (`RandomPool`), not from two getrandom(2) calls per id.
    static func messageID() -> String {
        var bytes = RandomPool.shared.bytes16()
        bytes.6 = (bytes.6 & 0x0F) | 0x40
        bytes.8 = (bytes.8 & 0x3F) | 0x80
        return withUnsafeBytes(of: bytes) { Hex.uuid($0) }
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

/// Cryptographically random bytes from the kernel (/dev/urandom), fetched in blocks: ids are drawn
/// on every send, and a getrandom(2) call per eight bytes showed in the broker's profile.
final class RandomPool: @unchecked Sendable {
    static let shared = RandomPool()
    private let lock = NSLock()
    private var block = [UInt8](repeating: 0, count: 4096)
    private var used = 4096
    private var urandom: Int32 = -1

    typealias Bytes16 = (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)

    func bytes16() -> Bytes16 {
        lock.lock()
        defer { lock.unlock() }
        if used + 16 > block.count {
            block.withUnsafeMutableBytes { raw in
                // One read of /dev/urandom for the block; the system generator (a call per eight
                // bytes) for whatever it did not fill.
                if urandom < 0 { urandom = open("/dev/urandom", O_RDONLY | O_CLOEXEC) }
                let filled = urandom < 0 ? 0 : max(0, read(urandom, raw.baseAddress, raw.count))
                var generator = SystemRandomNumberGenerator()
                var offset = filled
                while offset < raw.count {
                    withUnsafeBytes(of: generator.next() as UInt64) { word in
                        let n = min(8, raw.count - offset)
                        raw.baseAddress!.advanced(by: offset).copyMemory(from: word.baseAddress!, byteCount: n)
                        offset += n
                    }
                }
            }
            used = 0
        }
        var out: Bytes16 = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &out) { dst in
            block.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[used..<used + 16])) }
        }
        used += 16
        return out
    }
}
