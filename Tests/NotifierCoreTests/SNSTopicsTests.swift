import Foundation
import Testing
@testable import NotifierCore
import NimbusProtocol

/// A deterministic entropy source, so tokens and ids are reproducible.
final class Counter: @unchecked Sendable {
    var value: UInt64 = 0x1234_5678
    func next() -> UInt64 { value = value &* 6364136223846793005 &+ 1442695040888963407; return value }
}

@Suite struct SNSTopicsTests {
    static let t0: Double = 1_800_000_000
    static let topicArn = "arn:aws:sns:us-east-1:000000000000:POC-Topic"

    func makeTopics() -> SNSTopics {
        let counter = Counter()
        return SNSTopics(region: "us-east-1", account: "000000000000", publicBaseURL: "http://127.0.0.1:8080/",
                         entropy: { counter.next() })
    }

    func withTopic() throws -> SNSTopics {
        var sns = makeTopics()
        var changes: [NotifierChange] = []
        _ = try sns.createTopic(name: "POC-Topic", now: Self.t0, changes: &changes)
        return sns
    }

    func expectError(_ code: String, _ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            try body()
            Issue.record("expected \(code), got success", sourceLocation: sourceLocation)
        } catch let error as SNSError {
            #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
        }
    }

    func deliveries(_ changes: [NotifierChange]) -> [Delivery] {
        changes.compactMap { if case .putDelivery(let d) = $0 { return d } else { return nil } }
    }

    /// Subscribes an email endpoint and confirms it with the token from its confirmation.
    func confirmedEmail(_ sns: inout SNSTopics, _ address: String) throws -> String {
        var changes: [NotifierChange] = []
        _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "email", endpoint: address, now: Self.t0, changes: &changes)
        let token = try #require(sns.subscriptions.values.first { $0.endpoint == address }?.token)
        return try sns.confirmSubscription(topicArn: Self.topicArn, token: token, now: Self.t0 + 1, changes: &changes)
    }

    // MARK: Topics

    @Test func createTopicIsIdempotentByName() throws {
        var sns = makeTopics()
        var changes: [NotifierChange] = []
        let arn = try sns.createTopic(name: "POC-Topic", now: Self.t0, changes: &changes)
        #expect(arn == Self.topicArn)
        #expect(changes.count == 1)
        changes = []
        #expect(try sns.createTopic(name: "POC-Topic", now: Self.t0 + 5, changes: &changes) == arn)
        #expect(changes.isEmpty)
        #expect(sns.topics.count == 1)
        // The same name with different attributes is refused, as AWS does.
        expectError("InvalidParameter") { _ = try sns.createTopic(name: "POC-Topic", attributes: ["DisplayName": "x"], now: Self.t0, changes: &changes) }
    }

    @Test func topicNamesFollowAWSRules() {
        var sns = makeTopics()
        var changes: [NotifierChange] = []
        for bad in ["", "has space", "dot.name", String(repeating: "a", count: 257), "ünicode", "t.fifo"] {
            expectError("InvalidParameter") { _ = try sns.createTopic(name: bad, now: Self.t0, changes: &changes) }
        }
        #expect(throws: Never.self) { _ = try sns.createTopic(name: String(repeating: "a", count: 256), now: Self.t0, changes: &changes) }
        #expect(throws: Never.self) { _ = try sns.createTopic(name: "A-b_9", now: Self.t0, changes: &changes) }
        expectError("InvalidParameter") { _ = try sns.createTopic(name: "x", attributes: ["Bogus": "1"], now: Self.t0, changes: &changes) }
    }

    @Test func deleteTopicRemovesItsSubscriptionsAndOutbox() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "email", endpoint: "a@example.com", now: Self.t0, changes: &changes)
        _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: "arn:aws:sqs:us-east-1:000000000000:q1",
                              now: Self.t0, changes: &changes)
        #expect(sns.subscriptions.count == 2)
        #expect(sns.outbox.count == 1)  // the email confirmation
        changes = []
        try sns.deleteTopic(Self.topicArn, changes: &changes)
        #expect(sns.topics.isEmpty && sns.subscriptions.isEmpty && sns.outbox.isEmpty)
        #expect(changes.contains(.deleteTopic(arn: Self.topicArn)))
        #expect(changes.filter { if case .deleteSubscription = $0 { true } else { false } }.count == 2)
        // Deleting again (or a topic never made) succeeds, as in AWS; a malformed ARN does not.
        try sns.deleteTopic(Self.topicArn, changes: &changes)
        expectError("InvalidParameter") { try sns.deleteTopic("not-an-arn", changes: &changes) }
    }

    @Test func listTopicsPagesByHundred() throws {
        var sns = makeTopics()
        var changes: [NotifierChange] = []
        for i in 0..<150 { _ = try sns.createTopic(name: String(format: "t%03d", i), now: Self.t0, changes: &changes) }
        let first = try sns.listTopics(nextToken: nil)
        #expect(first.arns.count == 100)
        let second = try sns.listTopics(nextToken: try #require(first.nextToken))
        #expect(second.arns.count == 50 && second.nextToken == nil)
        #expect(Set(first.arns + second.arns).count == 150)
        expectError("InvalidParameter") { _ = try sns.listTopics(nextToken: "%%%") }
    }

    @Test func topicAttributesCountSubscriptions() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "email", endpoint: "a@example.com", now: Self.t0, changes: &changes)
        _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: "arn:aws:sqs:us-east-1:000000000000:q1",
                              now: Self.t0, changes: &changes)
        try sns.setTopicAttributes(Self.topicArn, name: "DisplayName", value: "Orders", changes: &changes)
        let attributes = try sns.getTopicAttributes(Self.topicArn)
        #expect(attributes["TopicArn"] == Self.topicArn)
        #expect(attributes["DisplayName"] == "Orders")
        #expect(attributes["Owner"] == "000000000000")
        #expect(attributes["SubscriptionsConfirmed"] == "1")
        #expect(attributes["SubscriptionsPending"] == "1")
        // Without a policy of its own the topic shows SNS's default: its account may use it.
        let policyText = try #require(attributes["Policy"])
        let policy = try #require(try JSONSerialization.jsonObject(with: Data(policyText.utf8)) as? [String: Any])
        #expect(policy["Id"] as? String == "__default_policy_ID")
        let statement = try #require((policy["Statement"] as? [[String: Any]])?.first)
        #expect(statement["Resource"] as? String == Self.topicArn)
        #expect((statement["Action"] as? [String])?.contains("SNS:Publish") == true)
        #expect(statement["Condition"] as? NSDictionary == ["StringEquals": ["AWS:SourceOwner": "000000000000"]] as NSDictionary)
        #expect(sns.policiesByTopicArn[Self.topicArn] == nil)  // shown, not enforced as a resource policy
        // EffectiveDeliveryPolicy: SNS's format, Nimbus's http retries.
        let deliveryText = try #require(attributes["EffectiveDeliveryPolicy"])
        let delivery = try #require(try JSONSerialization.jsonObject(with: Data(deliveryText.utf8)) as? [String: Any])
        let retry = try #require((delivery["http"] as? [String: Any])?["defaultHealthyRetryPolicy"] as? [String: Any])
        #expect(retry["numRetries"] as? Int == RetryPolicy.forProtocol(.http).maxAttempts - 1)
        #expect(retry["minDelayTarget"] as? Int == 1 && retry["maxDelayTarget"] as? Int == 20)
        expectError("InvalidParameter") { try sns.setTopicAttributes(Self.topicArn, name: "Nope", value: "1", changes: &changes) }
        expectError("InvalidParameter") { try sns.setTopicAttributes(Self.topicArn, name: "Policy", value: "[1]", changes: &changes) }
        expectError("NotFound") { _ = try sns.getTopicAttributes("arn:aws:sns:us-east-1:000000000000:missing") }
        try sns.setTopicAttributes(Self.topicArn, name: "Policy", value: #"{"Version":"2012-10-17"}"#, changes: &changes)
        #expect(try sns.getTopicAttributes(Self.topicArn)["Policy"] == #"{"Version":"2012-10-17"}"#)
        try sns.setTopicAttributes(Self.topicArn, name: "Policy", value: "", changes: &changes)
        #expect(try sns.getTopicAttributes(Self.topicArn)["Policy"] == sns.defaultPolicy(topicArn: Self.topicArn))
    }

    // MARK: Subscriptions

    @Test func emailSubscriptionStartsPendingWithAConfirmation() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        let answer = try sns.subscribe(topicArn: Self.topicArn, protocol: "email", endpoint: "me@example.com", now: Self.t0, changes: &changes)
        #expect(answer == "pending confirmation")
        let subscription = try #require(sns.subscriptions.values.first)
        #expect(!subscription.confirmed)
        let token = try #require(subscription.token)
        #expect(token.count == 64 && token.allSatisfy(\.isHexDigit))
        #expect(subscription.tokenExpiresAt == Self.t0 + 2 * 86_400)
        let confirmation = try #require(deliveries(changes).first)
        #expect(confirmation.kind == .subscriptionConfirmation)
        #expect(confirmation.endpoint == "me@example.com")
        #expect(confirmation.subject == "AWS Notification - Subscription Confirmation")
        let url = "http://127.0.0.1:8080/sns/confirm?TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A000000000000%3APOC-Topic&Token=\(token)"
        #expect(confirmation.body.contains("You have chosen to subscribe to the topic"))
        #expect(confirmation.body.contains(url))
        #expect(confirmation.body.contains("Token: \(token)"))
        // ReturnSubscriptionArn shows the real ARN even while pending; List* shows PendingConfirmation.
        changes = []
        let arn = try sns.subscribe(topicArn: Self.topicArn, protocol: "email", endpoint: "me@example.com", returnSubscriptionArn: true,
                                    now: Self.t0 + 10, changes: &changes)
        #expect(arn == subscription.arn && arn.hasPrefix(Self.topicArn + ":"))
        #expect(sns.subscriptions.count == 1)
        #expect(deliveries(changes).count == 1)  // the confirmation goes out again ...
        #expect(sns.subscriptions[arn]?.token == token)  // ... with the same, still valid token
        #expect(try sns.listSubscriptions(nextToken: nil).subscriptions.map(\.SubscriptionArn) == ["PendingConfirmation"])
    }

    @Test func jsonProtocolsGetTheSubscriptionConfirmationDocument() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "http", endpoint: "http://127.0.0.1:9/hook", now: Self.t0, changes: &changes)
        let body = try #require(deliveries(changes).first?.body)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        #expect(json["Type"] as? String == "SubscriptionConfirmation")
        #expect(json["TopicArn"] as? String == Self.topicArn)
        #expect((json["Token"] as? String)?.count == 64)
        #expect((json["SubscribeURL"] as? String)?.hasPrefix("http://127.0.0.1:8080/sns/confirm?TopicArn=") == true)
        #expect(json["SignatureVersion"] as? String == "1")
    }

    @Test func sqsSubscriptionsAreConfirmedAtOnce() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        let endpoint = "arn:aws:sqs:us-east-1:000000000000:orders-copy"
        let arn = try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: endpoint, now: Self.t0, changes: &changes)
        #expect(arn.hasPrefix(Self.topicArn + ":"))
        #expect(sns.subscriptions[arn]?.confirmed == true)
        #expect(deliveries(changes).isEmpty)
        // Subscribing again answers the same subscription.
        #expect(try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: endpoint, now: Self.t0, changes: &changes) == arn)
        #expect(try sns.listSubscriptionsByTopic(Self.topicArn, nextToken: nil).subscriptions.map(\.SubscriptionArn) == [arn])
    }

    @Test func subscribeValidatesProtocolAndEndpoint() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        let cases: [(String, String?)] = [
            ("carrier-pigeon", "a@example.com"), ("email", nil), ("email", ""), ("email", "not-an-address"), ("email", "a@b@c"),
            ("email", "a b@example.com"), ("email-json", "@example.com"), ("http", "https://example.com/"), ("http", "ftp://x"),
            ("https", "nope"), ("sqs", "arn:aws:sns:us-east-1:000000000000:q"), ("sqs", "arn:aws:sqs:us-east-1:123:q"),
            ("sqs", "https://sqs.us-east-1.amazonaws.com/000000000000/q"),
        ]
        for (p, endpoint) in cases {
            expectError("InvalidParameter") {
                _ = try sns.subscribe(topicArn: Self.topicArn, protocol: p, endpoint: endpoint, now: Self.t0, changes: &changes)
            }
        }
        expectError("NotFound") {
            _ = try sns.subscribe(topicArn: "arn:aws:sns:us-east-1:000000000000:missing", protocol: "email", endpoint: "a@example.com",
                                  now: Self.t0, changes: &changes)
        }
        expectError("InvalidParameter") {
            _ = try sns.subscribe(topicArn: "garbage", protocol: "email", endpoint: "a@example.com", now: Self.t0, changes: &changes)
        }
        #expect(sns.subscriptions.isEmpty)
        for (p, endpoint) in [("email", "a.b+c@mail.example.com"), ("email-json", "x@localhost"), ("https", "https://example.com/sns")] {
            #expect(throws: Never.self) { _ = try sns.subscribe(topicArn: Self.topicArn, protocol: p, endpoint: endpoint, now: Self.t0, changes: &changes) }
        }
    }

    @Test func confirmSubscriptionChecksTheTokenAndItsAge() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "email", endpoint: "me@example.com", now: Self.t0, changes: &changes)
        let subscription = try #require(sns.subscriptions.values.first)
        let token = try #require(subscription.token)
        expectError("InvalidParameter") { _ = try sns.confirmSubscription(topicArn: Self.topicArn, token: "bad", now: Self.t0, changes: &changes) }
        expectError("InvalidParameter") { _ = try sns.confirmSubscription(topicArn: Self.topicArn, token: "", now: Self.t0, changes: &changes) }
        expectError("NotFound") {
            _ = try sns.confirmSubscription(topicArn: "arn:aws:sns:us-east-1:000000000000:other", token: token, now: Self.t0, changes: &changes)
        }
        // One second past the two days: expired, still pending.
        expectError("InvalidParameter") {
            _ = try sns.confirmSubscription(topicArn: Self.topicArn, token: token, now: Self.t0 + 2 * 86_400 + 1, changes: &changes)
        }
        #expect(sns.subscriptions[subscription.arn]?.confirmed == false)
        changes = []
        let arn = try sns.confirmSubscription(topicArn: Self.topicArn, token: token, now: Self.t0 + 2 * 86_400 - 1, changes: &changes)
        #expect(arn == subscription.arn)
        #expect(sns.subscriptions[arn]?.confirmed == true)
        #expect(changes.count == 1)
        // A second click on the same link answers the same subscription and changes nothing.
        changes = []
        #expect(try sns.confirmSubscription(topicArn: Self.topicArn, token: token, now: Self.t0 + 100, changes: &changes) == arn)
        #expect(changes.isEmpty)
    }

    @Test func expiredTokenIsReplacedWhenSubscribingAgain() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "email", endpoint: "me@example.com", now: Self.t0, changes: &changes)
        let old = try #require(sns.subscriptions.values.first?.token)
        let later = Self.t0 + 3 * 86_400
        _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "email", endpoint: "me@example.com", now: later, changes: &changes)
        let fresh = try #require(sns.subscriptions.values.first?.token)
        #expect(fresh != old)
        #expect(try sns.confirmSubscription(topicArn: Self.topicArn, token: fresh, now: later + 1, changes: &changes).hasPrefix(Self.topicArn))
    }

    @Test func unsubscribeRemovesTheSubscriptionAndItsQueuedDeliveries() throws {
        var sns = try withTopic()
        let arn = try confirmedEmail(&sns, "me@example.com")
        var changes: [NotifierChange] = []
        _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "hi"), now: Self.t0 + 2, changes: &changes)
        #expect(sns.outbox.values.contains { $0.kind == .notification })
        try sns.unsubscribe(arn, now: Self.t0 + 3, changes: &changes)
        #expect(sns.subscriptions.isEmpty)
        #expect(!sns.outbox.values.contains { $0.subscriptionArn == arn })
        expectError("NotFound") { try sns.unsubscribe(arn, now: Self.t0 + 3, changes: &changes) }
        expectError("InvalidParameter") { try sns.unsubscribe("pending confirmation", now: Self.t0 + 3, changes: &changes) }
        // Email gets no UnsubscribeConfirmation (AWS sends one to http/https endpoints only).
        #expect(sns.deactivated.isEmpty && sns.outbox.isEmpty)
    }

    func confirmedHTTP(_ sns: inout SNSTopics, _ endpoint: String) throws -> String {
        var changes: [NotifierChange] = []
        _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "http", endpoint: endpoint, now: Self.t0, changes: &changes)
        let token = try #require(sns.subscriptions.values.first { $0.endpoint == endpoint }?.token)
        let arn = try sns.confirmSubscription(topicArn: Self.topicArn, token: token, now: Self.t0 + 1, changes: &changes)
        for delivery in sns.outbox.values { sns.deliverySucceeded(delivery.id, now: Self.t0 + 1, changes: &changes) }
        return arn
    }

    @Test func unsubscribingAnHTTPEndpointSendsAnUnsubscribeConfirmationWhoseTokenRestoresIt() throws {
        var sns = try withTopic()
        let arn = try confirmedHTTP(&sns, "http://127.0.0.1:9/hook")
        var changes: [NotifierChange] = []
        try sns.unsubscribe(arn, now: Self.t0 + 10, changes: &changes)
        let goodbye = try #require(deliveries(changes).first)
        #expect(goodbye.kind == .unsubscribeConfirmation && goodbye.subscriptionArn == arn && goodbye.endpoint == "http://127.0.0.1:9/hook")
        let body = try JSONSerialization.jsonObject(with: Data(goodbye.body.utf8)) as! [String: String]
        #expect(body["Type"] == "UnsubscribeConfirmation" && body["TopicArn"] == Self.topicArn)
        #expect(body["Message"]!.contains("deactivate subscription \(arn)"))
        let token = try #require(body["Token"])
        #expect(body["SubscribeURL"] == sns.confirmURL(topicArn: Self.topicArn, token: token))
        // Gone for every action: not listed, not found, not published to.
        #expect(sns.subscriptions.isEmpty)
        expectError("NotFound") { _ = try sns.getSubscriptionAttributes(arn) }
        expectError("NotFound") { try sns.unsubscribe(arn, now: Self.t0 + 11, changes: &changes) }
        _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "while away"), now: Self.t0 + 12, changes: &changes)
        #expect(!sns.outbox.values.contains { $0.kind == .notification })
        // Kept durable as a deactivated record, which a restart keeps out of the live ones.
        let stored = try #require(changes.compactMap { if case .putSubscription(let s) = $0 { s } else { nil } }.last)
        #expect(stored.arn == arn && stored.deactivated == true)
        var restarted = makeTopics()
        restarted.restore(topics: Array(sns.topics.values), subscriptions: [stored], outbox: [], dedupe: [], delivered: 0, failed: 0)
        #expect(restarted.subscriptions.isEmpty && restarted.deactivated.keys.sorted() == [arn])
        // The token brings it back as it was: same ARN, confirmed, delivered to again.
        changes = []
        #expect(try restarted.confirmSubscription(topicArn: Self.topicArn, token: token, now: Self.t0 + 20, changes: &changes) == arn)
        #expect(restarted.subscriptions[arn]?.confirmed == true && restarted.subscriptions[arn]?.deactivated == nil && restarted.deactivated.isEmpty)
        // A second click on the same link answers the same subscription.
        #expect(try restarted.confirmSubscription(topicArn: Self.topicArn, token: token, now: Self.t0 + 21, changes: &changes) == arn)
        _ = try restarted.publish(topicArn: Self.topicArn, PublishInput(message: "back"), now: Self.t0 + 22, changes: &changes)
        #expect(restarted.outbox.values.contains { $0.kind == .notification && $0.subscriptionArn == arn })
    }

    @Test func anUnsubscribeConfirmationTokenExpiresAndYieldsToANewerSubscription() throws {
        var sns = try withTopic()
        let endpoint = "http://example.com/hook"
        let arn = try confirmedHTTP(&sns, endpoint)
        var changes: [NotifierChange] = []
        try sns.unsubscribe(arn, now: Self.t0 + 10, changes: &changes)
        let token = try #require(sns.deactivated[arn]?.token)
        var expired = sns
        expectError("InvalidParameter") {
            _ = try expired.confirmSubscription(topicArn: Self.topicArn, token: token, now: Self.t0 + 10 + SNSTopics.tokenLifetime, changes: &changes)
        }
        // The endpoint subscribed again meanwhile: the newer subscription stands, the old one is dropped.
        let newer = try confirmedHTTP(&sns, endpoint)
        #expect(newer != arn)
        changes = []
        #expect(try sns.confirmSubscription(topicArn: Self.topicArn, token: token, now: Self.t0 + 30, changes: &changes) == newer)
        #expect(sns.subscriptions.keys.sorted() == [newer] && sns.deactivated.isEmpty)
        #expect(changes.contains { if case .deleteSubscription(let gone) = $0 { gone == arn } else { false } })
        // Deleting the topic drops deactivated subscriptions with the live ones.
        try sns.unsubscribe(newer, now: Self.t0 + 40, changes: &changes)
        #expect(sns.deactivated.keys.sorted() == [newer])
        try sns.deleteTopic(Self.topicArn, changes: &changes)
        #expect(sns.deactivated.isEmpty)
    }

    // MARK: Publish

    @Test func publishDeliversOnlyToConfirmedSubscriptions() throws {
        var sns = try withTopic()
        let confirmedArn = try confirmedEmail(&sns, "yes@example.com")
        var changes: [NotifierChange] = []
        _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "email", endpoint: "pending@example.com", now: Self.t0, changes: &changes)
        changes = []
        let id = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "order 42 placed", subject: "New order"),
                                 now: Self.t0 + 5, changes: &changes)
        #expect(UUID(uuidString: id) != nil)
        let sent = deliveries(changes)
        #expect(sent.count == 1)
        let mail = try #require(sent.first)
        #expect(mail.subscriptionArn == confirmedArn)
        #expect(mail.kind == .notification && mail.messageId == id)
        #expect(mail.subject == "New order")
        #expect(mail.body.hasPrefix("order 42 placed\n"))
        #expect(mail.body.contains("http://127.0.0.1:8080/sns/unsubscribe?SubscriptionArn=arn%3Aaws%3Asns%3A"))
        #expect(mail.dueAt == Self.t0 + 5)
        // Without a Subject the mail gets SNS's default one.
        changes = []
        _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "x"), now: Self.t0 + 6, changes: &changes)
        #expect(deliveries(changes).first?.subject == "AWS Notification Message")
    }

    @Test func notificationJSONForSQSAndEmailJSON() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: "arn:aws:sqs:us-east-1:000000000000:copy",
                              now: Self.t0, changes: &changes)
        changes = []
        let id = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "m\"1", subject: "S",
                                 messageAttributes: ["kind": MessageAttributeValue(DataType: "String", StringValue: "order")]),
                                 now: Self.t0, changes: &changes)
        let body = try #require(deliveries(changes).first?.body)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        #expect(json["Type"] as? String == "Notification")
        #expect(json["MessageId"] as? String == id)
        #expect(json["TopicArn"] as? String == Self.topicArn)
        #expect(json["Subject"] as? String == "S")
        #expect(json["Message"] as? String == "m\"1")
        #expect((json["Timestamp"] as? String)?.hasSuffix("Z") == true)
        #expect(json["SignatureVersion"] as? String == "1")
        #expect((json["UnsubscribeURL"] as? String)?.contains("/sns/unsubscribe?SubscriptionArn=") == true)
        let attributes = try #require(json["MessageAttributes"] as? [String: [String: String]])
        #expect(attributes["kind"] == ["Type": "String", "Value": "order"])
    }

    @Test func rawMessageDeliveryGivesQueuesTheMessageItself() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        let raw = try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: "arn:aws:sqs:us-east-1:000000000000:raw",
                                    attributes: ["RawMessageDelivery": "true"], now: Self.t0, changes: &changes)
        let wrapped = try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: "arn:aws:sqs:us-east-1:000000000000:wrapped",
                                        now: Self.t0, changes: &changes)
        #expect(try sns.getSubscriptionAttributes(raw)["RawMessageDelivery"] == "true")
        #expect(try sns.getSubscriptionAttributes(wrapped)["RawMessageDelivery"] == "false")
        changes = []
        _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: #"{"orderID":"o-1"}"#), now: Self.t0, changes: &changes)
        let byArn = Dictionary(uniqueKeysWithValues: deliveries(changes).map { ($0.subscriptionArn, $0) })
        #expect(byArn[raw]?.body == #"{"orderID":"o-1"}"#)
        #expect(byArn[raw]?.raw == true)
        let document = try JSONSerialization.jsonObject(with: Data(try #require(byArn[wrapped]).body.utf8)) as? [String: Any]
        #expect(document?["Type"] as? String == "Notification" && document?["Message"] as? String == #"{"orderID":"o-1"}"#)
        #expect(byArn[wrapped]?.raw == nil)
        // The outbox row keeps the flag across a restart.
        let row = try #require(byArn[raw])
        #expect(try JSONDecoder().decode(Delivery.self, from: row.jsonData()) == row)

        // Message attributes travel beside a raw body (a queue gets them as its message's own).
        changes = []
        let attributes = ["kind": MessageAttributeValue(DataType: "String", StringValue: "order \"1\"")]
        _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "m", messageAttributes: attributes), now: Self.t0, changes: &changes)
        let withAttributes = deliveries(changes)
        #expect(withAttributes.first { $0.subscriptionArn == raw }?.messageAttributes == attributes)
        #expect(withAttributes.first { $0.subscriptionArn == wrapped }?.messageAttributes == nil)
        for delivery in withAttributes { #expect(try JSONDecoder().decode(Delivery.self, from: delivery.jsonData()) == delivery) }

        // Turned off again, the queue gets SNS's document.
        try sns.setSubscriptionAttributes(raw, name: "RawMessageDelivery", value: "false", changes: &changes)
        changes = []
        _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "m"), now: Self.t0, changes: &changes)
        #expect(deliveries(changes).allSatisfy { $0.raw == nil && $0.body != "m" })
    }

    @Test func subscriptionAttributesAreValidatedLikeSNS() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        let queue = try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: "arn:aws:sqs:us-east-1:000000000000:q",
                                      now: Self.t0, changes: &changes)
        let mail = try confirmedEmail(&sns, "a@example.com")
        let attributes = try sns.getSubscriptionAttributes(mail)
        #expect(attributes["Protocol"] == "email" && attributes["Endpoint"] == "a@example.com")
        #expect(attributes["PendingConfirmation"] == "false" && attributes["TopicArn"] == Self.topicArn)
        expectError("InvalidParameter") { try sns.setSubscriptionAttributes(mail, name: "RawMessageDelivery", value: "true", changes: &changes) }
        expectError("InvalidParameter") { try sns.setSubscriptionAttributes(queue, name: "RawMessageDelivery", value: "yes", changes: &changes) }
        expectError("InvalidParameter") { try sns.setSubscriptionAttributes(queue, name: "DeliveryPolicy", value: "{}", changes: &changes) }
        expectError("InvalidParameter") { try sns.setSubscriptionAttributes(queue, name: "Colour", value: "red", changes: &changes) }
        expectError("NotFound") { _ = try sns.getSubscriptionAttributes(Self.topicArn + ":00000000-0000-0000-0000-000000000000") }
        expectError("InvalidParameter") { _ = try sns.getSubscriptionAttributes("not-an-arn") }
        expectError("InvalidParameter") {
            _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "email", endpoint: "b@example.com",
                                  attributes: ["RawMessageDelivery": "true"], now: Self.t0, changes: &changes)
        }
        #expect(!sns.subscriptions.values.contains { $0.endpoint == "b@example.com" }, "a refused Subscribe creates nothing")
        // The same endpoint again: the same subscription, unless the attributes would change it.
        #expect(try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: "arn:aws:sqs:us-east-1:000000000000:q",
                                  attributes: ["RawMessageDelivery": "false"], now: Self.t0, changes: &changes) == queue)
        expectError("InvalidParameter") {
            _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: "arn:aws:sqs:us-east-1:000000000000:q",
                                  attributes: ["RawMessageDelivery": "true"], now: Self.t0, changes: &changes)
        }
    }

    @Test func aFilterPolicyDecidesWhichPublishesReachTheSubscription() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        let filtered = try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: "arn:aws:sqs:us-east-1:000000000000:big",
                                         attributes: ["FilterPolicy": #"{"total":[{"numeric":[">=",100]}]}"#], now: Self.t0, changes: &changes)
        let everything = try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: "arn:aws:sqs:us-east-1:000000000000:all",
                                           now: Self.t0, changes: &changes)
        #expect(try sns.getSubscriptionAttributes(filtered)["FilterPolicyScope"] == "MessageAttributes")
        func reached(_ attributes: [String: MessageAttributeValue]?) throws -> Set<String> {
            changes = []
            _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "m", messageAttributes: attributes), now: Self.t0, changes: &changes)
            return Set(deliveries(changes).map(\.subscriptionArn))
        }
        #expect(try reached(["total": MessageAttributeValue(DataType: "Number", StringValue: "250")]) == [filtered, everything])
        #expect(try reached(["total": MessageAttributeValue(DataType: "Number", StringValue: "20")]) == [everything])
        #expect(try reached(nil) == [everything])

        // Survives a restart (the parsed policies are rebuilt from the stored text).
        var restored = makeTopics()
        restored.restore(topics: Array(sns.topics.values), subscriptions: Array(sns.subscriptions.values), outbox: [], dedupe: [],
                         delivered: 0, failed: 0)
        changes = []
        _ = try restored.publish(topicArn: Self.topicArn, PublishInput(message: "m"), now: Self.t0, changes: &changes)
        #expect(Set(deliveries(changes).map(\.subscriptionArn)) == [everything])

        // A bad policy in Subscribe creates nothing.
        expectError("InvalidParameter") {
            _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: "arn:aws:sqs:us-east-1:000000000000:bad",
                                  attributes: ["FilterPolicy": #"{"total":[{"numeric":["!",1]}]}"#], now: Self.t0, changes: &changes)
        }
        #expect(!sns.subscriptions.values.contains { $0.endpoint.hasSuffix(":bad") })

        // An empty value removes the policy; a bad one is refused and the old one kept.
        expectError("InvalidParameter") {
            try sns.setSubscriptionAttributes(everything, name: "FilterPolicy", value: #"{"total":"x"}"#, changes: &changes)
        }
        expectError("InvalidParameter") {
            try sns.setSubscriptionAttributes(everything, name: "FilterPolicyScope", value: "MessageBody", changes: &changes)
        }
        #expect(try reached(nil) == [everything], "the refused policy left the old state as it was")
        try sns.setSubscriptionAttributes(filtered, name: "FilterPolicy", value: "", changes: &changes)
        #expect(try reached(nil) == [filtered, everything])
        #expect(try sns.getSubscriptionAttributes(filtered)["FilterPolicy"] == nil)
    }

    @Test func subscriptionsStoredBeforeRawDeliveryStillLoad() throws {
        let old = #"{"arn":"a:b","topicArn":"t","deliveryProtocol":"sqs","endpoint":"e","owner":"o","confirmed":true,"createdAt":1}"#
        let subscription = try JSONDecoder().decode(Subscription.self, from: Data(old.utf8))
        #expect(subscription.rawMessageDelivery == nil && !subscription.isRaw)
    }

    @Test func messageStructureJSONPicksEachProtocolsText() throws {
        var sns = try withTopic()
        _ = try confirmedEmail(&sns, "me@example.com")
        var changes: [NotifierChange] = []
        _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: "arn:aws:sqs:us-east-1:000000000000:copy",
                              now: Self.t0, changes: &changes)
        changes = []
        let message = #"{"default": "plain", "email": "for mail"}"#
        _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: message, messageStructure: "json"), now: Self.t0, changes: &changes)
        let sent = deliveries(changes)
        let mail = try #require(sent.first { $0.deliveryProtocol == .email })
        #expect(mail.body.hasPrefix("for mail\n"))
        let queued = try #require(sent.first { $0.deliveryProtocol == .sqs })
        let json = try #require(try JSONSerialization.jsonObject(with: Data(queued.body.utf8)) as? [String: Any])
        #expect(json["Message"] as? String == "plain")
        // The lab's Lambda: Message=json.dumps({'default': json.dumps(new_record)}).
        changes = []
        let record = #"{"default": "{\"orderID\": {\"S\": \"o-1\"}}"}"#
        _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: record, messageStructure: "json"), now: Self.t0, changes: &changes)
        #expect(deliveries(changes).first { $0.deliveryProtocol == .email }?.body.hasPrefix(#"{"orderID": {"S": "o-1"}}"#) == true)
    }

    @Test func messageStructureJSONErrors() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        let bad: [(String, String)] = [
            ("not json", "failed to parse"), ("[1, 2]", "JSON object"), (#"{"email": "x"}"#, "No default entry"),
            (#"{"default": 5}"#, "No default entry"), (#"{"default": "d", "sqs": {"a": 1}}"#, "must be a string"),
        ]
        for (message, reason) in bad {
            do {
                _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: message, messageStructure: "json"), now: Self.t0, changes: &changes)
                Issue.record("accepted \(message)")
            } catch let error as SNSError {
                #expect(error.code == "InvalidParameter")
                #expect(error.message.contains(reason), "\(error.message)")
            }
        }
        expectError("InvalidParameter") {
            _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "{}", messageStructure: "xml"), now: Self.t0, changes: &changes)
        }
    }

    @Test func publishValidatesLikeSNS() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        let invalid: [PublishInput] = [
            PublishInput(message: nil), PublishInput(message: ""),
            PublishInput(message: String(repeating: "x", count: 262_145)),
            PublishInput(message: "m", subject: ""), PublishInput(message: "m", subject: String(repeating: "s", count: 101)),
            PublishInput(message: "m", subject: "two\nlines"), PublishInput(message: "m", subject: "tab\there"),
            PublishInput(message: "m", messageAttributes: ["a": MessageAttributeValue(DataType: "Float", StringValue: "1")]),
            PublishInput(message: "m", messageAttributes: ["a": MessageAttributeValue(DataType: "Number", StringValue: "one")]),
            PublishInput(message: "m", messageAttributes: ["a": MessageAttributeValue(DataType: "String")]),
        ]
        for input in invalid {
            expectError("InvalidParameter") { _ = try sns.publish(topicArn: Self.topicArn, input, now: Self.t0, changes: &changes) }
        }
        #expect(throws: Never.self) {
            _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: String(repeating: "x", count: 262_144),
                                subject: String(repeating: "s", count: 100)), now: Self.t0, changes: &changes)
        }
        expectError("NotFound") {
            _ = try sns.publish(topicArn: "arn:aws:sns:us-east-1:000000000000:missing", PublishInput(message: "m"), now: Self.t0, changes: &changes)
        }
        expectError("InvalidParameter") { _ = try sns.publish(topicArn: nil, PublishInput(message: "m"), now: Self.t0, changes: &changes) }
        expectError("InvalidParameter") { _ = try sns.publish(topicArn: "arn:aws:sqs:x", PublishInput(message: "m"), now: Self.t0, changes: &changes) }
    }

    @Test func duplicatePublishAnswersTheOriginalMessageIdAndDeliversNothing() throws {
        var sns = try withTopic()
        _ = try confirmedEmail(&sns, "me@example.com")
        var changes: [NotifierChange] = []
        let first = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "m", deduplicationId: "order-1"), now: Self.t0, changes: &changes)
        #expect(deliveries(changes).count == 1)
        #expect(changes.contains { if case .putDedupe(let e) = $0 { e.messageId == first } else { false } })
        changes = []
        let again = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "m", deduplicationId: "order-1"), now: Self.t0 + 60, changes: &changes)
        #expect(again == first)
        #expect(changes.isEmpty)
        // Another key, or the same key after the window, is a new message.
        #expect(try sns.publish(topicArn: Self.topicArn, PublishInput(message: "m", deduplicationId: "order-2"), now: Self.t0, changes: &changes) != first)
        let late = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "m", deduplicationId: "order-1"),
                                   now: Self.t0 + SNSTopics.dedupeWindow + 1, changes: &changes)
        #expect(late != first)
    }

    @Test func dedupeKeysAreBounded() throws {
        var sns = try withTopic()
        sns.maxDedupeKeys = 10
        var changes: [NotifierChange] = []
        for i in 0..<25 {
            _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "m", deduplicationId: "k\(i)"), now: Self.t0 + Double(i), changes: &changes)
        }
        #expect(sns.dedupeKeyCount == 10)
        changes = []
        sns.expireDedupe(now: Self.t0 + SNSTopics.dedupeWindow + 100, changes: &changes)
        #expect(sns.dedupeKeyCount == 0)
        #expect(changes.count == 10)
    }

    @Test func publishBatch() throws {
        var sns = try withTopic()
        _ = try confirmedEmail(&sns, "me@example.com")
        var changes: [NotifierChange] = []
        let result = try sns.publishBatch(topicArn: Self.topicArn, entries: [
            PublishBatchEntry(Id: "a", Message: "one"),
            PublishBatchEntry(Id: "b", Message: ""),
            PublishBatchEntry(Id: "c", Message: #"{"default": "d"}"#, MessageStructure: "json"),
        ], now: Self.t0, changes: &changes)
        #expect(result.Successful.map(\.Id) == ["a", "c"])
        #expect(result.Failed.map(\.Id) == ["b"])
        #expect(result.Failed.first?.Code == "InvalidParameter" && result.Failed.first?.SenderFault == true)
        #expect(deliveries(changes).count == 2)
        expectError("EmptyBatchRequest") { _ = try sns.publishBatch(topicArn: Self.topicArn, entries: [], now: Self.t0, changes: &changes) }
        expectError("TooManyEntriesInBatchRequest") {
            _ = try sns.publishBatch(topicArn: Self.topicArn, entries: (0..<11).map { PublishBatchEntry(Id: "e\($0)", Message: "m") },
                                     now: Self.t0, changes: &changes)
        }
        expectError("BatchEntryIdsNotDistinct") {
            _ = try sns.publishBatch(topicArn: Self.topicArn, entries: [PublishBatchEntry(Id: "x", Message: "m"), PublishBatchEntry(Id: "x", Message: "m")],
                                     now: Self.t0, changes: &changes)
        }
        expectError("InvalidBatchEntryId") {
            _ = try sns.publishBatch(topicArn: Self.topicArn, entries: [PublishBatchEntry(Id: "bad id", Message: "m")], now: Self.t0, changes: &changes)
        }
        expectError("NotFound") {
            _ = try sns.publishBatch(topicArn: "arn:aws:sns:us-east-1:000000000000:nope", entries: [PublishBatchEntry(Id: "x", Message: "m")],
                                     now: Self.t0, changes: &changes)
        }
    }

    // MARK: Deliveries

    @Test func deliveriesAreHandedOutOldestFirstInRoundsAndSurviveARestore() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        let subscription = try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: "arn:aws:sqs:us-east-1:000000000000:q1",
                                             now: Self.t0, changes: &changes)
        for i in 0..<5 {
            _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "m\(i)"), now: Self.t0 + Double(i), changes: &changes)
        }
        let created = deliveries(changes).sorted { $0.createdAt < $1.createdAt }.map(\.id)
        #expect(sns.takeDue(now: Self.t0 + 10, limit: 2, lane: .other).map(\.id) == Array(created[0..<2]))
        // A restart forgets what was handed out (those sends never reported): all five are due again.
        var restored = makeTopics()
        restored.restore(topics: Array(sns.topics.values), subscriptions: Array(sns.subscriptions.values), outbox: Array(sns.outbox.values),
                         dedupe: [], delivered: 0, failed: 0)
        #expect(restored.takeDue(now: Self.t0 + 10, limit: 10, lane: .other).map(\.id) == created)
        // Deliveries of a subscription that goes away leave the due order with it.
        #expect(sns.takeDue(now: Self.t0 + 10, limit: 1, lane: .other).map(\.id) == [created[2]])
        try sns.unsubscribe(subscription, now: Self.t0 + 10, changes: &changes)
        #expect(sns.takeDue(now: Self.t0 + 10, limit: 10, lane: .other).isEmpty)
        #expect(sns.nextDueAt(lane: .other) == nil)
    }

    @Test func deliveriesNotYetDurableStayInTheOutboxUntilAsked() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: "arn:aws:sqs:us-east-1:000000000000:q1",
                              now: Self.t0, changes: &changes)
        for i in 0..<3 {
            _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "m\(i)"), now: Self.t0 + Double(i), changes: &changes)
        }
        let created = deliveries(changes).sorted { $0.createdAt < $1.createdAt }.map(\.id)
        // The oldest is still being committed: the next due is the second's, and it is handed out.
        #expect(sns.nextDueAt(lane: .other, notYet: [created[0]]) == Self.t0 + 1)
        #expect(sns.takeDue(now: Self.t0 + 10, limit: 10, lane: .other, notYet: [created[0], created[2]]).map(\.id) == [created[1]])
        #expect(sns.nextDueAt(lane: .other, notYet: [created[0], created[2]]) == nil)
        // Durable now: handed out in their order, once.
        #expect(sns.nextDueAt(lane: .other) == Self.t0)
        #expect(sns.takeDue(now: Self.t0 + 10, limit: 10, lane: .other).map(\.id) == [created[0], created[2]])
        #expect(sns.takeDue(now: Self.t0 + 10, limit: 10, lane: .other).isEmpty)
    }

    @Test func mailAndTheOtherProtocolsAreHandedOutInTheirOwnLanes() throws {
        var sns = try withTopic()
        _ = try confirmedEmail(&sns, "me@example.com")
        var changes: [NotifierChange] = []
        sns.deliverySucceeded(try #require(sns.outbox.keys.first), now: Self.t0, changes: &changes)  // the confirmation
        _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "sqs", endpoint: "arn:aws:sqs:us-east-1:000000000000:q1",
                              now: Self.t0, changes: &changes)
        _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "m"), now: Self.t0 + 1, changes: &changes)
        #expect(sns.nextDueAt(lane: .mail) == Self.t0 + 1)
        #expect(sns.takeDue(now: Self.t0 + 2, limit: 10, lane: .other).map(\.deliveryProtocol) == [.sqs])
        #expect(sns.takeDue(now: Self.t0 + 2, limit: 10, lane: .other).isEmpty)
        #expect(sns.nextDueAt(lane: .other) == nil)
        // Restored, each delivery is back in its own lane.
        var restored = makeTopics()
        restored.restore(topics: Array(sns.topics.values), subscriptions: Array(sns.subscriptions.values), outbox: Array(sns.outbox.values),
                         dedupe: [], delivered: 0, failed: 0)
        #expect(restored.takeDue(now: Self.t0 + 2, limit: 10, lane: .mail).map(\.deliveryProtocol) == [.email])
        #expect(restored.takeDue(now: Self.t0 + 2, limit: 10, lane: .other).map(\.deliveryProtocol) == [.sqs])
    }

    @Test func outboxHandsOutDueDeliveriesAndRetriesWithBackoff() throws {
        var sns = try withTopic()
        _ = try confirmedEmail(&sns, "me@example.com")
        var changes: [NotifierChange] = []
        sns.deliverySucceeded(try #require(sns.outbox.keys.first), now: Self.t0, changes: &changes)  // the confirmation
        #expect(sns.deliveredCount == 1)
        _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "m"), now: Self.t0 + 10, changes: &changes)
        #expect(sns.takeDue(now: Self.t0 + 9, limit: 10, lane: .mail).isEmpty)
        let due = sns.takeDue(now: Self.t0 + 10, limit: 10, lane: .mail)
        #expect(due.count == 1)
        let id = due[0].id
        // Handed out: not again until reported, and not what the loop waits for.
        #expect(sns.takeDue(now: Self.t0 + 10, limit: 10, lane: .mail).isEmpty)
        #expect(sns.nextDueAt(lane: .mail) == nil)
        changes = []
        #expect(!sns.deliveryFailed(id, error: "connection refused", now: Self.t0 + 10, changes: &changes))
        #expect(sns.outbox[id]?.dueAt == Self.t0 + 11)
        #expect(sns.outbox[id]?.attempts == 1)
        #expect(sns.nextDueAt(lane: .mail) == Self.t0 + 11)
        #expect(sns.takeDue(now: Self.t0 + 10.5, limit: 10, lane: .mail).isEmpty)
        #expect(sns.takeDue(now: Self.t0 + 11, limit: 10, lane: .mail).map(\.id) == [id])
        _ = sns.deliveryFailed(id, error: "connection refused", now: Self.t0 + 11, changes: &changes)
        #expect(sns.outbox[id]?.dueAt == Self.t0 + 13)
        changes = []
        sns.deliverySucceeded(id, now: Self.t0 + 13, changes: &changes)
        #expect(sns.outbox.isEmpty)
        #expect(changes.first == .deleteDelivery(id: id))
        guard case .logOutcome(let outcome) = changes.last else { Issue.record("no log entry"); return }
        #expect(outcome.delivered && outcome.attempts == 3)
    }

    @Test func httpDeliveriesAreGivenUpAfterFourAttempts() throws {
        var sns = try withTopic()
        var changes: [NotifierChange] = []
        _ = try sns.subscribe(topicArn: Self.topicArn, protocol: "http", endpoint: "http://127.0.0.1:9/", now: Self.t0, changes: &changes)
        let id = try #require(sns.outbox.keys.first)
        var now = Self.t0
        for attempt in 1...3 {
            #expect(!sns.deliveryFailed(id, error: "refused", now: now, changes: &changes), "attempt \(attempt)")
            now = try #require(sns.outbox[id]?.dueAt)
        }
        changes = []
        #expect(sns.deliveryFailed(id, error: "refused", now: now, changes: &changes))
        #expect(sns.outbox.isEmpty)
        #expect(sns.failedCount == 1)
        guard case .logOutcome(let outcome) = changes.last else { Issue.record("no log entry"); return }
        #expect(!outcome.delivered && outcome.attempts == 4 && outcome.error == "refused")
    }

    @Test func retryPolicyBacksOffAndGivesUp() {
        let email = RetryPolicy.forProtocol(.email)
        #expect((1...8).map { email.delay(afterFailures: $0) } == [1, 2, 4, 8, 16, 32, 60, 60])
        #expect(email.delay(afterFailures: 10_000) == 60)
        #expect(email.nextAttempt(afterFailures: 1, createdAt: 0, now: 100) == 101)
        // A day after it was made, a mail is given up whatever the count.
        #expect(email.nextAttempt(afterFailures: 5, createdAt: 0, now: 86_390) == nil)
        let http = RetryPolicy.forProtocol(.http)
        #expect(http.nextAttempt(afterFailures: 3, createdAt: 0, now: 10) == 14)
        #expect(http.nextAttempt(afterFailures: 4, createdAt: 0, now: 10) == nil)
        #expect(RetryPolicy.forProtocol(.sqs).delay(afterFailures: 7) == 20)
    }

    @Test func restoreBringsBackEverything() throws {
        var sns = try withTopic()
        _ = try confirmedEmail(&sns, "me@example.com")
        var changes: [NotifierChange] = []
        _ = try sns.publish(topicArn: Self.topicArn, PublishInput(message: "m", deduplicationId: "d"), now: Self.t0, changes: &changes)
        var restored = makeTopics()
        restored.restore(topics: Array(sns.topics.values), subscriptions: Array(sns.subscriptions.values), outbox: Array(sns.outbox.values),
                         dedupe: [DedupeEntry(key: "\(Self.topicArn)\nd", messageId: "first", expiresAt: Self.t0 + 100)], delivered: 3, failed: 1)
        #expect(restored.outbox == sns.outbox)
        #expect(restored.deliveredCount == 3 && restored.failedCount == 1)
        #expect(try restored.publish(topicArn: Self.topicArn, PublishInput(message: "m", deduplicationId: "d"), now: Self.t0 + 1, changes: &changes) == "first")
    }
}

