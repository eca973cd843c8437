import Foundation
import HeapModule
import NimbusProtocol

/// The notifier's core: topics, subscriptions, confirmation tokens, the outbox of deliveries and
/// the Publish idempotency keys, as a pure state machine. Time comes in as `now` (seconds since the
/// epoch) and randomness from `entropy`, so tests drive both. Every mutating call appends the
/// `NotifierChange`s the shell must make durable before it answers.
public struct SNSTopics: Sendable {
    public let region: String
    public let account: String
    /// Where the links in confirmation and notification messages point (the gateway serves them).
    public var publicBaseURL: String
    private let entropy: @Sendable () -> UInt64

    public private(set) var topics: [String: Topic] = [:]

    /// Each topic's access policy (JSON text) by topic ARN: its resource policy for authorization.
    public var policiesByTopicArn: [String: String] { topics.compactMapValues(\.policy) }
    public private(set) var subscriptions: [String: Subscription] = [:]
    /// Unsubscribed http/https subscriptions whose UnsubscribeConfirmation token may still restore
    /// them, by ARN (`Subscription.deactivated`). No action sees them otherwise.
    public private(set) var deactivated: [String: Subscription] = [:]
    /// The subscriptions' filter policies, parsed (by subscription ARN): matched on every publish.
    private var filters: [String: FilterPolicy] = [:]
    /// Deliveries not yet delivered nor given up, by id.
    public private(set) var outbox: [String: Delivery] = [:]
    /// The outbox in the order it falls due, one heap per lane (`DeliveryLane.rawValue`), so handing
    /// out the next deliveries costs a few heap operations, not a sort of the outbox. Entries go stale
    /// when their delivery is rescheduled or leaves; they are dropped as they reach the top.
    private var dueOrder = DeliveryLane.allCases.map { _ in Heap<DueKey>() }
    /// Deliveries handed out by `takeDue` and not yet reported: not handed out twice.
    public private(set) var handedOut: Set<String> = []

    struct DueKey: Comparable {
        var dueAt: Double
        var createdAt: Double
        var id: String
        init(_ d: Delivery) { (dueAt, createdAt, id) = (d.dueAt, d.createdAt, d.id) }
        static func < (a: DueKey, b: DueKey) -> Bool { (a.dueAt, a.createdAt, a.id) < (b.dueAt, b.createdAt, b.id) }
    }
    private var dedupe: [String: DedupeEntry] = [:]
    /// Deliveries that ended since start (or were counted at restore): for health.
    public private(set) var deliveredCount = 0
    public private(set) var failedCount = 0

    /// How long a confirmation token is accepted (AWS: 2 days).
    public static let tokenLifetime: Double = 2 * 86_400
    /// How long a Publish idempotency key is remembered, and how many at most.
    public static let dedupeWindow: Double = 86_400
    public var maxDedupeKeys = 100_000
    /// AWS's limit on a message (and on a whole PublishBatch).
    public static let maxMessageBytes = 262_144
    static let pageSize = 100
    public static let defaultSubject = "AWS Notification Message"

    public init(region: String, account: String, publicBaseURL: String = "http://127.0.0.1:8080",
                entropy: @escaping @Sendable () -> UInt64 = { UInt64.random(in: 0...UInt64.max) }) {
        self.region = region
        self.account = account
        self.publicBaseURL = publicBaseURL.hasSuffix("/") ? String(publicBaseURL.dropLast()) : publicBaseURL
        self.entropy = entropy
    }

    /// Loads durable state (at start).
    public mutating func restore(topics: [Topic], subscriptions: [Subscription], outbox: [Delivery], dedupe: [DedupeEntry],
                                 delivered: Int, failed: Int) {
        self.topics = Dictionary(topics.map { ($0.arn, $0) }, uniquingKeysWith: { $1 })
        self.subscriptions = Dictionary(subscriptions.filter { $0.deactivated != true }.map { ($0.arn, $0) }, uniquingKeysWith: { $1 })
        deactivated = Dictionary(subscriptions.filter { $0.deactivated == true }.map { ($0.arn, $0) }, uniquingKeysWith: { $1 })
        // Validated when set; one that no longer parses filters nothing rather than everything.
        filters = self.subscriptions.compactMapValues { (try? Self.parsedFilter($0)) ?? nil }
        self.outbox = Dictionary(outbox.map { ($0.id, $0) }, uniquingKeysWith: { $1 })
        dueOrder = DeliveryLane.allCases.map { lane in
            Heap(self.outbox.values.filter { $0.deliveryProtocol.lane == lane }.map(DueKey.init))
        }
        handedOut = []
        self.dedupe = Dictionary(dedupe.map { ($0.key, $0) }, uniquingKeysWith: { $1 })
        deliveredCount = delivered
        failedCount = failed
    }

    // MARK: Topics

    public func topicArn(_ name: String) -> String { "arn:aws:sns:\(region):\(account):\(name)" }

