import Crypto
import Foundation
import IAMCore
import NimbusAuth
import NimbusRuntime

/// The IAM node's credentials: the account root's long-term key (created at first start in
/// `<data>/credentials/root.json`, 0600, for the CLI, the supervisor and tests) and the master key
/// that seals temporary credentials (`<data>/iam/master.key`, 0600, never leaves this process).
struct CredentialAuthority: Sendable {
    let account: String
    let root: Credentials
    let tokens: SessionTokens

    init(dataDirectory: URL, account: String) throws {
        self.account = account
        let rootFile = CredentialSource.file(dataDirectory: dataDirectory, name: "root")
        if let data = try? Data(contentsOf: rootFile), let stored = try? JSONDecoder().decode(Credentials.self, from: data),
           stored.principal == PlatformPrincipals.root(account: account) {
            root = stored
        } else {
            root = Credentials.newAccountRoot(account: account)
            try CredentialSource.write(root, to: rootFile)
        }
        let keyFile = dataDirectory.appendingPathComponent("iam/master.key")
        if let key = try? Data(contentsOf: keyFile), key.count == 32 {
            tokens = SessionTokens(masterKey: key)
        } else {
            try FileManager.default.createDirectory(at: keyFile.deletingLastPathComponent(), withIntermediateDirectories: true)
            let key = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
            // Without the key on disk, every session token issued now would be refused after a restart.
            guard FileManager.default.createFile(atPath: keyFile.path, contents: key, attributes: [.posixPermissions: 0o600]) else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: keyFile.path])
            }
            tokens = SessionTokens(masterKey: key)
        }
    }

    /// The principal and secret behind an access key, or the AWS error for one we do not honour.
    func resolve(accessKeyId: String, sessionToken: String?, nowMillis: Int64) throws -> (principal: String, secret: String, expiration: Int64?) {
        if accessKeyId == root.accessKeyId {
            return (root.principal, root.secretAccessKey, nil)
        }
        guard let sessionToken else {
            throw WireError(.invalidClientTokenId, "The security token included in the request is invalid: unknown access key \(accessKeyId)")
        }
        do {
            let (session, secret) = try tokens.open(accessKeyId: accessKeyId, token: sessionToken, nowMillis: nowMillis)
            return (session.principal, secret, session.expiration)
        } catch .expired {
            throw WireError(.expiredToken, "The security token included in the request is expired")
        } catch {
            throw WireError(.invalidClientTokenId, "The security token included in the request is invalid")
        }
    }

    func material(accessKeyId: String, sessionToken: String?, day: String, service: String, nowMillis: Int64) throws -> SigningMaterial {
        let (principal, secret, expiration) = try resolve(accessKeyId: accessKeyId, sessionToken: sessionToken, nowMillis: nowMillis)
        return SigningMaterial(principal: principal, key: RequestSigning.signingKey(secret: secret, day: day, service: service), expiration: expiration)
    }
}

/// The IAM node is its own authority: it checks signatures and decides without a round trip.
struct LocalAuthority: Authority {
    let credentials: CredentialAuthority
    let engine: IAMEngine

    func signingMaterial(accessKeyId: String, sessionToken: String?, day: String, service: String) async throws -> SigningMaterial {
        try credentials.material(accessKeyId: accessKeyId, sessionToken: sessionToken, day: day, service: service,
                                 nowMillis: CredentialSource.nowMillis())
    }

    func decide(principal: String, action: String, resource: String, resourcePolicy: String?) async throws -> Decision {
        let policy = try resourcePolicy.map { text throws in try PolicyDocument(json: text) }
        return try await engine.read { reg in reg.authorize(AuthorizationRequest(principal: principal, action: action, resource: resource), resourcePolicy: policy) }
    }

    func policyVersion() async throws -> Int64 { await engine.policyVersion }
}

// MARK: The STS-like actions

struct AssumeRoleRequest: Decodable {
    var RoleArn: String
    var RoleSessionName: String
    /// Nimbus: the AWS service the session is for (the principal the trust policy must admit).
    /// In AWS the service itself calls AssumeRole; here the supervisor does it on the service's behalf.
    /// Absent (AWS's own shape, from the edge): the caller assumes the role for itself, as in AWS.
    var ServicePrincipal: String?
    var DurationSeconds: Int?
}

struct ServiceCredentialsRequest: Decodable {
    var ServicePrincipal: String
    var DurationSeconds: Int?
}

struct SigningKeyRequest: Decodable {
    var AccessKeyId: String
    var SessionToken: String?
    var Day: String
    var Service: String
}

struct AWSSigningKeyRequest: Decodable {
    var AccessKeyId: String
    var SessionToken: String?
    /// yyyymmdd of the request's credential scope.
    var Date: String
    var Region: String
    var Service: String
}

struct CredentialsShape: Encodable {
    var AccessKeyId: String
    var SecretAccessKey: String
    var SessionToken: String?
    var Expiration: Int64?
    var Principal: String

    init(_ c: Credentials) {
        AccessKeyId = c.accessKeyId
        SecretAccessKey = c.secretAccessKey
        SessionToken = c.sessionToken
        Expiration = c.expiration
        Principal = c.principal
    }
}