@Suite struct MailMessageTests {
    @Test func payloadHasHeadersCRLFAndDotStuffing() {
        let mail = MailMessage(from: "no-reply@nimbus.local", fromName: "Orders", to: "me@example.com", subject: "Hällo",
                               body: "line 1\n.hidden\n..two\nlast\r\n.", messageID: "abc@nimbus.local", date: Date(timeIntervalSince1970: 0))
        let payload = mail.dataPayload()
        #expect(payload.hasPrefix("Message-ID: <abc@nimbus.local>\r\nDate: Thu, 01 Jan 1970 00:00:00 +0000\r\nFrom: Orders <no-reply@nimbus.local>\r\n"))
        #expect(payload.contains("To: <me@example.com>\r\n"))
        #expect(payload.contains("Subject: =?UTF-8?B?\(Data("Hällo".utf8).base64EncodedString())?=\r\n"))
        #expect(payload.contains("Content-Type: text/plain; charset=UTF-8\r\n"))
        #expect(payload.hasSuffix("\r\n\r\nline 1\r\n..hidden\r\n...two\r\nlast\r\n..\r\n"))
        #expect(!payload.replacingOccurrences(of: "\r\n", with: "").contains("\n"))
    }

    @Test func linesSplitOnEveryKindOfLineBreak() {
        #expect(MailMessage.lines(of: "a\r\nb\rc\nd") == ["a", "b", "c", "d"])
        #expect(MailMessage.lines(of: "\n\r\n\r") == ["", "", "", ""])
        #expect(MailMessage.lines(of: "") == [""])
        #expect(MailMessage.lines(of: "ünï\r\ncødé 🚀\r") == ["ünï", "cødé 🚀", ""])
    }
}

