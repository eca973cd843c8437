import Crypto
import Foundation
import NimbusProtocol
import Synchronization

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

    /// A new long-term key of the account root (what the IAM node, or `up` on the iam host of a
    /// cluster spread over hosts, writes to `credentials/root.json` when there is none).
    public static func newAccountRoot(account: String) -> Credentials {
        Credentials(accessKeyId: "AKIA" + SessionTokens.randomID(16), secretAccessKey: SessionTokens.randomSecret(),
                    principal: PlatformPrincipals.root(account: account))
    }

    enum CodingKeys: String, CodingKey {
        case accessKeyId = "AccessKeyId", secretAccessKey = "SecretAccessKey", sessionToken = "SessionToken"
        case expiration = "Expiration", principal = "Principal"
    }
}

/// A derived signing key with HMAC's key schedule already run (RFC 2104: the SHA-256 states after
/// the inner and outer padded keys): each request copies those states instead of hashing the padded
/// key again, two SHA-256 blocks saved per request on both ends. Written over `SHA256` directly
/// because swift-crypto's `HMAC.update` is generic over `DataProtocol` and, unspecialized across
/// the module boundary, costs more than the hashing.
public struct SigningKey: @unchecked Sendable {
    public let symmetric: SymmetricKey
    // Never mutated: a user copies them, and swift-crypto's digest state is copy-on-write, so
    // concurrent users each get their own state on their first update.
    private let inner: SHA256
    private let outer: SHA256

    public init(_ symmetric: SymmetricKey) {
        self.symmetric = symmetric
        var block = [UInt8](repeating: 0, count: 64)
        symmetric.withUnsafeBytes { key in
            if key.count > 64 {
                SHA256.hash(data: key).withUnsafeBytes { digest in for i in 0..<digest.count { block[i] = digest[i] } }
            } else {
                for i in 0..<key.count { block[i] = key[i] }
            }
        }
        var inner = SHA256(), outer = SHA256()
        inner.update(data: block.map { $0 ^ 0x36 })
        outer.update(data: block.map { $0 ^ 0x5C })
        self.inner = inner
        self.outer = outer
    }

    /// HMAC-SHA256 of the concatenation of `parts`: 32 bytes to `body`.
    func authenticationCode<R>(_ parts: UnsafeRawBufferPointer..., body: (UnsafeRawBufferPointer) -> R) -> R {
        var hash = inner
        for part in parts { hash.update(bufferPointer: part) }
        let innerDigest = hash.finalize()
        var mac = outer
        innerDigest.withUnsafeBytes { mac.update(bufferPointer: $0) }
        return mac.finalize().withUnsafeBytes(body)
    }
}

/// Request signing in the spirit of Signature V4, over a Nimbus envelope instead of an HTTP request:
///
///     signing key  = HMAC(HMAC("NIMBUS1" + secret, yyyymmdd), service)      (service = action prefix)
///     signature    = hex HMAC-SHA256(signing key, canonical form)
///
/// The day and service in the key let a verifier hold a key that is good for one service and one
/// day only (what the IAM node hands out), never the secret itself. The body is part of the
/// canonical form itself rather than through a separate SHA-256 of it (SigV4's payload hash): one
/// pass over the bytes instead of two.
public enum RequestSigning {
    public static let algorithm = "NIMBUS1-HMAC-SHA256"

    /// The canonical form: every field that decides what the request does or who sends it, the body
    /// last, each written as `<byte length>:<value>\n` so no two different requests share a
    /// canonical form (a newline inside an id cannot shift a field into the next one).
    public static func canonicalForm(header: EnvelopeHeader, auth: RequestAuth, body: Data) -> [UInt8] {
        var out = canonicalPrefix(header: header, auth: auth, bodyLength: body.count)
        out.append(contentsOf: body)
        out.append(0x0A)
        return out
    }

    /// The canonical form up to the body's bytes (which the MAC then reads in place).
    static func canonicalPrefix(header: EnvelopeHeader, auth: RequestAuth, bodyLength: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        field(algorithm, &out)
        decimal(UInt64(digits(auth.timestamp.magnitude) + (auth.timestamp < 0 ? 1 : 0)), &out)
        out.append(0x3A)
        if auth.timestamp < 0 { out.append(0x2D) }
        decimal(auth.timestamp.magnitude, &out)
        out.append(0x0A)
        field(auth.accessKeyId, &out)
        field(auth.sessionToken ?? "", &out)
        field(header.action ?? "", &out)
        field(header.resource ?? "", &out)
        field(header.id, &out)
        field(header.sender?.name ?? "", &out)
        field(header.sender?.incarnation ?? "", &out)
        decimal(UInt64(bodyLength), &out)
        out.append(0x3A)
        return out
    }

    private static func field(_ value: String, _ out: inout [UInt8]) {
        var value = value
        value.withUTF8 { bytes in
            decimal(UInt64(bytes.count), &out)
            out.append(0x3A)
            out.append(contentsOf: bytes)
        }
        out.append(0x0A)
    }

    private static func digits(_ value: UInt64) -> Int {
        var count = 1, rest = value
        while rest >= 10 { rest /= 10; count += 1 }
        return count
    }

