import Crypto
import Foundation
import NimbusProtocol

/// A caller's credentials: what signs its requests. Long-term (the account root: no session token,
/// no expiry) or temporary (an assumed-role or service session: session token and expiry).
public struct Credentials: Codable, Sendable, Equatable {
    public var accessKeyId: String
    public var secretAccessKey: String
    public var sessionToken: String?
    /// Milliseconds since the epoch; nil for long-term credentials.
    public var expiration: Int64?
    /// Who these credentials act as (informational on the client side; the verifier learns the
    /// principal from the IAM node, never from the caller).
    public var principal: String

    public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil, expiration: Int64? = nil, principal: String) {
        self.accessKeyId = accessKeyId
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
        self.principal = principal
    }

    enum CodingKeys: String, CodingKey {
        case accessKeyId = "AccessKeyId", secretAccessKey = "SecretAccessKey", sessionToken = "SessionToken"
        case expiration = "Expiration", principal = "Principal"
    }
}

/// Request signing in the spirit of Signature V4, over a Nimbus envelope instead of an HTTP request:
///
///     signing key  = HMAC(HMAC("NIMBUS1" + secret, yyyymmdd), service)      (service = action prefix)
///     signature    = hex HMAC-SHA256(signing key, canonical form)
///
/// The day and service in the key let a verifier hold a key that is good for one service and one
/// day only (what the IAM node hands out), never the secret itself.
public enum RequestSigning {
    public static let algorithm = "NIMBUS1-HMAC-SHA256"

    /// The canonical form: every field that decides what the request does or who sends it, each
    /// written as `<byte length>:<value>\n` so no two different requests share a canonical form
    /// (a newline inside an id cannot shift a field into the next one).
    public static func canonicalForm(header: EnvelopeHeader, auth: RequestAuth, bodyDigestHex: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(320)
        func field(_ value: String) {
            out.append(contentsOf: String(value.utf8.count).utf8)
            out.append(0x3A)
            out.append(contentsOf: value.utf8)
            out.append(0x0A)
        }
        field(algorithm)
        field(String(auth.timestamp))
        field(auth.accessKeyId)
        field(auth.sessionToken ?? "")
        field(header.action ?? "")
        field(header.resource ?? "")
        field(header.id)
        field(header.sender?.name ?? "")
        field(header.sender?.incarnation ?? "")
        field(bodyDigestHex)
        return out
    }

    /// The service a request is signed for: the action's prefix (`sqs` for `sqs:SendMessage`).
    public static func service(of action: String) -> String {
        String(action.prefix { $0 != ":" })
    }

    /// `yyyymmdd` (UTC) of a timestamp in milliseconds: the day the signing key is scoped to.
    public static func day(ofMillis millis: Int64) -> String {
        let days = Int(millis / 86_400_000)
        // Civil-from-days (Howard Hinnant): no DateFormatter on the hot path.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func pad(_ n: Int, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return pad(y, 4) + pad(m, 2) + pad(d, 2)
    }

    public static func signingKey(secret: String, day: String, service: String) -> SymmetricKey {
        let kDate = HMAC<SHA256>.authenticationCode(for: Array(day.utf8), using: SymmetricKey(data: Array(("NIMBUS1" + secret).utf8)))
        let kService = HMAC<SHA256>.authenticationCode(for: Array(service.utf8), using: SymmetricKey(data: Data(kDate)))
        return SymmetricKey(data: Data(kService))
    }

    public static func bodyDigestHex(_ body: Data) -> String { hex(SHA256.hash(data: body)) }

    public static func signature(key: SymmetricKey, canonical: [UInt8]) -> String {
        hex(HMAC<SHA256>.authenticationCode(for: canonical, using: key))
    }

    /// Signs `envelope` in place: fills `auth` for the given time.
    public static func sign(_ envelope: inout Envelope, with credentials: Credentials, key: SymmetricKey, nowMillis: Int64) {
        var auth = RequestAuth(accessKeyId: credentials.accessKeyId, sessionToken: credentials.sessionToken, timestamp: nowMillis, signature: "")
        let canonical = canonicalForm(header: envelope.header, auth: auth, bodyDigestHex: bodyDigestHex(envelope.body))
        auth.signature = signature(key: key, canonical: canonical)
        envelope.header.auth = auth
    }

    /// Convenience for callers without a key cache (tests, tools).
    public static func sign(_ envelope: inout Envelope, with credentials: Credentials, nowMillis: Int64) {
        let key = signingKey(secret: credentials.secretAccessKey, day: day(ofMillis: nowMillis),
                             service: service(of: envelope.header.action ?? ""))
        sign(&envelope, with: credentials, key: key, nowMillis: nowMillis)
    }

    static let hexDigits = Array("0123456789abcdef".utf8)

    public static func hex<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in bytes {
            out.append(hexDigits[Int(b >> 4)])
            out.append(hexDigits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func hex<D: Digest>(_ digest: D) -> String { digest.withUnsafeBytes { hex($0) } }
    public static func hex(_ mac: HashedAuthenticationCode<SHA256>) -> String { mac.withUnsafeBytes { hex($0) } }

    /// Compares two signatures in time independent of where they differ.
    public static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }
}

// SymmetricKey is an immutable value (its bytes are never mutated after init); swift-crypto 3.x
// just does not declare it Sendable yet.
extension SymmetricKey: @retroactive @unchecked Sendable {}