    /// CreateTopic: idempotent by name; an existing topic is returned as it is unless the request
    /// gives attributes that differ from its own.
    public mutating func createTopic(name: String, attributes: [String: String] = [:], now: Double,
                                     changes: inout [NotifierChange]) throws -> String {
        if name.hasSuffix(".fifo") { throw SNSError.invalid("Name Reason: FIFO topics are not supported by Nimbus") }
        guard (1...256).contains(name.count), name.allSatisfy(Self.isNameCharacter) else {
            throw SNSError.invalid("Topic Name")
        }
        for key in attributes.keys where !Self.settableAttributes.contains(key) {
            throw SNSError.invalid("Attributes Reason: Unknown attribute \(key)")
        }
        let arn = topicArn(name)
        if let existing = topics[arn] {
            let differs = attributes.contains { key, value in Self.attribute(key, of: existing) != value }
            if differs { throw SNSError.invalid("Attributes Reason: Topic already exists with different attributes") }
            return arn
        }
        var topic = Topic(name: name, arn: arn, createdAt: now)
        for (key, value) in attributes { try Self.set(key, value, on: &topic) }
        topics[arn] = topic
        changes.append(.putTopic(topic))
        return arn
    }

    /// DeleteTopic: removes the topic, its subscriptions and whatever was still on its way to them.
    /// Deleting a topic that does not exist succeeds, as in AWS.
    public mutating func deleteTopic(_ arn: String, changes: inout [NotifierChange]) throws {
        try Self.validateTopicArn(arn)
        guard topics.removeValue(forKey: arn) != nil else { return }
        changes.append(.deleteTopic(arn: arn))
        for subscription in subscriptions.values where subscription.topicArn == arn {
            removeSubscription(subscription.arn, changes: &changes)
        }
        for subscription in deactivated.values where subscription.topicArn == arn {
            deactivated.removeValue(forKey: subscription.arn)
            changes.append(.deleteSubscription(arn: subscription.arn))
        }
    }

    public func listTopics(nextToken: String?) throws -> (arns: [String], nextToken: String?) {
        try Self.page(topics.keys.sorted(), after: nextToken)
    }

    public func getTopicAttributes(_ arn: String) throws -> [String: String] {
        let topic = try existingTopic(arn)
        let subs = subscriptions.values.filter { $0.topicArn == arn }
        return [
            "TopicArn": topic.arn,
            "DisplayName": topic.displayName,
            "Owner": account,
            "SubscriptionsConfirmed": String(subs.count { $0.confirmed }),
            "SubscriptionsPending": String(subs.count { !$0.confirmed }),
            "SubscriptionsDeleted": "0",
            // A topic without a policy of its own shows SNS's default one, as AWS's topics do.
            "Policy": topic.policy ?? defaultPolicy(topicArn: topic.arn),
            "EffectiveDeliveryPolicy": Self.effectiveDeliveryPolicy,
        ]
    }

    /// The access policy SNS gives a new topic (what GetTopicAttributes shows until one is set): the
    /// owner account may use the topic. Not enforced as the topic's resource policy (`policiesByTopicArn`
    /// has only the policies set): it grants nothing the account's own principals do not have.
    public func defaultPolicy(topicArn: String) -> String {
        #"{"Version":"2008-10-17","Id":"__default_policy_ID","Statement":[{"Sid":"__default_statement_ID","Effect":"Allow","Principal":{"AWS":"*"},"#
            + #""Action":["SNS:GetTopicAttributes","SNS:SetTopicAttributes","SNS:AddPermission","SNS:RemovePermission","SNS:DeleteTopic","#
            + #""SNS:Subscribe","SNS:ListSubscriptionsByTopic","SNS:Publish"],"Resource":"\#(topicArn)","#
            + #""Condition":{"StringEquals":{"AWS:SourceOwner":"\#(account)"}}}]}"#
    }

    /// EffectiveDeliveryPolicy in SNS's format (its http part), with what Nimbus does for http/https
    /// deliveries (`RetryPolicy.forProtocol(.http)`: 1 s doubling to 20 s, 3 retries; the body sent
    /// as text/plain). Nimbus has no DeliveryPolicy to set, so it is the same for every topic.
    public static let effectiveDeliveryPolicy: String = {
        let http = RetryPolicy.forProtocol(.http)
        return #"{"http":{"defaultHealthyRetryPolicy":{"minDelayTarget":\#(Int(http.initialDelay)),"maxDelayTarget":\#(Int(http.maxDelay)),"#
            + #""numRetries":\#(http.maxAttempts - 1),"numMaxDelayRetries":0,"numNoDelayRetries":0,"numMinDelayRetries":0,"backoffFunction":"exponential"},"#
            + #""disableSubscriptionOverrides":false,"defaultRequestPolicy":{"headerContentType":"text/plain; charset=UTF-8"}}}"#
    }()

    public mutating func setTopicAttributes(_ arn: String, name: String, value: String?, changes: inout [NotifierChange]) throws {
        var topic = try existingTopic(arn)
        guard Self.settableAttributes.contains(name) else { throw SNSError.invalid("AttributeName") }
        try Self.set(name, value ?? "", on: &topic)
        topics[arn] = topic
        changes.append(.putTopic(topic))
    }

    static let settableAttributes: Set<String> = ["DisplayName", "Policy"]

    static func attribute(_ key: String, of topic: Topic) -> String? {
        switch key {
        case "DisplayName": return topic.displayName
        case "Policy": return topic.policy
        default: return nil
        }
    }

