import Foundation
import NimbusAuth
import Testing
@testable import NimbusRuntime

@Suite struct ControlAuthenticatorTests {
    let root = Credentials(accessKeyId: "AKIAROOTROOTROOT0001", secretAccessKey: "root-secret", principal: "arn:aws:iam::000000000000:root")

    func request(_ action: String = NimbusAction.kill, id: String = UUID().uuidString, signedBy credentials: Credentials?,
                 at millis: Int64 = CredentialSource.nowMillis()) -> InboundRequest {
        var envelope = Envelope.request(id: id, action: action, resource: nil, sender: NodeStamp(name: "cli", incarnation: "i"),
                                        body: Data(#"{"name":"queue"}"#.utf8))
        if let credentials { RequestSigning.sign(&envelope, with: credentials, nowMillis: millis) }
        return InboundRequest(route: [], envelope: envelope)
    }

    func code(_ check: () throws -> Void) -> String? {
        do { try check(); return nil } catch { return (error as? WireError)?.code ?? "\(error)" }
    }

    @Test func onlyTheRootsOwnSignatureIsTaken() throws {
        let control = ControlAuthenticator(root: CredentialSource(fixed: root), skewSeconds: 300)
        let signed = request(signedBy: root)
        #expect(code { try control.check(signed) } == nil)
        #expect(code { try control.check(signed) } == "RequestReplayed")
        #expect(code { try control.check(request(signedBy: nil)) } == "MissingAuthenticationToken")
        let role = Credentials(accessKeyId: "ASIAROLEROLEROLE0001", secretAccessKey: "s", sessionToken: "t", principal: "arn:aws:sts::000000000000:assumed-role/R/x")
        #expect(code { try control.check(request(signedBy: role)) } == "AccessDenied")
        var forger = root
        forger.secretAccessKey = "guessed"
        #expect(code { try control.check(request(signedBy: forger)) } == "SignatureDoesNotMatch")
        #expect(code { try control.check(request(signedBy: root, at: CredentialSource.nowMillis() - 600_000)) } == "RequestExpired")
        // A body changed after signing no longer matches.
        var tampered = request(signedBy: root)
        tampered = InboundRequest(route: [], envelope: Envelope(header: tampered.header, body: Data(#"{"name":"iam"}"#.utf8)))
        #expect(code { try control.check(tampered) } == "SignatureDoesNotMatch")
    }

    @Test func withoutRootCredentialsNothingIsTaken() {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-no-root-\(UUID().uuidString).json")
        let control = ControlAuthenticator(root: CredentialSource(file: missing), skewSeconds: 300)
        #expect(code { try control.check(request(signedBy: root)) } == "ServiceUnavailable")
    }
}
