import Crypto
import Foundation
import NimbusProtocol
import Synchronization

/// The signature errors, in AWS's spelling where AWS has one.
extension ErrorCode {
    /// A request without `auth` to an action that needs it.
    public static let missingAuthenticationToken: ErrorCode = "MissingAuthenticationToken"
    /// The access key id (or its session token) is not one the IAM node issued.
    public static let invalidClientTokenId: ErrorCode = "InvalidClientTokenId"
    /// The signature is not the one the credentials make for this request.
    public static let signatureDoesNotMatch: ErrorCode = "SignatureDoesNotMatch"
    /// The timestamp is outside the allowed skew.
    public static let requestExpired: ErrorCode = "RequestExpired"
    /// Temporary credentials past their expiry.
    public static let expiredToken: ErrorCode = "ExpiredToken"
    /// The same signed request (the same signature) seen before within the skew window.
    /// AWS has no replay check; the name is ours.
    public static let requestReplayed: ErrorCode = "RequestReplayed"
}

/// What a verifier needs to check one access key's signatures for one service and day: the key
/// derived from the secret (never the secret), whose it is, and until when it is good.
public struct SigningMaterial: Sendable {
    public var principal: String
    public var key: SigningKey
    /// Milliseconds since the epoch; nil for long-term credentials.
    public var expiration: Int64?

    public init(principal: String, key: SigningKey, expiration: Int64?) {
        self.principal = principal
        self.key = key
        self.expiration = expiration
    }
}

/// Signature verification as pure logic over an injected clock: skew, expiry, signature, replay.
/// Looking up signing material (a cache in front of the IAM node) is the caller's; this type only
/// decides.
public final class RequestVerifier: Sendable {
    public let skewMillis: Int64
    private let replay: Mutex<ReplayGuard>

    public init(skewMillis: Int64 = 300_000) {
        self.skewMillis = skewMillis
        replay = Mutex(ReplayGuard(windowMillis: skewMillis))
    }

    /// First checks, before any lookup: signed at all, and within the skew window.
    public func precheck(_ header: EnvelopeHeader, nowMillis: Int64) -> Result<RequestAuth, WireError> {
        guard let auth = header.auth else {
            return .failure(WireError(.missingAuthenticationToken, "Request is missing Authentication Token"))
        }
        if abs(nowMillis - auth.timestamp) > skewMillis {
            return .failure(WireError(.requestExpired,
                "Request has expired: signed at \(auth.timestamp) ms, now \(nowMillis) ms (allowed skew \(skewMillis / 1000) s)"))
        }
        return .success(auth)
    }

    /// Checks a signed request against its material: expiry, signature, then replay (last, so a
    /// forged copy cannot burn a genuine request's nonce). Returns the principal.
    public func verify(_ header: EnvelopeHeader, body: Data, auth: RequestAuth, material: SigningMaterial,
                       nowMillis: Int64) -> Result<String, WireError> {
        if let expiration = material.expiration, nowMillis >= expiration {
            return .failure(WireError(.expiredToken, "The security token included in the request is expired"))
        }
        guard let fingerprint = RequestSigning.verifiedFingerprint(signature: auth.signature, key: material.key, header: header, auth: auth, body: body) else {
            return .failure(WireError(.signatureDoesNotMatch,
                "The request signature we calculated does not match the signature you provided. Check your Secret Access Key and signing method."))
        }
        let fresh = replay.withLock { $0.insert(fingerprint, timestamp: auth.timestamp, nowMillis: nowMillis) }
        guard fresh else {
            return .failure(WireError(.requestReplayed, "A request with id \(header.id) and this signature was already received"))
        }
        return .success(material.principal)
    }

    public var rememberedNonces: Int { replay.withLock { $0.count } }
}