    static func set(_ key: String, _ value: String, on topic: inout Topic) throws {
        switch key {
        case "DisplayName":
            // AWS: up to 100 characters; it becomes the mail sender's name, so no line breaks either.
            guard value.count <= 100, !value.contains(where: { $0.isNewline }) else { throw SNSError.invalid("DisplayName") }
            topic.displayName = value
        case "Policy":
            if value.isEmpty { topic.policy = nil; return }
            guard let data = value.data(using: .utf8), (try? JSONSerialization.jsonObject(with: data)) is [String: Any] else {
                throw SNSError.invalid("Policy Error: null")
            }
            topic.policy = value
        default:
            throw SNSError.invalid("AttributeName")
        }
    }

    // MARK: Subscriptions

    public func getSubscriptionAttributes(_ arn: String) throws -> [String: String] {
        let s = try existingSubscription(arn)
        return [
            "SubscriptionArn": s.arn, "TopicArn": s.topicArn, "Owner": s.owner, "Protocol": s.deliveryProtocol.rawValue,
            "Endpoint": s.endpoint, "PendingConfirmation": String(!s.confirmed), "ConfirmationWasAuthenticated": String(s.confirmed),
            "RawMessageDelivery": String(s.isRaw),
        ].merging(s.filterPolicy.map { ["FilterPolicy": $0, "FilterPolicyScope": "MessageAttributes"] } ?? [:]) { a, _ in a }
    }

    public mutating func setSubscriptionAttributes(_ arn: String, name: String, value: String?, changes: inout [NotifierChange]) throws {
        var subscription = try existingSubscription(arn)
        try Self.setSubscriptionAttribute(name, value ?? "", on: &subscription)
        let filter = try Self.parsedFilter(subscription)
        subscriptions[arn] = subscription
        filters[arn] = filter
        changes.append(.putSubscription(subscription))
    }

    /// A subscription's filter policy, parsed (and so validated): once when it is set, once per
    /// subscription at restore.
    static func parsedFilter(_ subscription: Subscription) throws -> FilterPolicy? {
        try subscription.filterPolicy.map { try FilterPolicy(json: $0) }
    }

    /// Subscription attributes AWS has and Nimbus does not implement: refused by name rather than
    /// accepted and ignored (a filter policy that filters nothing would deliver what it should not).
    static let unsupportedSubscriptionAttributes: Set<String> = [
        "DeliveryPolicy", "RedrivePolicy", "ReplayPolicy", "SubscriptionRoleArn",
    ]

    static func setSubscriptionAttribute(_ name: String, _ value: String, on subscription: inout Subscription) throws {
        switch name {
        case "RawMessageDelivery":
            guard let raw = Bool(value.lowercased()) else {
                throw SNSError.invalid("Attributes Reason: RawMessageDelivery: Invalid value [\(value)]. Must be true or false.")
            }
            guard !raw || subscription.deliveryProtocol.takesRawDelivery else {
                throw SNSError.invalid("Attributes Reason: Delivery protocol [\(subscription.deliveryProtocol.rawValue)] does not support raw message delivery.")
            }
            subscription.rawMessageDelivery = raw
        case "FilterPolicy":
            // An empty value removes the policy, as in AWS; the callers parse (validate) it.
            subscription.filterPolicy = value.isEmpty ? nil : value
        case "FilterPolicyScope":
            guard value == "MessageAttributes" else {
                throw SNSError.invalid("Attributes Reason: FilterPolicyScope: only MessageAttributes is supported by Nimbus, not [\(value)]")
            }
        case _ where unsupportedSubscriptionAttributes.contains(name):
            throw SNSError.invalid("Attributes Reason: \(name) is not supported by Nimbus (RawMessageDelivery, FilterPolicy are)")
        default:
            throw SNSError.invalid("AttributeName")
        }
    }

    func existingSubscription(_ arn: String) throws -> Subscription {
        guard let parsed = ARN(arn), parsed.service == "sns", parsed.resource.contains(":") else {
            throw SNSError.invalid("SubscriptionArn")
        }
        guard let subscription = subscriptions[arn] else { throw SNSError(.notFound, "Subscription does not exist") }
        return subscription
    }

