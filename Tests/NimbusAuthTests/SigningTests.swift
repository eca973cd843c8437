import Crypto
import Foundation
import IAMCore
import Testing
@testable import NimbusAuth
import NimbusProtocol

/// Signing and verification as pure functions with a hand-moved clock.
@Suite struct SigningTests {
    let credentials = Credentials(accessKeyId: "AKIATESTTESTTESTTEST", secretAccessKey: "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",
                                  principal: "arn:aws:iam::000000000000:root")
    let now: Int64 = 1_795_705_841_000

    func request(id: String = "r-1", body: String = #"{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/000000000000/POC-Queue","MessageBody":"hi"}"#) -> Envelope {
        Envelope.request(id: id, action: "sqs:SendMessage", resource: nil, sender: NodeStamp(name: "gateway", incarnation: "abc"), body: Data(body.utf8))
    }

    func material(_ c: Credentials, day: String? = nil, service: String = "sqs", expiration: Int64? = nil) -> SigningMaterial {
        SigningMaterial(principal: c.principal, key: RequestSigning.signingKey(secret: c.secretAccessKey, day: day ?? RequestSigning.day(ofMillis: now), service: service),
                        expiration: expiration)
    }

    func verify(_ verifier: RequestVerifier, _ e: Envelope, material m: SigningMaterial? = nil, at time: Int64? = nil) -> Result<String, WireError> {
        let at = time ?? now
        switch verifier.precheck(e.header, nowMillis: at) {
        case .failure(let error): return .failure(error)
        case .success(let auth): return verifier.verify(e.header, body: e.body, auth: auth, material: m ?? material(credentials), nowMillis: at)
        }
    }

    func code(_ r: Result<String, WireError>) -> String? {
        if case .failure(let e) = r { return e.code }
        return nil
    }

