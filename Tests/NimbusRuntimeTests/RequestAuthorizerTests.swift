import Foundation
import IAMCore
import Logging
import NimbusAuth
import Synchronization
import Testing
@testable import NimbusRuntime

/// The authorizer against a fake IAM node that allows only resources whose ARN ends in "/orders".
@Suite struct RequestAuthorizerTests {
    final class OrdersOnly: Authority {
        let material: SigningMaterial
        let decisions = Atomic<Int>(0)
        init(material: SigningMaterial) { self.material = material }
        func signingMaterial(accessKeyId: String, sessionToken: String?, day: String, service: String) async throws -> SigningMaterial { material }
        func decide(principal: String, action: String, resource: String, resourcePolicy: String?) async throws -> Decision {
            decisions.add(1, ordering: .relaxed)
            return resource.hasSuffix("/orders") ? .allow : .implicitDeny
        }
        func policyVersion() async throws -> Int64 { 1 }
    }

    let credentials = Credentials(accessKeyId: "AKIATESTTESTTEST0001", secretAccessKey: "secret", principal: "arn:aws:iam::000000000000:user/t")

    func setUp() -> (RequestAuthorizer, OrdersOnly) {
        let now = CredentialSource.nowMillis()
        let key = RequestSigning.signingKey(secret: credentials.secretAccessKey, day: RequestSigning.day(ofMillis: now), service: "dynamodb")
        let authority = OrdersOnly(material: SigningMaterial(principal: credentials.principal, key: key, expiration: nil))
        let authorizer = RequestAuthorizer(settings: ClusterConfig().iam, account: "000000000000", authority: authority,
                                           logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        return (authorizer, authority)
    }

    func signed(_ id: String) -> InboundRequest {
        var envelope = Envelope.request(id: id, action: "dynamodb:BatchWriteItem", resource: nil, sender: NodeStamp(name: "t", incarnation: "i"),
                                        body: Data(#"{"RequestItems":{}}"#.utf8))
        RequestSigning.sign(&envelope, with: credentials, nowMillis: CredentialSource.nowMillis())
        return InboundRequest(route: [], envelope: envelope)
    }

    @Test func everyResourceMustBeAllowedAndTheSignatureIsCheckedOnce() async throws {
        let (authorizer, authority) = setUp()
        let orders = "arn:aws:dynamodb:us-east-1:000000000000:table/orders"
        let other = "arn:aws:dynamodb:us-east-1:000000000000:table/other"
        // Two resources, one signature: a second verification would have been taken for a replay.
        #expect(try await authorizer.authorize(signed("a"), resources: [(orders, nil), (orders + "-archive/orders", nil)]) == credentials.principal)
        await #expect { try await authorizer.authorize(signed("b"), resources: [(orders, nil), (other, nil)]) } throws: { error in
            guard let error = error as? WireError else { return false }
            return error.code == "AccessDenied" && error.message.hasSuffix("on resource: \(other)")
        }
        // The same request again is a replay, whatever its resources.
        let request = signed("c")
        _ = try await authorizer.authorize(request, resources: [(orders, nil)])
        await #expect { try await authorizer.authorize(request, resources: [(orders, nil)]) } throws: { error in
            (error as? WireError)?.code == "RequestReplayed"
        }
        // Decisions are cached per resource: orders, orders-archive, other.
        #expect(authority.decisions.load(ordering: .relaxed) == 3)
    }

    /// An IAM node that can be taken away: then every call times out, as over the wire.
    final class Flaky: Authority {
        let inner: OrdersOnly
        let down = Atomic<Bool>(false)
        init(_ inner: OrdersOnly) { self.inner = inner }
        func signingMaterial(accessKeyId: String, sessionToken: String?, day: String, service: String) async throws -> SigningMaterial {
            if down.load(ordering: .relaxed) { throw WireError(.requestTimeout, "no answer from iam") }
            return try await inner.signingMaterial(accessKeyId: accessKeyId, sessionToken: sessionToken, day: day, service: service)
        }
        func decide(principal: String, action: String, resource: String, resourcePolicy: String?) async throws -> Decision {
            if down.load(ordering: .relaxed) { throw WireError(.requestTimeout, "no answer from iam") }
            return try await inner.decide(principal: principal, action: action, resource: resource, resourcePolicy: resourcePolicy)
        }
        func policyVersion() async throws -> Int64 { 1 }
    }

    @Test func whileIAMIsUnreachableCachedAnswersServeAndAnythingElseIsRefusedAtOnceNamingIAM() async throws {
        let (_, orders) = setUp()
        let authority = Flaky(orders)
        let offset = Atomic<Int64>(0)
        let unreachable = Mutex<String?>(nil)
        let authorizer = RequestAuthorizer(settings: ClusterConfig().iam, account: "000000000000", authority: authority,
                                           logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() },
                                           clock: { CredentialSource.nowMillis() + offset.load(ordering: .relaxed) }, node: "table",
                                           authorityUnreachable: { unreachable.withLock { $0 } })
        let table = "arn:aws:dynamodb:us-east-1:000000000000:table/orders"
        _ = try await authorizer.authorize(signed("a"), resources: [(table, nil)])

        // iam goes away; the decision's 5 s have passed. Known callers go on, from the cache.
        authority.down.store(true, ordering: .relaxed)
        unreachable.withLock { $0 = "iam unreachable for 3 s" }
        offset.store(10_000, ordering: .relaxed)
        #expect(try await authorizer.authorize(signed("b"), resources: [(table, nil)]) == credentials.principal)
        #expect(authorizer.counters.staleAnswers.load(ordering: .relaxed) >= 1)

        // Nothing cached for this resource: refused at once, naming the node and the cause.
        await #expect { try await authorizer.authorize(signed("c"), resources: [(table + "-2/orders", nil)]) } throws: { error in
            (error as? WireError) == WireError(.serviceUnavailable, "table cannot authorize you: iam unreachable for 3 s")
        }
        // Not yet known to be unreachable, but it times out: the same answer, not a timeout.
        unreachable.withLock { $0 = nil }
        await #expect { try await authorizer.authorize(signed("d"), resources: [(table + "-3/orders", nil)]) } throws: { error in
            (error as? WireError) == WireError(.serviceUnavailable, "table cannot authorize you: iam does not answer")
        }
        // A policy change seen later drops what was cached: no stale answer outlives it.
        authorizer.observe(policyVersion: 2)
        unreachable.withLock { $0 = "iam unreachable for 9 s" }
        await #expect { try await authorizer.authorize(signed("e"), resources: [(table, nil)]) } throws: { error in
            (error as? WireError)?.code == "ServiceUnavailable"
        }
        #expect(authorizer.counters.unavailable.load(ordering: .relaxed) == 3)
    }
}