    /// Subscribe. Answers the subscription's ARN, or "pending confirmation" while the endpoint has to
    /// confirm (unless `returnSubscriptionArn`). Subscribing the same endpoint again answers the
    /// existing subscription; a pending one gets its confirmation message again.
    public mutating func subscribe(topicArn: String, protocol protocolName: String, endpoint: String?, returnSubscriptionArn: Bool = false,
                                   attributes: [String: String] = [:], now: Double, changes: inout [NotifierChange]) throws -> String {
        let topic = try existingTopic(topicArn)
        guard let deliveryProtocol = DeliveryProtocol(rawValue: protocolName.lowercased()) else {
            throw SNSError.invalid("Amazon SNS does not support this protocol string: \(protocolName)")
        }
        guard let endpoint, !endpoint.isEmpty else { throw SNSError.invalid("Endpoint") }
        try Self.validate(endpoint: endpoint, for: deliveryProtocol)
        // The attributes, checked on a blank subscription of this protocol before anything changes.
        var requested = Subscription(arn: "", topicArn: topicArn, deliveryProtocol: deliveryProtocol, endpoint: endpoint, owner: account,
                                     confirmed: false, token: nil, tokenExpiresAt: nil, createdAt: now)
        for (name, value) in attributes.sorted(by: { $0.key < $1.key }) { try Self.setSubscriptionAttribute(name, value, on: &requested) }
        let filter = try Self.parsedFilter(requested)

        if var existing = subscriptions.values.first(where: {
            $0.topicArn == topicArn && $0.deliveryProtocol == deliveryProtocol && $0.endpoint == endpoint
        }) {
            // AWS answers an identical Subscribe with the same subscription, and refuses one that
            // would change it.
            if attributes["RawMessageDelivery"] != nil && requested.isRaw != existing.isRaw
                || attributes["FilterPolicy"] != nil && requested.filterPolicy != existing.filterPolicy {
                throw SNSError.invalid("Attributes Reason: Subscription already exists with different attributes")
            }
            if existing.confirmed { return existing.arn }
            // Send the confirmation again; an expired token is replaced, a live one kept, so a link
            // from the first message keeps working.
            if existing.token == nil || (existing.tokenExpiresAt ?? 0) <= now {
                existing.token = newToken()
            }
            existing.tokenExpiresAt = now + Self.tokenLifetime
            subscriptions[existing.arn] = existing
            changes.append(.putSubscription(existing))
            enqueue(confirmationFor: existing, topic: topic, now: now, changes: &changes)
            return returnSubscriptionArn ? existing.arn : "pending confirmation"
        }

        let confirmNeeded = deliveryProtocol.needsConfirmation
        // The requested subscription, attributes and all, with its identity and confirmation state.
        var subscription = requested
        subscription.arn = "\(topicArn):\(newUUID())"
        subscription.confirmed = !confirmNeeded
        subscription.token = confirmNeeded ? newToken() : nil
        subscription.tokenExpiresAt = confirmNeeded ? now + Self.tokenLifetime : nil
        subscriptions[subscription.arn] = subscription
        filters[subscription.arn] = filter
        changes.append(.putSubscription(subscription))
        if confirmNeeded {
            enqueue(confirmationFor: subscription, topic: topic, now: now, changes: &changes)
            return returnSubscriptionArn ? subscription.arn : "pending confirmation"
        }
        return subscription.arn
    }

    /// ConfirmSubscription: the token from the confirmation message confirms its subscription within
    /// 2 days. Confirming again with the same live token answers the same ARN.
    public mutating func confirmSubscription(topicArn: String, token: String, now: Double, changes: inout [NotifierChange]) throws -> String {
        _ = try existingTopic(topicArn)
        if !token.isEmpty, let unsubscribed = deactivated.values.first(where: { $0.topicArn == topicArn && $0.token == token }) {
            return try restore(unsubscribed, now: now, changes: &changes)
        }
        guard !token.isEmpty,
              var subscription = subscriptions.values.first(where: { $0.topicArn == topicArn && $0.token == token }) else {
            throw SNSError.invalid("Token")
        }
        guard let expiry = subscription.tokenExpiresAt, now < expiry else {
            throw SNSError.invalid("Token Reason: the confirmation token has expired; subscribe again for a new one")
        }
        if !subscription.confirmed {
            subscription.confirmed = true
            subscriptions[subscription.arn] = subscription
            changes.append(.putSubscription(subscription))
        }
        return subscription.arn
    }

    /// Unsubscribe. A confirmed http/https endpoint is then sent an UnsubscribeConfirmation whose
    /// token (or SubscribeURL) restores the subscription within 2 days, as in AWS; until then it is
    /// kept deactivated, seen by no other action.
    public mutating func unsubscribe(_ arn: String, now: Double, changes: inout [NotifierChange]) throws {
        let subscription = try existingSubscription(arn)
        removeSubscription(arn, changes: &changes)
        for stale in deactivated.values where (stale.tokenExpiresAt ?? 0) <= now {
            deactivated.removeValue(forKey: stale.arn)
            changes.append(.deleteSubscription(arn: stale.arn))
        }
        guard subscription.confirmed, subscription.deliveryProtocol == .http || subscription.deliveryProtocol == .https,
              let topic = topics[subscription.topicArn] else { return }
        var kept = subscription
        kept.deactivated = true
        kept.token = newToken()
        kept.tokenExpiresAt = now + Self.tokenLifetime
        deactivated[arn] = kept
        changes.append(.putSubscription(kept))
        let messageId = newUUID()
        let delivery = Delivery(
            id: newUUID(), kind: .unsubscribeConfirmation, messageId: messageId, topicArn: topic.arn, subscriptionArn: arn,
            deliveryProtocol: kept.deliveryProtocol, endpoint: kept.endpoint, subject: "",
            body: NotificationText.unsubscribeConfirmation(messageId: messageId, topicArn: topic.arn, subscriptionArn: arn, token: kept.token!,
                                                           subscribeURL: confirmURL(topicArn: topic.arn, token: kept.token!), timestamp: now),
            senderName: topic.displayName, createdAt: now, dueAt: now)
        put(delivery)
        changes.append(.putDelivery(delivery))
    }

    /// ConfirmSubscription with an UnsubscribeConfirmation's token: the subscription comes back as it
    /// was (ARN, attributes, confirmed). If the endpoint subscribed again meanwhile, that newer
    /// subscription stands and the old one is dropped.
    private mutating func restore(_ unsubscribed: Subscription, now: Double, changes: inout [NotifierChange]) throws -> String {
        guard let expiry = unsubscribed.tokenExpiresAt, now < expiry else {
            throw SNSError.invalid("Token Reason: the token has expired; subscribe again")
        }
        deactivated.removeValue(forKey: unsubscribed.arn)
        if let newer = subscriptions.values.first(where: {
            $0.topicArn == unsubscribed.topicArn && $0.deliveryProtocol == unsubscribed.deliveryProtocol && $0.endpoint == unsubscribed.endpoint
        }) {
            changes.append(.deleteSubscription(arn: unsubscribed.arn))
            return newer.arn
        }
        var subscription = unsubscribed
        subscription.deactivated = nil
        subscription.confirmed = true
        subscriptions[subscription.arn] = subscription
        filters[subscription.arn] = (try? Self.parsedFilter(subscription)) ?? nil
        changes.append(.putSubscription(subscription))
        return subscription.arn
    }

