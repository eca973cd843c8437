import Foundation
import NimbusConfig
import ZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// The CURVE keys of a cluster's processes, under `<data>/keys/`:
///
///     keys/NAME.secret        this process's key pair (0600): its public and secret key, Z85
///     keys/public/NAME.key    its public key (0644), which every other process reads
///
/// Each process makes its pair at its first start and keeps it; on one host the shared `public/`
/// folder is how the keys are distributed (docs/architecture.md, "Links"). Both files are in the
/// ZPL format of czmq's `zcert` (what `zmq.auth.load_certificate` in pyzmq reads too).
public struct CurveKeyStore: Sendable {
    public let directory: URL

    public init(dataDirectory: URL) {
        directory = dataDirectory.appendingPathComponent("keys")
    }

    public var publicDirectory: URL { directory.appendingPathComponent("public") }
    public func secretFile(_ name: String) -> URL { directory.appendingPathComponent("\(name).secret") }
    public func publicFile(_ name: String) -> URL { publicDirectory.appendingPathComponent("\(name).key") }

    /// The key pair of the process `name`: read from its secret file, or made now (and its public
    /// key published) when there is none. Two processes of the same name starting at once end up
    /// with the same pair: the file is created with `link`, which only one of them wins.
    public func keyPair(for name: String) throws -> CurveKeyPair {
        try Self.checkName(name)
        try createDirectories()
        let file = secretFile(name)
        let pair: CurveKeyPair
        if FileManager.default.fileExists(atPath: file.path) {
            pair = try readSecret(file)
        } else {
            let fresh = try CurveKeyPair.generate()
            let text = Self.secretText(name: name, fresh)
            let temporary = directory.appendingPathComponent(".\(name).secret.\(getpid()).\(UInt32.random(in: 0...UInt32.max))")
            defer { unlink(temporary.path) }
            try Self.write(text, to: temporary, mode: 0o600)
            if link(temporary.path, file.path) == 0 {
                pair = fresh
            } else if errno == EEXIST {
                pair = try readSecret(file)
            } else {
                throw CurveKeyError("cannot create \(file.path): \(String(cString: strerror(errno)))")
            }
        }
        try publish(name: name, pair.publicKey)
        return pair
    }

    /// Makes `pair` the key pair of `name` (a pair derived from the root's secret, ClusterKeys):
    /// its secret file is written unless it already holds it, and its public key published.
    public func adopt(_ pair: CurveKeyPair, for name: String) throws {
        try Self.checkName(name)
        try createDirectories()
        let file = secretFile(name)
        if (try? readSecret(file)) != pair {
            let temporary = directory.appendingPathComponent(".\(name).secret.\(getpid()).\(UInt32.random(in: 0...UInt32.max))")
            try Self.write(Self.secretText(name: name, pair), to: temporary, mode: 0o600)
            if rename(temporary.path, file.path) != 0 {
                let reason = String(cString: strerror(errno))
                unlink(temporary.path)
                throw CurveKeyError("cannot write \(file.path): \(reason)")
            }
        }
        try publish(name: name, pair.publicKey)
    }

