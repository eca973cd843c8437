import Crypto
import Foundation

/// Temporary credentials without a session table: the session token carries the access key id,
/// the principal and the expiry, sealed with an HMAC under the IAM node's master key, and the
/// secret is derived from the same key. So any IAM node incarnation holding the master key can
/// check a token and re-derive its secret, and a restart of the IAM node invalidates nothing.
/// (What AWS STS does with encrypted tokens, minus the encryption: the token's content, the
/// principal and expiry, is not a secret.)
public struct SessionTokens: Sendable {
    private let master: SymmetricKey

    public init(masterKey: Data) { master = SymmetricKey(data: masterKey) }

    public struct Session: Sendable, Equatable {
        public var accessKeyId: String
        public var principal: String
        public var expiration: Int64
    }

    public enum TokenError: Error, Equatable { case invalid, expired }

    /// New temporary credentials for `principal`, good until `expiration` (ms since epoch).
    public func issue(principal: String, expiration: Int64) -> Credentials {
        let accessKeyId = "ASIA" + Self.randomID(16)
        let payload = "v1|\(accessKeyId)|\(principal)|\(expiration)"
        let token = Data(payload.utf8).base64EncodedString() + "." + mac(payload)
        return Credentials(accessKeyId: accessKeyId, secretAccessKey: secret(payload), sessionToken: token,
                           expiration: expiration, principal: principal)
    }

    /// The session a token stands for, with the secret its credentials sign with. Checks the seal
    /// and that the token belongs to `accessKeyId`; expiry is `TokenError.expired`.
    public func open(accessKeyId: String, token: String, nowMillis: Int64) throws(TokenError) -> (Session, secret: String) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let raw = Data(base64Encoded: String(parts[0])),
              let payload = String(data: raw, encoding: .utf8),
              RequestSigning.constantTimeEquals(mac(payload), String(parts[1])) else { throw .invalid }
        let fields = payload.split(separator: "|", omittingEmptySubsequences: false)
        guard fields.count == 4, fields[0] == "v1", fields[1] == accessKeyId, let expiration = Int64(fields[3]) else { throw .invalid }
        let session = Session(accessKeyId: accessKeyId, principal: String(fields[2]), expiration: expiration)
        if nowMillis >= expiration { throw .expired }
        return (session, secret(payload))
    }

    private func mac(_ payload: String) -> String {
        RequestSigning.hex(HMAC<SHA256>.authenticationCode(for: Array(("token|" + payload).utf8), using: master))
    }

    private func secret(_ payload: String) -> String {
        Data(HMAC<SHA256>.authenticationCode(for: Array(("secret|" + payload).utf8), using: master)).base64EncodedString()
    }

    /// AWS-looking key ids: upper-case letters and digits 2-7.
    public static func randomID(_ count: Int) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var generator = SystemRandomNumberGenerator()
        return String((0..<count).map { _ in alphabet.randomElement(using: &generator)! })
    }

    /// A new random secret (base64 of 30 bytes: 40 characters, like AWS's).
    public static func randomSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        return Data((0..<30).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64EncodedString()
    }
}