    public func listSubscriptions(nextToken: String?) throws -> (subscriptions: [SubscriptionSummary], nextToken: String?) {
        let page = try Self.page(subscriptions.keys.sorted(), after: nextToken)
        return (page.arns.compactMap { subscriptions[$0].map(Self.summary) }, page.nextToken)
    }

    public func listSubscriptionsByTopic(_ topicArn: String, nextToken: String?) throws
        -> (subscriptions: [SubscriptionSummary], nextToken: String?) {
        _ = try existingTopic(topicArn)
        let arns = subscriptions.values.filter { $0.topicArn == topicArn }.map(\.arn).sorted()
        let page = try Self.page(arns, after: nextToken)
        return (page.arns.compactMap { subscriptions[$0].map(Self.summary) }, page.nextToken)
    }

    static func summary(_ s: Subscription) -> SubscriptionSummary {
        SubscriptionSummary(SubscriptionArn: s.confirmed ? s.arn : "PendingConfirmation", Owner: s.owner,
                            Protocol: s.deliveryProtocol.rawValue, Endpoint: s.endpoint, TopicArn: s.topicArn)
    }

    private mutating func removeSubscription(_ arn: String, changes: inout [NotifierChange]) {
        subscriptions.removeValue(forKey: arn)
        filters.removeValue(forKey: arn)
        changes.append(.deleteSubscription(arn: arn))
        // Nothing more goes to an endpoint that unsubscribed, not even what was already queued.
        for delivery in outbox.values where delivery.subscriptionArn == arn {
            outbox.removeValue(forKey: delivery.id)
            changes.append(.deleteDelivery(id: delivery.id))
        }
    }

    // MARK: Publish

    /// Publish: validates as SNS does, then puts one delivery per confirmed subscription in the
    /// outbox. A repeated deduplication id answers the first MessageId and changes nothing.
    public mutating func publish(topicArn: String?, _ input: PublishInput, now: Double, changes: inout [NotifierChange]) throws -> String {
        guard let topicArn, !topicArn.isEmpty else {
            throw SNSError.invalid("TopicArn or TargetArn Reason: no value for required parameter")
        }
        let topic = try existingTopic(topicArn)
        let message = try Self.validate(input)
        let dedupeKey = input.deduplicationId.map { "\(topicArn)\n\($0)" }
        if let dedupeKey, let seen = dedupe[dedupeKey], seen.expiresAt > now { return seen.messageId }

        let messageId = newUUID()
        for subscription in subscriptions.values.sorted(by: { $0.arn < $1.arn })
        where subscription.topicArn == topicArn && subscription.confirmed && filters[subscription.arn]?.matches(input.messageAttributes ?? [:]) != false {
            let text = message.text(for: subscription.deliveryProtocol)
            let raw = subscription.isRaw && subscription.deliveryProtocol.takesRawDelivery
            let delivery = Delivery(
                id: newUUID(), kind: .notification, messageId: messageId, topicArn: topicArn, subscriptionArn: subscription.arn,
                deliveryProtocol: subscription.deliveryProtocol, endpoint: subscription.endpoint,
                subject: input.subject ?? Self.defaultSubject,
                body: raw ? text : NotificationText.notification(
                    protocol: subscription.deliveryProtocol, messageId: messageId, topicArn: topicArn, subject: input.subject, message: text,
                    attributes: input.messageAttributes ?? [:], timestamp: now, unsubscribeURL: unsubscribeURL(subscription.arn)),
                senderName: topic.displayName, createdAt: now, dueAt: now, raw: raw ? true : nil,
                messageAttributes: raw && subscription.deliveryProtocol == .sqs ? input.messageAttributes.flatMap { $0.isEmpty ? nil : $0 } : nil)
            put(delivery)
            changes.append(.putDelivery(delivery))
        }
        if let dedupeKey { remember(dedupeKey, messageId: messageId, now: now, changes: &changes) }
        return messageId
    }

