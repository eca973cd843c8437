import Crypto
import Foundation
import NimbusAuth
import NimbusRuntime
import Synchronization

/// Who sent an AWS request, once its Signature V4 checks out, and how to sign the nimbus/1 request
/// made for it: with the caller's own access key and the Nimbus signing key the IAM node derives for
/// it. So the node that serves the request authorizes the caller by the same IAM evaluation as
/// inside; the edge never sees a secret.
public struct EdgeCaller: Sendable {
    public var principal: String
    public var accessKeyId: String
    public var sessionToken: String?
    /// The SigV4 scope's region and service.
    public var region: String
    public var service: String
}

/// Checks SDK signatures against keys the IAM node derives (`sts:GetAWSSigningKey`) and fetches the
/// Nimbus signing key for the forwarded request (`sts:GetSigningKey`); both cached until the day or
/// the temporary credentials end.
public final class EdgeAuthenticator: Sendable {
    let client: NimbusClient
    /// iam, as every node reaches it: signing keys for the forwarded requests, and decisions.
    let authority: RemoteAuthority
    let enforce: Bool
    let timeout: Duration
    private struct Cached<Value: Sendable>: Sendable {
        var value: Value
        var until: Int64
    }
    private let awsKeys = Mutex<[String: Cached<(principal: String, key: SymmetricKey)>]>([:])
    private let nimbusKeys = Mutex<[String: Cached<SigningKey>]>([:])
    /// Access keys iam did not know, for 5 s: a flood of made-up keys costs iam one look-up each per
    /// 5 s, not one per request.
    private let unknownKeys = Mutex<[String: Int64]>([:])

    public init(client: NimbusClient, enforce: Bool, timeout: Duration = .seconds(2)) {
        authority = RemoteAuthority(client: client)
        self.client = client
        self.enforce = enforce
        self.timeout = timeout
    }

    /// The caller of `request`, or the error its protocol reports. With IAM not enforced any key is
    /// taken and the caller is the account root (as local emulators do), signature unchecked.
    public func authenticate(_ request: EdgeRequest, account: String, nowSeconds: Int64 = Int64(Date().timeIntervalSince1970)) async throws -> EdgeCaller {
        let signature: SigV4Request
        do {
            signature = try SigV4Request.parse(headers: request.headers, query: request.queryParameters)
        } catch {
            if !enforce { return EdgeCaller(principal: PlatformPrincipals.root(account: account), accessKeyId: "", region: "", service: "") }
            throw Self.refusal(error)
        }
        guard enforce else {
            return EdgeCaller(principal: PlatformPrincipals.root(account: account), accessKeyId: signature.accessKeyId,
                              region: signature.region, service: signature.service)
        }
        do {
            try signature.checkTime(nowSeconds: nowSeconds)
            try signature.checkCoverage(headers: request.headers, rawBody: request.rawBody)
        } catch { throw Self.refusal(error) }
        let (principal, key) = try await awsKey(signature, nowMillis: nowSeconds * 1000)
        guard signature.verify(signingKey: key, method: request.method, rawPath: request.rawPath, rawQuery: request.rawQuery,
                               headers: request.headers, body: request.rawBody) else {
            throw EdgeError("SignatureDoesNotMatch",
                            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
                            status: 403)
        }
        return EdgeCaller(principal: principal, accessKeyId: signature.accessKeyId, sessionToken: signature.sessionToken,
                          region: signature.region, service: signature.service)
    }

    /// What signs the nimbus/1 request for `caller` to `service` (the action's prefix); nil when IAM
    /// is not enforced (sent unsigned, as nobody checks).
    public func callerKey(_ caller: EdgeCaller, service: String, nowMillis: Int64 = CredentialSource.nowMillis()) async throws -> CallerKey? {
        guard enforce else { return nil }
        let day = RequestSigning.day(ofMillis: nowMillis)
        let cacheKey = "\(caller.accessKeyId)|\(caller.sessionToken ?? "")|\(day)|\(service)"
        if let hit = nimbusKeys.withLock({ $0[cacheKey] }), hit.until > nowMillis {
            return CallerKey(accessKeyId: caller.accessKeyId, sessionToken: caller.sessionToken, key: hit.value)
        }
        // What every node asks iam to verify signatures with (RemoteAuthority), here to sign with.
        let material = try await Self.refusingKeys {
            try await self.authority.signingMaterial(accessKeyId: caller.accessKeyId, sessionToken: caller.sessionToken, day: day, service: service)
        }
        let key = material.key
        let until = min(material.expiration ?? Int64.max, (nowMillis / 86_400_000 + 1) * 86_400_000)
        nimbusKeys.withLock {
            if $0.count > 10_000 { $0.removeAll() }
            $0[cacheKey] = Cached(value: key, until: until)
        }
        return CallerKey(accessKeyId: caller.accessKeyId, sessionToken: caller.sessionToken, key: key)
    }