    /// The public key of the process `name`, from `keys/public/NAME.key`. Throws an error naming the
    /// file when it is missing or unreadable.
    public func publicKey(of name: String) throws -> CurveKey {
        try Self.checkName(name)
        let file = publicFile(name)
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw CurveKeyError("no CURVE public key for \(name): \(file.path) does not exist (the process writes it at its first start)")
        }
        guard let key = Self.field("public-key", in: data) else {
            throw CurveKeyError("\(file.path) holds no public-key = \"<40 Z85 characters>\" line")
        }
        return key
    }

    /// The public key `keys/public/NAME.key` holds, if any (nil rather than an error).
    public func publishedKey(of name: String) -> CurveKey? {
        FileManager.default.contents(atPath: publicFile(name).path).flatMap { Self.field("public-key", in: $0) }
    }

    /// Every public key in `keys/public/`, with the process name it belongs to.
    public func publicKeys() -> [CurveKey: String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: publicDirectory.path)) ?? []
        var keys: [CurveKey: String] = [:]
        for file in files where file.hasSuffix(".key") && !file.hasPrefix(".") {
            let name = String(file.dropLast(4))
            if let data = FileManager.default.contents(atPath: publicDirectory.appendingPathComponent(file).path),
               let key = Self.field("public-key", in: data) {
                keys[key] = name
            }
        }
        return keys
    }

    /// What changes when a file is added to, removed from or renamed into `keys/public/`: its
    /// modification time and size.
    public func publicDirectoryStamp() -> String? {
        var info = stat()
        guard stat(publicDirectory.path, &info) == 0 else { return nil }
        return "\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)/\(info.st_size)"
    }

    // MARK: Files

    private func createDirectories() throws {
        try FileManager.default.createDirectory(at: publicDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o755])
    }

    private func readSecret(_ file: URL) throws -> CurveKeyPair {
        // The secret is only ours: put right a file someone made readable by others.
        var info = stat()
        if stat(file.path, &info) == 0, info.st_mode & 0o077 != 0 { chmod(file.path, 0o600) }
        guard let data = FileManager.default.contents(atPath: file.path) else {
            throw CurveKeyError("cannot read \(file.path)")
        }
        guard let secret = Self.field("secret-key", in: data) else {
            throw CurveKeyError("\(file.path) holds no secret-key = \"<40 Z85 characters>\" line")
        }
        let pair = try CurveKeyPair(secretKey: secret)
        if let stated = Self.field("public-key", in: data), stated != pair.publicKey {
            throw CurveKeyError("\(file.path): its public-key is not the one its secret-key makes")
        }
        return pair
    }

    /// Writes `keys/public/NAME.key` unless it already says `key` (atomically: a reader never sees
    /// half a file).
    public func publish(name: String, _ key: CurveKey) throws {
        try Self.checkName(name)
        try createDirectories()
        let file = publicFile(name)
        if let data = FileManager.default.contents(atPath: file.path), Self.field("public-key", in: data) == key { return }
        let temporary = publicDirectory.appendingPathComponent(".\(name).key.\(getpid()).\(UInt32.random(in: 0...UInt32.max))")
        try Self.write(Self.publicText(name: name, key), to: temporary, mode: 0o644)
        if rename(temporary.path, file.path) != 0 {
            let reason = String(cString: strerror(errno))
            unlink(temporary.path)
            throw CurveKeyError("cannot write \(file.path): \(reason)")
        }
    }

    private static func write(_ text: String, to file: URL, mode: mode_t) throws {
        let fd = open(file.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw CurveKeyError("cannot create \(file.path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        fchmod(fd, mode)  // whatever the umask
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(fd) == 0 else {
            throw CurveKeyError("cannot write \(file.path): \(String(cString: strerror(errno)))")
        }
    }

    static func secretText(name: String, _ pair: CurveKeyPair) -> String {
        """
        #   ****  Nimbus CURVE key pair of \(name)  ****
        #   ZeroMQ CURVE **Secret** Certificate
        #   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.

        metadata
            name = "\(name)"
        curve
            public-key = "\(pair.publicKey.z85)"
            secret-key = "\(pair.secretKey.z85)"

        """
    }

    static func publicText(name: String, _ key: CurveKey) -> String {
        """
        #   ****  Nimbus CURVE public key of \(name)  ****
        #   ZeroMQ CURVE Public Certificate
        #   Exchange securely, or use a secure mechanism to verify the contents
        #   of this file after exchange. Store public certificates in your home
        #   directory, in the .curve subdirectory.

        metadata
            name = "\(name)"
        curve
            public-key = "\(key.z85)"

        """
    }

    /// The value of a `field = "…"` line (ZPL), as a key.
    static func field(_ name: String, in data: Data) -> CurveKey? {
        for line in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.hasPrefix("#"), trimmed.hasPrefix(name) else { continue }
            let rest = trimmed.dropFirst(name.count).trimmingCharacters(in: .whitespaces)
            guard rest.hasPrefix("=") else { continue }
            let value = rest.dropFirst().trimmingCharacters(in: CharacterSet(charactersIn: " \t\"'"))
            return CurveKey(z85: value)
        }
        return nil
    }

    /// A process name is a file name here: no paths, nothing hidden.
    private static func checkName(_ name: String) throws {
        guard !name.isEmpty, !name.hasPrefix("."), !name.contains("/"), !name.contains("\0") else {
            throw CurveKeyError("\"\(name)\" cannot name a key file")
        }
    }
}

public struct CurveKeyError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