    /// PublishBatch: up to 10 entries with distinct ids; each succeeds or fails on its own.
    public mutating func publishBatch(topicArn: String?, entries: [PublishBatchEntry], now: Double,
                                      changes: inout [NotifierChange]) throws -> PublishBatchResult {
        guard let topicArn, !topicArn.isEmpty else { throw SNSError.invalid("TopicArn Reason: no value for required parameter") }
        _ = try existingTopic(topicArn)
        if entries.isEmpty { throw SNSError(.emptyBatchRequest, "The batch request doesn't contain any entries.") }
        if entries.count > 10 {
            throw SNSError(.tooManyEntriesInBatchRequest, "The batch request contains more entries than permissible (10).")
        }
        var ids: Set<String> = []
        for entry in entries {
            guard (1...80).contains(entry.Id.count), entry.Id.allSatisfy(Self.isNameCharacter) else {
                throw SNSError(.invalidBatchEntryId, "The Id of a batch entry in a batch request doesn't abide by the specification.")
            }
            guard ids.insert(entry.Id).inserted else {
                throw SNSError(.batchEntryIdsNotDistinct, "Two or more batch entries in the request have the same Id.")
            }
        }
        let total = entries.reduce(0) { $0 + ($1.Message?.utf8.count ?? 0) }
        if total > Self.maxMessageBytes { throw SNSError.invalid("The length of all the batch messages put together is more than the limit.") }
        var result = PublishBatchResult(Successful: [], Failed: [])
        for entry in entries {
            do {
                let id = try publish(topicArn: topicArn, entry.input, now: now, changes: &changes)
                result.Successful.append(PublishBatchResultEntry(Id: entry.Id, MessageId: id))
            } catch let error as SNSError {
                result.Failed.append(BatchResultErrorEntry(Id: entry.Id, Code: error.code, Message: error.message, SenderFault: true))
            }
        }
        return result
    }

    /// A validated message: what each protocol gets.
    struct ValidatedMessage {
        var defaultText: String
        var perProtocol: [String: String]
        func text(for deliveryProtocol: DeliveryProtocol) -> String { perProtocol[deliveryProtocol.rawValue] ?? defaultText }
    }

