import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The web console's bearer token (docs/console.md): 32 random bytes as 64 hex digits in
/// `<data>/console-token` (0600). `nimbus up` makes it when there is none; the gateway reads it.
public enum ConsoleToken {
    /// `<data>/console-token`.
    public static func file(dataDirectory: URL) -> URL { dataDirectory.appendingPathComponent("console-token") }

    /// A new token: 32 bytes from the system's CSPRNG (getrandom on Linux), hex.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for _ in 0..<32 {
            let byte = UInt8.random(in: 0...255, using: &generator)
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The token in `file`, creating the file (0600, with its folder) when there is none. Creation is
    /// exclusive (O_EXCL), so two processes that race both end up with the one that won.
    public static func ensure(_ file: URL) throws -> String {
        if let existing = read(file) { return existing }
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        let token = generate()
        let fd = open(file.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd < 0 {
            if errno == EEXIST, let existing = read(file) { return existing }
            throw ConfigError("cannot create \(file.path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        let line = Array((token + "\n").utf8)
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == line.count else {
            unlink(file.path)
            throw ConfigError("cannot write \(file.path): \(String(cString: strerror(errno)))")
        }
        return token
    }

    /// The token the file holds (surrounding white space ignored); nil when it is missing or empty.
    public static func read(_ file: URL) -> String? {
        guard let data = FileManager.default.contents(atPath: file.path) else { return nil }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return token.isEmpty ? nil : token
    }

    /// Compares in time that depends only on the lengths, not on where the two first differ.
    public static func matches(_ given: some StringProtocol, _ expected: some StringProtocol) -> Bool {
        let a = Array(given.utf8), b = Array(expected.utf8)
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count) | (a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0 && !b.isEmpty
    }
}