@Suite struct PermanentFailureTests {
    @Test func aPermanentFailureIsGivenUpAtOnce() throws {
        var sns = SNSTopics(region: "us-east-1", account: "000000000000")
        var changes: [NotifierChange] = []
        let arn = try sns.createTopic(name: "t", now: 0, changes: &changes)
        _ = try sns.subscribe(topicArn: arn, protocol: "email", endpoint: "nobody@example.com", now: 0, changes: &changes)
        let id = try #require(sns.outbox.keys.first)
        #expect(sns.deliveryFailed(id, error: "550 no such user", permanent: true, now: 1, changes: &changes))
        #expect(sns.outbox.isEmpty && sns.failedCount == 1)
    }
}

@Suite struct HandWrittenEncodingTests {
    @Test(arguments: [nil, "550 \"no\" such user\n\u{1}"])
    func aDeliveryRowReadsBackAsJSONDecoderSeesIt(lastError: String?) throws {
        let delivery = Delivery(id: "d-1", kind: .notification, messageId: "m", topicArn: "arn:aws:sns:us-east-1:000000000000:POC-Topic",
                                subscriptionArn: "arn:aws:sns:us-east-1:000000000000:POC-Topic:s", deliveryProtocol: .emailJSON,
                                endpoint: "me@example.com", subject: "Ünïcødé ✓", body: "{\"default\":\"x\"}\r\n\\ 🚀", senderName: "",
                                attempts: 3, createdAt: 1_795_705_841.123_456, dueAt: 0.1 + 0.2, lastError: lastError)
        #expect(try JSONDecoder().decode(Delivery.self, from: delivery.jsonData()) == delivery)
    }

    @Test func queryEscapeKeepsOnlyUnreservedCharacters() {
        let unreserved = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
        for text in ["arn:aws:sns:us-east-1:000000000000:POC-Topic", "a b&c=d/e?f#g%h+i", "ünï 🚀", "", "-._~"] {
            #expect(SNSTopics.queryEscape(text) == text.addingPercentEncoding(withAllowedCharacters: unreserved))
        }
    }
}