    @Test func canonicalFormIsLengthPrefixedAndCoversEveryField() {
        var e = request()
        e.header.resource = "arn:aws:sqs:us-east-1:000000000000:POC-Queue"
        let auth = RequestAuth(accessKeyId: "AKIA1", sessionToken: "tok", timestamp: 42, signature: "")
        e.body = Data(#"{"a":"é"}"#.utf8)
        let text = String(decoding: RequestSigning.canonicalForm(header: e.header, auth: auth, body: e.body), as: UTF8.self)
        #expect(text == "19:NIMBUS1-HMAC-SHA256\n2:42\n5:AKIA1\n3:tok\n15:sqs:SendMessage\n44:arn:aws:sqs:us-east-1:000000000000:POC-Queue\n3:r-1\n7:gateway\n3:abc\n10:{\"a\":\"é\"}\n")
        // A newline moved from one field into the next makes a different canonical form.
        var shifted = e
        shifted.header.id = "r-1\n7:gateway"
        shifted.header.sender = NodeStamp(name: "", incarnation: "abc")
        #expect(RequestSigning.canonicalForm(header: shifted.header, auth: auth, body: e.body) != RequestSigning.canonicalForm(header: e.header, auth: auth, body: e.body))
    }

    @Test func theSignatureIsTheHMACOfTheCanonicalForm() {
        // The MAC reads the body in place and copies a pre-keyed HMAC state; it must equal a plain
        // HMAC over the whole canonical form (what another implementation computes).
        var e = request()
        RequestSigning.sign(&e, with: credentials, nowMillis: now)
        let auth = e.header.auth!
        let key = RequestSigning.signingKey(secret: credentials.secretAccessKey, day: RequestSigning.day(ofMillis: now), service: "sqs")
        let plain = HMAC<SHA256>.authenticationCode(for: RequestSigning.canonicalForm(header: e.header, auth: auth, body: e.body), using: key.symmetric)
        #expect(auth.signature == RequestSigning.hex(plain))
        // The same key signs twice alike: the shared keyed state is not consumed by a use.
        var again = request()
        RequestSigning.sign(&again, with: credentials, key: key, nowMillis: now)
        RequestSigning.sign(&again, with: credentials, key: key, nowMillis: now)
        #expect(again.header.auth?.signature == auth.signature)
    }

    @Test func dayIsTheUTCDateOfTheTimestamp() {
        #expect(RequestSigning.day(ofMillis: 0) == "19700101")
        #expect(RequestSigning.day(ofMillis: 951_782_400_000) == "20000229")
        #expect(RequestSigning.day(ofMillis: 1_795_705_841_000) == "20261126")
        #expect(RequestSigning.day(ofMillis: 1_704_067_199_999) == "20231231")
    }

    @Test func aSignedRequestVerifiesAndNamesItsPrincipal() throws {
        var e = request()
        RequestSigning.sign(&e, with: credentials, nowMillis: now)
        #expect(e.header.auth?.signature.count == 64)
        #expect(try verify(RequestVerifier(), e).get() == credentials.principal)
    }

    @Test func anyTamperingBreaksTheSignature() {
        var signed = request()
        RequestSigning.sign(&signed, with: credentials, nowMillis: now)
        let tampers: [(inout Envelope) -> Void] = [
            { $0.body = Data(#"{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/000000000000/Other","MessageBody":"hi"}"#.utf8) },
            { $0.header.action = "sqs:PurgeQueue" },
            { $0.header.id = "r-2" },
            { $0.header.resource = "arn:aws:sqs:us-east-1:000000000000:Other" },
            { $0.header.sender = NodeStamp(name: "ingest-worker-1", incarnation: "abc") },
            { $0.header.auth!.timestamp += 1 },
            { $0.header.auth!.sessionToken = "x" },
            { $0.header.auth!.signature = String($0.header.auth!.signature.reversed()) },
        ]
        for tamper in tampers {
            var e = signed
            tamper(&e)
            #expect(code(verify(RequestVerifier(), e)) == "SignatureDoesNotMatch")
        }
        // The wrong secret, or a key for another service or day, fails the same way.
        #expect(code(verify(RequestVerifier(), signed, material: material(Credentials(accessKeyId: credentials.accessKeyId, secretAccessKey: "other", principal: "x")))) == "SignatureDoesNotMatch")
        #expect(code(verify(RequestVerifier(), signed, material: material(credentials, service: "sns"))) == "SignatureDoesNotMatch")
        #expect(code(verify(RequestVerifier(), signed, material: material(credentials, day: "20000101"))) == "SignatureDoesNotMatch")
    }

    @Test func timestampsOutsideTheSkewWindowAreExpired() {
        let verifier = RequestVerifier(skewMillis: 300_000)
        var old = request()
        RequestSigning.sign(&old, with: credentials, nowMillis: now - 300_001)
        #expect(code(verify(verifier, old)) == "RequestExpired")
        var future = request(id: "r-2")
        RequestSigning.sign(&future, with: credentials, nowMillis: now + 300_001)
        #expect(code(verify(verifier, future)) == "RequestExpired")
        var edge = request(id: "r-3")
        RequestSigning.sign(&edge, with: credentials, nowMillis: now - 300_000)
        #expect(code(verify(verifier, edge, material: material(credentials, day: RequestSigning.day(ofMillis: now - 300_000)))) == nil)
    }

    @Test func unsignedRequestsAreRefused() {
        #expect(code(verify(RequestVerifier(), request())) == "MissingAuthenticationToken")
    }

    @Test func aReplayWithinTheWindowIsRefusedButARetryWithAFreshTimestampIsNot() {
        let verifier = RequestVerifier(skewMillis: 300_000)
        var e = request()
        RequestSigning.sign(&e, with: credentials, nowMillis: now)
        #expect(code(verify(verifier, e)) == nil)
        #expect(code(verify(verifier, e, at: now + 1_000)) == "RequestReplayed")
        // Lazy Pirate's retry: same id, signed again a moment later.
        var retry = request()
        RequestSigning.sign(&retry, with: credentials, nowMillis: now + 2_000)
        #expect(code(verify(verifier, retry, at: now + 2_000)) == nil)
        // A forged copy does not burn the nonce of a genuine request.
        var genuine = request(id: "r-9")
        RequestSigning.sign(&genuine, with: credentials, nowMillis: now)
        var forged = genuine
        forged.header.auth!.signature = String(repeating: "0", count: 64)
        #expect(code(verify(verifier, forged)) == "SignatureDoesNotMatch")
        #expect(code(verify(verifier, genuine)) == nil)
        // Once the window has passed, the nonces are forgotten (the skew check refuses the copy).
        #expect(verifier.rememberedNonces == 3)
        #expect(code(verify(verifier, e, at: now + 400_000)) == "RequestExpired")
        var later = request(id: "r-10")
        RequestSigning.sign(&later, with: credentials, nowMillis: now + 400_000)
        #expect(code(verify(verifier, later, material: material(credentials, day: RequestSigning.day(ofMillis: now + 400_000)), at: now + 400_000)) == nil)
        #expect(verifier.rememberedNonces == 1)
    }

    @Test func aReplayIsKnownByItsSignatureSoTheSameIdWithAnotherBodyIsAnotherRequest() {
        let verifier = RequestVerifier(skewMillis: 300_000)
        var first = request(id: "r-5")
        RequestSigning.sign(&first, with: credentials, nowMillis: now)
        var other = request(id: "r-5", body: #"{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/000000000000/POC-Queue","MessageBody":"bye"}"#)
        RequestSigning.sign(&other, with: credentials, nowMillis: now)
        #expect(first.header.auth!.signature != other.header.auth!.signature)
        #expect(code(verify(verifier, first)) == nil)
        #expect(code(verify(verifier, other)) == nil)
        #expect(code(verify(verifier, other)) == "RequestReplayed")
        #expect(verifier.rememberedNonces == 2)
    }

    @Test func expiredCredentialsAreExpiredToken() {
        var e = request()
        RequestSigning.sign(&e, with: credentials, nowMillis: now)
        #expect(code(verify(RequestVerifier(), e, material: material(credentials, expiration: now))) == "ExpiredToken")
        #expect(code(verify(RequestVerifier(), e, material: material(credentials, expiration: now + 1))) == nil)
    }

    @Test func sessionTokensSealPrincipalAndExpiry() throws {
        let tokens = SessionTokens(masterKey: Data(repeating: 7, count: 32))
        let issued = tokens.issue(principal: "arn:aws:sts::000000000000:assumed-role/R/s", expiration: now + 60_000)
        #expect(issued.accessKeyId.hasPrefix("ASIA"))
        let (session, secret) = try tokens.open(accessKeyId: issued.accessKeyId, token: issued.sessionToken!, nowMillis: now)
        #expect(session.principal == issued.principal)
        #expect(secret == issued.secretAccessKey)
        #expect(throws: SessionTokens.TokenError.expired) { try tokens.open(accessKeyId: issued.accessKeyId, token: issued.sessionToken!, nowMillis: now + 60_000) }
        #expect(throws: SessionTokens.TokenError.invalid) { try tokens.open(accessKeyId: "ASIAOTHER", token: issued.sessionToken!, nowMillis: now) }
        // Another master key (another cluster) does not honour it; nor does an edited token.
        #expect(throws: SessionTokens.TokenError.invalid) {
            try SessionTokens(masterKey: Data(repeating: 8, count: 32)).open(accessKeyId: issued.accessKeyId, token: issued.sessionToken!, nowMillis: now)
        }
        let forgedPayload = Data("v1|\(issued.accessKeyId)|arn:aws:iam::000000000000:root|\(now + 60_000)".utf8).base64EncodedString()
        let forged = forgedPayload + "." + (issued.sessionToken!.split(separator: ".").last.map(String.init) ?? "")
        #expect(throws: SessionTokens.TokenError.invalid) { try tokens.open(accessKeyId: issued.accessKeyId, token: forged, nowMillis: now) }
        #expect(throws: SessionTokens.TokenError.invalid) { try tokens.open(accessKeyId: issued.accessKeyId, token: "garbage", nowMillis: now) }
    }
}

@Suite struct DecisionCacheTests {
    @Test func entriesLiveForTheTTL() {
        var cache = ExpiringCache<String, Decision>(ttlMillis: 5_000)
        cache.store("p|sqs:SendMessage|q", .allow, nowMillis: 1_000)
        #expect(cache.value("p|sqs:SendMessage|q", nowMillis: 5_999) == .allow)
        #expect(cache.value("p|sqs:SendMessage|q", nowMillis: 6_000) == nil)
        #expect(cache.value("other", nowMillis: 1_000) == nil)
    }

    @Test func anEarlierExpiryWins() {
        var cache = ExpiringCache<String, Decision>(ttlMillis: 5_000)
        cache.store("k", .implicitDeny, nowMillis: 0, expires: 2_000)
        #expect(cache.value("k", nowMillis: 1_999) == .implicitDeny)
        #expect(cache.value("k", nowMillis: 2_000) == nil)
    }

    @Test func aNewPolicyVersionDropsEverything() {
        var cache = ExpiringCache<String, Decision>(ttlMillis: 60_000)
        let first = cache.observe(version: 7)
        #expect(first)
        cache.store("k", .allow, nowMillis: 0)
        let same = cache.observe(version: 7)
        #expect(!same)
        #expect(cache.value("k", nowMillis: 1) == .allow)
        let moved = cache.observe(version: 8)
        #expect(moved)
        #expect(cache.value("k", nowMillis: 1) == nil)
    }

    @Test func capacityIsBounded() {
        var cache = ExpiringCache<String, Decision>(ttlMillis: 1_000, capacity: 3)
        for i in 0..<3 { cache.store("k\(i)", .allow, nowMillis: 0) }
        cache.store("k3", .allow, nowMillis: 2_000)  // the first three have expired: evicted
        #expect(cache.count == 1)
        for i in 4..<7 { cache.store("k\(i)", .allow, nowMillis: 2_000) }
        #expect(cache.count <= 3)
    }
}

@Suite struct PlatformPrincipalTests {
    let queue = "arn:aws:sqs:us-east-1:000000000000:POC-Queue"
    let queuePolicy = try! PolicyDocument(json: #"{"Version":"2012-10-17","Statement":[{"Sid":"__owner_statement","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"SQS:*","Resource":"arn:aws:sqs:us-east-1:000000000000:POC-Queue"},{"Sid":"Nope","Effect":"Deny","Principal":"*","Action":"sqs:PurgeQueue","Resource":"*"}]}"#)

    @Test func rootMayDoAnythingButAnExplicitDeny() {
        let root = "arn:aws:iam::000000000000:root"
        #expect(PlatformPrincipals.localDecision(principal: root, account: "000000000000", action: "sqs:SendMessage", resource: queue, resourcePolicy: queuePolicy) == .allow)
        #expect(PlatformPrincipals.localDecision(principal: root, account: "000000000000", action: "iam:CreateRole", resource: "*", resourcePolicy: nil) == .allow)
        #expect(PlatformPrincipals.localDecision(principal: root, account: "000000000000", action: "sqs:PurgeQueue", resource: queue, resourcePolicy: queuePolicy) == .explicitDeny(sid: "Nope"))
    }

    @Test func servicePrincipalsGetOnlyTheirServiceLinkedPermissions() {
        let lambda = "lambda.amazonaws.com"
        #expect(PlatformPrincipals.localDecision(principal: lambda, account: "000000000000", action: "dynamodb:UpdateItem",
                                                 resource: "arn:aws:dynamodb:us-east-1:000000000000:table/nimbus-stream-leases", resourcePolicy: nil) == .allow)
        #expect(PlatformPrincipals.localDecision(principal: lambda, account: "000000000000", action: "dynamodb:PutItem",
                                                 resource: "arn:aws:dynamodb:us-east-1:000000000000:table/orders", resourcePolicy: nil) == .implicitDeny)
        #expect(PlatformPrincipals.localDecision(principal: "sns.amazonaws.com", account: "000000000000", action: "sqs:SendMessage",
                                                 resource: queue, resourcePolicy: queuePolicy) == .implicitDeny)
        #expect(PlatformPrincipals.localDecision(principal: "arn:aws:sts::000000000000:assumed-role/R/s", account: "000000000000",
                                                 action: "sqs:SendMessage", resource: queue, resourcePolicy: nil) == nil)
    }
}

