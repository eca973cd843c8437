import Foundation
import NimbusAuth

/// Who may use the supervisor's control socket to change the cluster (`nimbus:Scale`, `nimbus:Kill`,
/// `nimbus:Stop`) while IAM is enforced: the account root only, its signature checked against the
/// root credentials the supervisor itself holds. No IAM node is asked, so a cluster whose IAM node
/// is down can still be stopped. `nimbus:Status` and `nimbus:Health` stay open: they change nothing.
public final class ControlAuthenticator: Sendable {
    private let root: CredentialSource
    private let verifier: RequestVerifier
    private let clock: @Sendable () -> Int64

    public init(root: CredentialSource, skewSeconds: Int, clock: @escaping @Sendable () -> Int64 = CredentialSource.nowMillis) {
        self.root = root
        verifier = RequestVerifier(skewMillis: Int64(skewSeconds) * 1000)
        self.clock = clock
    }

    /// Throws the AWS-style error to answer with unless the account root signed `request`.
    public func check(_ request: InboundRequest) throws(WireError) {
        let action = request.header.action ?? ""
        let now = clock()
        let auth: RequestAuth
        switch verifier.precheck(request.header, nowMillis: now) {
        case .failure(let error): throw error
        case .success(let value): auth = value
        }
        guard let credentials = root.current() else {
            throw WireError(.serviceUnavailable, "the account root's credentials do not exist yet (the IAM node writes them when it first starts)")
        }
        guard auth.accessKeyId == credentials.accessKeyId else {
            throw WireError(.accessDenied, "only the account root may perform: \(action) (the control socket does not take access key \(auth.accessKeyId))")
        }
        let key = RequestSigning.signingKey(secret: credentials.secretAccessKey, day: RequestSigning.day(ofMillis: auth.timestamp),
                                            service: RequestSigning.service(of: action))
        let material = SigningMaterial(principal: credentials.principal, key: key, expiration: credentials.expiration)
        if case .failure(let error) = verifier.verify(request.header, body: request.body, auth: auth, material: material, nowMillis: now) {
            throw error
        }
    }
}