    private static func decimal(_ value: UInt64, _ out: inout [UInt8]) {
        if value < 10 { return out.append(0x30 + UInt8(value)) }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var rest = value, at = buffer.count
            while rest > 0 {
                let (quotient, digit) = rest.quotientAndRemainder(dividingBy: 10)
                at -= 1
                buffer[at] = 0x30 + UInt8(digit)
                rest = quotient
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[at...]))
        }
    }

    /// The MAC of a request's canonical form, reading the body where it lies: 32 bytes to `use`.
    static func authenticationCode<R>(key: SigningKey, header: EnvelopeHeader, auth: RequestAuth, body: Data,
                                      _ use: (UnsafeRawBufferPointer) -> R) -> R {
        let prefix = canonicalPrefix(header: header, auth: auth, bodyLength: body.count)
        return prefix.withUnsafeBytes { head in
            body.withUnsafeBytes { payload in
                withUnsafeBytes(of: UInt8(0x0A)) { newline in key.authenticationCode(head, payload, newline, body: use) }
            }
        }
    }

    /// The service a request is signed for: the action's prefix (`sqs` for `sqs:SendMessage`).
    public static func service(of action: String) -> String {
        let utf8 = action.utf8
        return String(Substring(utf8[..<(utf8.firstIndex(of: 0x3A) ?? utf8.endIndex)]))
    }

    private static let lastDay = Mutex<(day: Int, text: String)>((-1, ""))

    /// `yyyymmdd` (UTC) of a timestamp in milliseconds: the day the signing key is scoped to.
    public static func day(ofMillis millis: Int64) -> String {
        let days = Int(millis / 86_400_000)
        // Every request asks; nearly all of them for today.
        if let text = lastDay.withLock({ $0.day == days ? $0.text : nil }) { return text }
        let text = UTCTime.compactDate(days: days)
        lastDay.withLock { $0 = (days, text) }
        return text
    }

    public static func signingKey(secret: String, day: String, service: String) -> SigningKey {
        let kDate = HMAC<SHA256>.authenticationCode(for: Array(day.utf8), using: SymmetricKey(data: Array(("NIMBUS1" + secret).utf8)))
        let kService = HMAC<SHA256>.authenticationCode(for: Array(service.utf8), using: SymmetricKey(data: Data(kDate)))
        return SigningKey(SymmetricKey(data: Data(kService)))
    }

    /// Signs `envelope` in place: fills `auth` for the given time.
    public static func sign(_ envelope: inout Envelope, with credentials: Credentials, key: SigningKey, nowMillis: Int64) {
        var auth = RequestAuth(accessKeyId: credentials.accessKeyId, sessionToken: credentials.sessionToken, timestamp: nowMillis, signature: "")
        auth.signature = authenticationCode(key: key, header: envelope.header, auth: auth, body: envelope.body) { Hex.encode($0) }
        envelope.header.auth = auth
    }

    /// Convenience for callers without a key cache (tests, tools).
    public static func sign(_ envelope: inout Envelope, with credentials: Credentials, nowMillis: Int64) {
        let key = signingKey(secret: credentials.secretAccessKey, day: day(ofMillis: nowMillis),
                             service: service(of: envelope.header.action ?? ""))
        sign(&envelope, with: credentials, key: key, nowMillis: nowMillis)
    }

    /// When `signature` (hex) is the one `key` makes for this request, its first 128 bits (what the
    /// replay guard remembers); nil when it is not. Compared in time independent of where they
    /// differ, without building the expected hex.
    static func verifiedFingerprint(signature: String, key: SigningKey, header: EnvelopeHeader, auth: RequestAuth,
                                    body: Data) -> SignatureFingerprint? {
        var signature = signature
        return signature.withUTF8 { given in
            guard given.count == 64 else { return nil }
            return authenticationCode(key: key, header: header, auth: auth, body: body) { bytes in
                var diff: UInt8 = 0
                for i in 0..<32 {
                    diff |= given[2 * i] ^ Hex.digits[Int(bytes[i] >> 4)]
                    diff |= given[2 * i + 1] ^ Hex.digits[Int(bytes[i] & 0x0F)]
                }
                return diff == 0 ? SignatureFingerprint(bytes) : nil
            }
        }
    }

    public static func hex(_ mac: HashedAuthenticationCode<SHA256>) -> String { mac.withUnsafeBytes { Hex.encode($0) } }

    /// Compares two signatures in time independent of where they differ.
    public static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }
}

/// The first 128 bits of a request's MAC. They are uniformly random, so hashing one of its words is
/// as good as hashing both.
struct SignatureFingerprint: Hashable {
    let high: UInt64
    let low: UInt64

    init(_ mac: UnsafeRawBufferPointer) {
        high = mac.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
        low = mac.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
    }

    func hash(into hasher: inout Hasher) { hasher.combine(low) }
}

// SymmetricKey is an immutable value (its bytes are never mutated after init); swift-crypto 3.x
// just does not declare it Sendable yet.
extension SymmetricKey: @retroactive @unchecked Sendable {}

/// AWS's own Signature Version 4 key: what the AWS-compatible endpoint checks an SDK's signature with.
public enum AWSSigningKey {
    /// kSigning: the HMAC chain over date, region, service and "aws4_request" from "AWS4" + secret.
    public static func derive(secret: String, date: String, region: String, service: String) -> SymmetricKey {
        var key = SymmetricKey(data: Array(("AWS4" + secret).utf8))
        for part in [date, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        return key
    }
}