/// Remembers every accepted request until its timestamp leaves the skew window; older requests are
/// refused by the skew check anyway, so nothing older need be kept. A request is remembered by its
/// signature's first 128 bits, not by (access key, id, timestamp): the signature covers all three
/// (and the rest of the request), an exact copy carries the same one, and 16 bytes hash and compare
/// without touching strings, so a node at 15,000 requests/s keeps 4.5 million of them in about
/// 100 MB instead of nearly 1 GB (about 200 bytes each, measured). Two different requests share 128 bits with a
/// chance of about n²/2¹²⁹. Buckets by timestamp make forgetting a dictionary drop, not a scan.
struct ReplayGuard {
    let windowMillis: Int64
    let bucketMillis: Int64
    private var buckets: [Int64: Set<SignatureFingerprint>] = [:]
    private(set) var count = 0

    init(windowMillis: Int64) {
        self.windowMillis = windowMillis
        bucketMillis = max(1_000, windowMillis / 10)
    }

    /// False when the request was seen before (a replay).
    mutating func insert(_ fingerprint: SignatureFingerprint, timestamp: Int64, nowMillis: Int64) -> Bool {
        forget(before: nowMillis - windowMillis)
        let bucket = timestamp / bucketMillis
        if buckets[bucket] == nil {
            // Sized like the newest bucket so far: a busy node does not rehash its way up.
            var fresh = Set<SignatureFingerprint>()
            fresh.reserveCapacity(buckets.max { $0.key < $1.key }?.value.count ?? 0)
            buckets[bucket] = fresh
        }
        let inserted = buckets[bucket]!.insert(fingerprint).inserted
        if inserted { count += 1 }
        return inserted
    }

    private mutating func forget(before oldest: Int64) {
        let oldestBucket = oldest / bucketMillis
        // A bucket is dropped only when all of it is older than the window.
        for (bucket, nonces) in buckets where bucket < oldestBucket {
            count -= nonces.count
            buckets[bucket] = nil
        }
    }
}

/// A small TTL cache with an injected clock, and a version: when the version the owner learns
/// changes (a policy or attachment changed at the IAM node), everything cached is dropped.
/// Used for authorization decisions and signing material.
// Inlinable so that the authorizer's caches (another module) are specialized for their key and
// value types: unspecialized, every look-up instantiated generic metadata at run time.
public struct ExpiringCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    public let ttlMillis: Int64
    public let capacity: Int
    @usableFromInline var entries: [Key: (value: Value, expires: Int64)] = [:]
    public private(set) var version: Int64 = -1

    public init(ttlMillis: Int64, capacity: Int = 100_000) {
        self.ttlMillis = ttlMillis
        self.capacity = capacity
    }

    public var count: Int { entries.count }

    @inlinable
    public func value(_ key: Key, nowMillis: Int64) -> Value? {
        guard let entry = entries[key], entry.expires > nowMillis else { return nil }
        return entry.value
    }

    /// The value whatever its age, until it is evicted or dropped by a version change: for when the
    /// source of fresh values is unreachable.
    public func staleValue(_ key: Key) -> Value? { entries[key]?.value }

    /// Stores `value` until `now + ttl` (or `expires`, when sooner).
    @inlinable
    public mutating func store(_ key: Key, _ value: Value, nowMillis: Int64, expires: Int64? = nil) {
        if entries.count >= capacity { evictExpired(nowMillis) }
        // Still full of live entries: start over rather than grow without bound.
        if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        entries[key] = (value, min(nowMillis + ttlMillis, expires ?? Int64.max))
    }

    /// Learns the current version; a change drops every entry. Returns whether it changed.
    @discardableResult
    public mutating func observe(version newVersion: Int64) -> Bool {
        guard newVersion != version else { return false }
        version = newVersion
        entries.removeAll(keepingCapacity: true)
        return true
    }

    public mutating func removeAll() { entries.removeAll(keepingCapacity: true) }

    @usableFromInline
    mutating func evictExpired(_ now: Int64) {
        entries = entries.filter { $0.value.expires > now }
    }
}