    private func awsKey(_ signature: SigV4Request, nowMillis: Int64) async throws -> (String, SymmetricKey) {
        let cacheKey = "\(signature.accessKeyId)|\(signature.sessionToken ?? "")|\(signature.date)|\(signature.region)|\(signature.service)"
        if let hit = awsKeys.withLock({ $0[cacheKey] }), hit.until > nowMillis { return hit.value }
        let keyID = "\(signature.accessKeyId)|\(signature.sessionToken ?? "")"
        if let until = unknownKeys.withLock({ $0[keyID] }), until > nowMillis {
            throw EdgeError("InvalidClientTokenId", "The security token included in the request is invalid.", status: 403)
        }
        var body: [String: String] = ["AccessKeyId": signature.accessKeyId, "Date": signature.date, "Region": signature.region,
                                      "Service": signature.service]
        body["SessionToken"] = signature.sessionToken
        let answer: (principal: String, key: Data, expiration: Int64?)
        do {
            answer = try await lookUp("sts:GetAWSSigningKey", body)
        } catch let error as EdgeError where error.code == "InvalidClientTokenId" {
            unknownKeys.withLock {
                if $0.count > 10_000 { $0.removeAll() }
                $0[keyID] = nowMillis + 5_000
            }
            throw error
        }
        let value = (answer.principal, SymmetricKey(data: answer.key))
        // A day's key is good for the day after too (a request signed just before midnight).
        let until = min(answer.expiration ?? Int64.max, nowMillis + 3_600_000)
        awsKeys.withLock {
            if $0.count > 10_000 { $0.removeAll() }
            $0[cacheKey] = Cached(value: value, until: until)
        }
        return value
    }

    private struct KeyAnswer: Decodable {
        var Principal: String
        var SigningKey: String
        var Expiration: Int64?
    }

    private func lookUp(_ action: String, _ body: [String: String]) async throws -> (principal: String, key: Data, expiration: Int64?) {
        let data = try await Self.refusingKeys {
            try await self.client.request(action, to: .iam, body: try JSONEncoder().encode(body), timeout: self.timeout, attempts: 2)
        }
        let answer = try JSONDecoder().decode(KeyAnswer.self, from: data)
        guard let key = Data(base64Encoded: answer.SigningKey) else {
            throw EdgeError("InternalFailure", "unreadable signing key from iam", status: 500, sender: false)
        }
        return (answer.Principal, key, answer.Expiration)
    }

    /// A key look-up at iam, its refusals in the caller's terms.
    private static func refusingKeys<T>(_ lookUp: () async throws -> T) async throws -> T {
        do {
            return try await lookUp()
        } catch let error as WireError {
            switch error.code {
            case "InvalidClientTokenId":
                throw EdgeError("InvalidClientTokenId", "The security token included in the request is invalid.", status: 403)
            case "ExpiredToken":
                throw EdgeError("ExpiredToken", "The security token included in the request is expired", status: 403)
            default:
                throw EdgeError("ServiceUnavailable", "Nimbus cannot check the request's signature: \(error.message)", status: 503, sender: false)
            }
        }
    }

    static func refusal(_ failure: SigV4Request.Failure) -> EdgeError {
        switch failure.kind {
        case .missing: return EdgeError("MissingAuthenticationToken", failure.message, status: 403)
        case .incomplete, .badDate: return EdgeError("IncompleteSignature", failure.message, status: 403)
        case .expired: return EdgeError("RequestExpired", failure.message, status: 403)
        case .mismatch: return EdgeError("SignatureDoesNotMatch", failure.message, status: 403)
        }
    }
}
