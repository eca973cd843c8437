import Crypto
import Foundation
import NimbusAuth
import NimbusProtocol
import Synchronization

/// Where a process's credentials come from: a JSON file (`Credentials`' shape, the AWS CLI's
/// credential_process output) that the supervisor writes before the process starts and rewrites
/// before the credentials expire; or fixed credentials (tests, tools). The file is looked at again
/// at most once a second, when its modification time changes, so a refresh needs no restart and
/// costs the hot path nothing.
public final class CredentialSource: Sendable {
    private let file: URL?
    private let state: Mutex<State>

    private struct State {
        var credentials: Credentials?
        var modified: Date?
        var lastCheck: ContinuousClock.Instant?
        /// Derived signing keys by day and service: one HMAC chain per day and service, not per request.
        var keys: [KeyScope: SigningKey] = [:]
    }

    private struct KeyScope: Hashable {
        var day: Int64
        var service: String
    }

    public init(file: URL) {
        self.file = file
        state = Mutex(State())
    }

    public init(fixed: Credentials) {
        file = nil
        state = Mutex(State(credentials: fixed))
    }

    /// The data directory this source's file is in, when it is `<data>/credentials/NAME.json`.
    var dataDirectory: URL? {
        guard let folder = file?.deletingLastPathComponent(), folder.lastPathComponent == "credentials" else { return nil }
        return folder.deletingLastPathComponent()
    }

    /// The credentials file a process named `name` reads: `<data>/credentials/<name>.json`.
    public static func file(dataDirectory: URL, name: String) -> URL {
        dataDirectory.appendingPathComponent("credentials").appendingPathComponent("\(name).json")
    }

    /// The current credentials, reading the file when it changed; nil while there is no file yet.
    public func current() -> Credentials? {
        guard let file else { return state.withLock { $0.credentials } }
        let now = ContinuousClock.now
        // Every signed request asks: one lock when the file was looked at within the second.
        let recent = state.withLock { s -> Credentials? in
            if let last = s.lastCheck, now - last < .seconds(1), let credentials = s.credentials { return credentials }
            s.lastCheck = now
            return nil
        }
        if let recent { return recent }
        if let modified = (try? FileManager.default.attributesOfItem(atPath: file.path))?[.modificationDate] as? Date,
           modified != state.withLock({ $0.modified }),
           let data = try? Data(contentsOf: file), let fresh = try? JSONDecoder().decode(Credentials.self, from: data) {
            state.withLock { s in
                if s.credentials?.accessKeyId != fresh.accessKeyId { s.keys = [:] }
                s.credentials = fresh
                s.modified = modified
            }
        }
        return state.withLock { $0.credentials }
    }

    /// Waits up to `timeout` for credentials to appear (a process may start a moment before the
    /// supervisor has written its file).
    public func wait(timeout: Duration) async -> Credentials? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let credentials = current() { return credentials }
            if ContinuousClock.now >= deadline { return nil }
            state.withLock { $0.lastCheck = nil }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Signs `envelope` with the current credentials; false when there are none.
    @discardableResult
    public func sign(_ envelope: inout Envelope, nowMillis: Int64 = CredentialSource.nowMillis()) -> Bool {
        guard let credentials = current() else { return false }
        let service = RequestSigning.service(of: envelope.header.action ?? "")
        let cacheKey = KeyScope(day: nowMillis / 86_400_000, service: service)
        let key = state.withLock { s -> SigningKey in
            if let key = s.keys[cacheKey] { return key }
            let key = RequestSigning.signingKey(secret: credentials.secretAccessKey, day: RequestSigning.day(ofMillis: nowMillis), service: service)
            if s.keys.count > 64 { s.keys = [:] }
            s.keys[cacheKey] = key
            return key
        }
        RequestSigning.sign(&envelope, with: credentials, key: key, nowMillis: nowMillis)
        return true
    }

    public static func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Writes credentials for a process: 0600 in a 0700 folder, atomically (write, then rename), so
    /// a reader never sees half a file.
    public static func write(_ credentials: Credentials, to file: URL) throws {
        let folder = file.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let temporary = folder.appendingPathComponent(".\(file.lastPathComponent).\(getpid()).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: try encoder.encode(credentials), attributes: [.posixPermissions: 0o600]) else {
            throw WireError(.internalFailure, "cannot write \(temporary.path)")
        }
        guard rename(temporary.path, file.path) == 0 else {
            throw WireError(.internalFailure, "cannot write \(file.path): \(String(cString: strerror(errno)))")
        }
    }
}