@Suite struct JSONFieldsTests {
    @Test func readsTopLevelStringsOnly() {
        let body = Data(#"{"Entries":[{"QueueUrl":"nested"}],"MessageBody":"a \"QueueUrl\": x","QueueUrl":"https://q/000000000000/POC-Queue","N":1.5e3,"B":true}"#.utf8)
        #expect(JSONFields.topLevelString("QueueUrl", in: body) == "https://q/000000000000/POC-Queue")
        #expect(JSONFields.topLevelString("Missing", in: body) == nil)
        #expect(JSONFields.topLevelString("N", in: body) == nil)
        // Simple escapes are read here; \u escapes fall back to JSONDecoder. Both agree with it.
        for raw in [#"{"QueueUrl":"a\/b"}"#, #"{"QueueUrl":"q\"\\\/\n\t"}"#, #"{"QueueUrl":"\u00e9\/x"}"#, #"{"QueueUrl":"bad \x"}"#] {
            let expected = (try? JSONDecoder().decode([String: String].self, from: Data(raw.utf8)))?["QueueUrl"]
            #expect(JSONFields.topLevelString("QueueUrl", in: Data(raw.utf8)) == expected, "\(raw)")
        }
        #expect(JSONFields.topLevelString("QueueUrl", in: Data(#"{"QueueUrl":"a\/b"}"#.utf8)) == "a/b")
        // A key given twice is JSONDecoder's call (whatever it decides, the service decides the same).
        #expect(JSONFields.topLevelString("QueueUrl", in: Data(#"{"QueueUrl":"a","QueueUrl":"b"}"#.utf8)) != "a" ||
                (try? JSONDecoder().decode([String: String].self, from: Data(#"{"QueueUrl":"a","QueueUrl":"b"}"#.utf8)))?["QueueUrl"] == "a")
        #expect(JSONFields.topLevelString("QueueUrl", in: Data("not json".utf8)) == nil)
        #expect(JSONFields.topLevelString("QueueUrl", in: Data()) == nil)
    }

    @Test func readsTheNamesOfATopLevelObject() {
        let body = Data(#"{"ReturnConsumedCapacity":"NONE","RequestItems":{"orders":[{"PutRequest":{"Item":{"RequestItems":{"S":"x"}}}}],"audit":[]},"x":{"RequestItems":{"deep":1}}}"#.utf8)
        #expect(JSONFields.topLevelObjectKeys("RequestItems", in: body) == ["orders", "audit"])
        #expect(JSONFields.topLevelObjectKeys("ReturnConsumedCapacity", in: body) == nil)
        #expect(JSONFields.topLevelObjectKeys("Missing", in: body) == nil)
        #expect(JSONFields.topLevelObjectKeys("RequestItems", in: Data(#"{"RequestItems":{}}"#.utf8)) == [])
        // An escaped name goes to JSONDecoder, which reads it as the service will.
        #expect(JSONFields.topLevelObjectKeys("RequestItems", in: Data(#"{"RequestItems":{"orders":[]}}"#.utf8)) == ["orders"])
        #expect(JSONFields.topLevelObjectKeys("RequestItems", in: Data(#"{"RequestItems":{"orders":[}"#.utf8)) == nil)
        #expect(JSONFields.topLevelObjectKeys("RequestItems", in: Data("[]".utf8)) == nil)
    }
}