    static func validate(_ input: PublishInput) throws -> ValidatedMessage {
        guard let message = input.message else { throw SNSError.invalid("Message Reason: no value for required parameter") }
        if message.isEmpty { throw SNSError.invalid("Empty message") }
        if message.utf8.count > maxMessageBytes { throw SNSError.invalid("Message too long") }
        if let subject = input.subject {
            // AWS: 1-100 characters, no line breaks or control characters.
            if subject.isEmpty || subject.count > 100 { throw SNSError.invalid("Subject Reason: must be 1-100 characters") }
            if subject.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                throw SNSError.invalid("Subject Reason: must not contain line breaks or control characters")
            }
        }
        try validate(attributes: input.messageAttributes ?? [:])
        switch input.messageStructure {
        case nil:
            return ValidatedMessage(defaultText: message, perProtocol: [:])
        case "json":
            // The usual message (the lab's {"default": ...}) is strings only: read without Foundation.
            if let members = StringJSON.parse(Data(message.utf8))?.members(allowed: Self.messageStructureKeys),
               let defaultText = members["default"]?.string, members.values.allSatisfy({ $0.string != nil }) {
                var perProtocol: [String: String] = [:]
                for p in DeliveryProtocol.allCases { perProtocol[p.rawValue] = members[p.rawValue]?.string }
                return ValidatedMessage(defaultText: defaultText, perProtocol: perProtocol)
            }
            guard let data = message.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data) else {
                throw SNSError.invalid("Message Structure - JSON message body failed to parse")
            }
            guard let map = object as? [String: Any] else {
                throw SNSError.invalid("Message Structure - JSON message body must be a JSON object")
            }
            guard let defaultText = map["default"] as? String else {
                throw SNSError.invalid("Message Structure - No default entry in JSON message body")
            }
            var perProtocol: [String: String] = [:]
            for p in DeliveryProtocol.allCases {
                guard let value = map[p.rawValue] else { continue }
                guard let text = value as? String else {
                    throw SNSError.invalid("Message Structure - the \"\(p.rawValue)\" entry must be a string")
                }
                perProtocol[p.rawValue] = text
            }
            return ValidatedMessage(defaultText: defaultText, perProtocol: perProtocol)
        case let other?:
            throw SNSError.invalid("MessageStructure Reason: must be \"json\", not \"\(other)\"")
        }
    }

    static let messageStructureKeys: Set<String> = Set(["default"] + DeliveryProtocol.allCases.map(\.rawValue))

    static func validate(attributes: [String: MessageAttributeValue]) throws {
        if attributes.count > 10 { throw SNSError.invalid("MessageAttributes Reason: at most 10 message attributes") }
        for (name, value) in attributes {
            guard (1...256).contains(name.count), !name.hasPrefix("AWS."), !name.hasPrefix("Amazon."),
                  name.allSatisfy({ $0.isLetter || $0.isNumber || "_-.".contains($0) }) else {
                throw SNSError.invalid("The message attribute '\(name)' has an invalid message attribute name")
            }
            let base = value.DataType.split(separator: ".", maxSplits: 1).first.map(String.init) ?? ""
            switch base {
            case "String", "Number":
                guard let s = value.StringValue else {
                    throw SNSError.invalid("The message attribute '\(name)' must contain non-empty message attribute value for message attribute type '\(base)'.")
                }
                if base == "Number", Double(s) == nil {
                    throw SNSError.invalid("Could not cast message attribute '\(name)' value to number.")
                }
            case "Binary":
                guard value.BinaryValue != nil else {
                    throw SNSError.invalid("The message attribute '\(name)' must contain non-empty message attribute value for message attribute type 'Binary'.")
                }
            default:
                throw SNSError.invalid("The message attribute '\(name)' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String.")
            }
        }
    }

    private mutating func remember(_ key: String, messageId: String, now: Double, changes: inout [NotifierChange]) {
        if dedupe.count >= maxDedupeKeys {
            expireDedupe(now: now, changes: &changes)
            // Still full of live keys: forget the oldest ones rather than grow without bound.
            if dedupe.count >= maxDedupeKeys {
                let oldest = dedupe.values.sorted { $0.expiresAt < $1.expiresAt }.prefix(dedupe.count - maxDedupeKeys + 1)
                for entry in oldest {
                    dedupe.removeValue(forKey: entry.key)
                    changes.append(.deleteDedupe(key: entry.key))
                }
            }
        }
        let entry = DedupeEntry(key: key, messageId: messageId, expiresAt: now + Self.dedupeWindow)
        dedupe[key] = entry
        changes.append(.putDedupe(entry))
    }

    /// Forgets idempotency keys older than the window (the shell calls it now and then).
    public mutating func expireDedupe(now: Double, changes: inout [NotifierChange]) {
        for entry in dedupe.values where entry.expiresAt <= now {
            dedupe.removeValue(forKey: entry.key)
            changes.append(.deleteDedupe(key: entry.key))
        }
    }

    public var dedupeKeyCount: Int { dedupe.count }

    // MARK: Deliveries

    /// Into the outbox, and into the due order.
    private mutating func put(_ delivery: Delivery) {
        outbox[delivery.id] = delivery
        dueOrder[delivery.deliveryProtocol.lane.rawValue].insert(DueKey(delivery))
    }

    /// Hands out up to `limit` deliveries of `lane` due at `now`, oldest first. Each counts as being
    /// sent until `deliverySucceeded` or `deliveryFailed` reports on it, and is not handed out again
    /// before that. Those in `notYet` stay in the outbox for a later call: the shell names the
    /// deliveries whose outbox rows are not durable yet, so nothing is sent that a crash could make
    /// the notifier forget it sent.
    public mutating func takeDue(now: Double, limit: Int, lane: DeliveryLane, notYet: Set<String> = []) -> [Delivery] {
        var due: [Delivery] = []
        var held: [DueKey] = []
        defer { for key in held { dueOrder[lane.rawValue].insert(key) } }
        while due.count < limit, let top = nextValid(lane, notYet: notYet, held: &held), top.dueAt <= now {
            dueOrder[lane.rawValue].removeMin()
            handedOut.insert(top.id)
            due.append(outbox[top.id]!)
        }
        return due
    }

    /// When the next delivery of `lane` not handed out (nor in `notYet`) falls due, if any.
    public mutating func nextDueAt(lane: DeliveryLane, notYet: Set<String> = []) -> Double? {
        var held: [DueKey] = []
        defer { for key in held { dueOrder[lane.rawValue].insert(key) } }
        return nextValid(lane, notYet: notYet, held: &held)?.dueAt
    }

    /// The top of `lane`'s due order once it can be handed out: stale entries on the way are
    /// dropped, and those in `notYet` set aside in `held` (the caller puts them back).
    private mutating func nextValid(_ lane: DeliveryLane, notYet: Set<String>, held: inout [DueKey]) -> DueKey? {
        while let top = dueOrder[lane.rawValue].min {
            guard let delivery = outbox[top.id], delivery.dueAt == top.dueAt, !handedOut.contains(top.id) else {
                dueOrder[lane.rawValue].removeMin()  // stale
                continue
            }
            guard !notYet.contains(top.id) else {
                dueOrder[lane.rawValue].removeMin()
                held.append(top)
                continue
            }
            return top
        }
        return nil
    }

    /// The endpoint took the delivery: it leaves the outbox and goes into the log.
    public mutating func deliverySucceeded(_ id: String, now: Double, changes: inout [NotifierChange]) {
        handedOut.remove(id)
        guard let delivery = outbox.removeValue(forKey: id) else { return }
        deliveredCount += 1
        changes.append(.deleteDelivery(id: id))
        changes.append(.logOutcome(outcome(delivery, delivered: true, attempts: delivery.attempts + 1, now: now, error: nil)))
    }

    /// An attempt failed: the delivery is due again after the protocol's backoff, or is given up
    /// (logged as failed) when the policy says so. Returns true when it was given up.
    @discardableResult
    /// `permanent`: the endpoint refused for good (an SMTP 5xx for the recipient): no retry.
    public mutating func deliveryFailed(_ id: String, error: String, permanent: Bool = false, now: Double,
                                        changes: inout [NotifierChange]) -> Bool {
        handedOut.remove(id)
        guard var delivery = outbox[id] else { return false }
        delivery.attempts += 1
        delivery.lastError = error
        let policy = RetryPolicy.forProtocol(delivery.deliveryProtocol)
        if !permanent, let next = policy.nextAttempt(afterFailures: delivery.attempts, createdAt: delivery.createdAt, now: now) {
            delivery.dueAt = next
            put(delivery)
            changes.append(.putDelivery(delivery))
            return false
        }
        outbox.removeValue(forKey: id)
        failedCount += 1
        changes.append(.deleteDelivery(id: id))
        changes.append(.logOutcome(outcome(delivery, delivered: false, attempts: delivery.attempts, now: now, error: error)))
        return true
    }

    private func outcome(_ d: Delivery, delivered: Bool, attempts: Int, now: Double, error: String?) -> DeliveryOutcome {
        DeliveryOutcome(deliveryId: d.id, messageId: d.messageId, subscriptionArn: d.subscriptionArn, deliveryProtocol: d.deliveryProtocol,
                        endpoint: d.endpoint, delivered: delivered, attempts: attempts, at: now, error: error)
    }

    private mutating func enqueue(confirmationFor subscription: Subscription, topic: Topic, now: Double, changes: inout [NotifierChange]) {
        guard let token = subscription.token else { return }
        let messageId = newUUID()
        let subscribeURL = confirmURL(topicArn: topic.arn, token: token)
        let delivery = Delivery(
            id: newUUID(), kind: .subscriptionConfirmation, messageId: messageId, topicArn: topic.arn, subscriptionArn: subscription.arn,
            deliveryProtocol: subscription.deliveryProtocol, endpoint: subscription.endpoint,
            subject: "AWS Notification - Subscription Confirmation",
            body: NotificationText.confirmation(protocol: subscription.deliveryProtocol, messageId: messageId, topicArn: topic.arn,
                                                token: token, subscribeURL: subscribeURL, timestamp: now),
            senderName: topic.displayName, createdAt: now, dueAt: now)
        put(delivery)
        changes.append(.putDelivery(delivery))
    }

    // MARK: Links and ids

    public func confirmURL(topicArn: String, token: String) -> String {
        "\(publicBaseURL)/sns/confirm?TopicArn=\(Self.queryEscape(topicArn))&Token=\(Self.queryEscape(token))"
    }

    public func unsubscribeURL(_ subscriptionArn: String) -> String {
        "\(publicBaseURL)/sns/unsubscribe?SubscriptionArn=\(Self.queryEscape(subscriptionArn))"
    }

    /// Percent-encodes all but RFC 3986's unreserved characters (ASCII letters, digits, `-._~`).
    static func queryEscape(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count * 2)
        for byte in text.utf8 {
            switch byte {
            case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2D, 0x2E, 0x5F, 0x7E: out.append(byte)
            default: out.append(contentsOf: [0x25, hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A confirmation token: 256 random bits in hex (AWS's are long opaque strings too).
    mutating func newToken() -> String {
        (0..<4).map { _ in
            let hex = String(entropy(), radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }

    /// A random (version 4) UUID from the injected entropy.
    func newUUID() -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        for half in 0..<2 {
            var word = entropy()
            for i in 0..<8 { bytes[half * 8 + i] = UInt8(truncatingIfNeeded: word); word >>= 8 }
        }
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let uuid = UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                               bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
        return uuid.uuidString.lowercased()
    }

    // MARK: Validation helpers

    static func isNameCharacter(_ c: Character) -> Bool {
        c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == "_")
    }

    static func validateTopicArn(_ arn: String) throws {
        guard let parsed = ARN(arn), parsed.service == "sns", !parsed.resource.isEmpty, !parsed.resource.contains(":") else {
            throw SNSError.invalid("TopicArn")
        }
    }

    func existingTopic(_ arn: String) throws -> Topic {
        try Self.validateTopicArn(arn)
        guard let topic = topics[arn] else { throw SNSError(.notFound, "Topic does not exist") }
        return topic
    }

    static func validate(endpoint: String, for deliveryProtocol: DeliveryProtocol) throws {
        switch deliveryProtocol {
        case .email, .emailJSON:
            guard isEmailAddress(endpoint) else { throw SNSError.invalid("Email address") }
        case .http, .https:
            guard let url = URL(string: endpoint), url.scheme?.lowercased() == deliveryProtocol.rawValue,
                  let host = url.host, !host.isEmpty else {
                throw SNSError.invalid("Endpoint Reason: must be an \(deliveryProtocol.rawValue):// URL")
            }
        case .sqs:
            guard let arn = ARN(endpoint), arn.service == "sqs", !arn.region.isEmpty, arn.account.count == 12,
                  arn.account.allSatisfy(\.isNumber), (1...80).contains(arn.resource.count),
                  arn.resource.allSatisfy(isNameCharacter) || (arn.resource.hasSuffix(".fifo") && arn.resource.dropLast(5).allSatisfy(isNameCharacter)) else {
                throw SNSError.invalid("SQS endpoint ARN")
            }
        }
    }

    /// Deliberately plain: local@domain, no spaces or controls, a domain of letters, digits, dots
    /// and hyphens (what an SMTP RCPT TO will take without quoting).
    static func isEmailAddress(_ text: String) -> Bool {
        guard text.count <= 254 else { return false }
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, let local = parts.first, let domain = parts.last, !local.isEmpty, local.count <= 64, !domain.isEmpty else {
            return false
        }
        let localOK = local.allSatisfy { $0.isASCII && !$0.isWhitespace && $0 != "<" && $0 != ">" && $0 != "," && !$0.isNewline && $0.asciiValue! >= 33 }
        let domainOK = domain.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") }
            && !domain.hasPrefix(".") && !domain.hasSuffix(".") && !domain.contains("..")
        return localOK && domainOK
    }

    /// Pages of 100 by the last ARN of the previous page (the token is that ARN).
    static func page(_ sorted: [String], after token: String?) throws -> (arns: [String], nextToken: String?) {
        var start = 0
        if let token, !token.isEmpty {
            guard let decoded = Data(base64Encoded: token).flatMap({ String(data: $0, encoding: .utf8) }) else {
                throw SNSError.invalid("NextToken")
            }
            start = sorted.firstIndex { $0 > decoded } ?? sorted.count
        }
        let end = min(sorted.count, start + pageSize)
        let slice = Array(sorted[start..<end])
        let next = end < sorted.count ? slice.last.map { Data($0.utf8).base64EncodedString() } : nil
        return (slice, next)
    }
}
