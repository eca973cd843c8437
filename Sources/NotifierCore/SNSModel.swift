import Foundation
import NimbusProtocol

/// An SNS topic as the notifier keeps it.
public struct Topic: Codable, Sendable, Equatable {
    public var name: String
    public var arn: String
    public var displayName: String
    /// The access policy document, as JSON text; nil until someone sets one.
    public var policy: String?
    public var createdAt: Double

    public init(name: String, arn: String, displayName: String = "", policy: String? = nil, createdAt: Double) {
        self.name = name
        self.arn = arn
        self.displayName = displayName
        self.policy = policy
        self.createdAt = createdAt
    }
}

/// Deliveries go out in two lanes that never wait for each other: mail, over SMTP to a relay that
/// may be slow (or hang until a timeout), and everything else (queues, HTTP endpoints).
public enum DeliveryLane: Int, Sendable, CaseIterable {
    case mail = 0
    case other = 1
}

/// The protocols a subscription may use.
public enum DeliveryProtocol: String, Codable, Sendable, CaseIterable {
    case email
    case emailJSON = "email-json"
    case http
    case https
    case sqs

    /// Whether the endpoint's owner must confirm first (SNS trusts only its own account's queues).
    public var needsConfirmation: Bool { self != .sqs }

    /// The delivery lane its deliveries go out in.
    public var lane: DeliveryLane { self == .email || self == .emailJSON ? .mail : .other }

    /// Whether RawMessageDelivery may be set (AWS: sqs, http(s) and firehose; not email).
    public var takesRawDelivery: Bool { self == .sqs || self == .http || self == .https }
}

/// One subscription. Its ARN exists from the start (AWS shows "pending confirmation" in its place
/// until it is confirmed, unless ReturnSubscriptionArn is set).
public struct Subscription: Codable, Sendable, Equatable {
    public var arn: String
    public var topicArn: String
    public var deliveryProtocol: DeliveryProtocol
    public var endpoint: String
    public var owner: String
    public var confirmed: Bool
    /// The confirmation token and when it stops being accepted (2 days after it was issued). Kept
    /// after confirmation so a second click on the same link still answers with the subscription.
    public var token: String?
    public var tokenExpiresAt: Double?
    public var createdAt: Double
    /// The RawMessageDelivery attribute: an sqs or http(s) endpoint gets the message itself instead
    /// of SNS's JSON document. Optional so that subscriptions stored before it existed still load.
    public var rawMessageDelivery: Bool?
    /// The FilterPolicy attribute's JSON text (scope: message attributes); nil: everything is delivered.
    public var filterPolicy: String?
    /// An http/https subscription that was unsubscribed: kept, invisible to every action, until its
    /// UnsubscribeConfirmation's token restores it (ConfirmSubscription) or expires. nil: live.
    public var deactivated: Bool?

    public var isRaw: Bool { rawMessageDelivery ?? false }

    public init(arn: String, topicArn: String, deliveryProtocol: DeliveryProtocol, endpoint: String, owner: String, confirmed: Bool,
                token: String?, tokenExpiresAt: Double?, createdAt: Double, rawMessageDelivery: Bool? = nil) {
        self.rawMessageDelivery = rawMessageDelivery
        self.arn = arn
        self.topicArn = topicArn
        self.deliveryProtocol = deliveryProtocol
        self.endpoint = endpoint
        self.owner = owner
        self.confirmed = confirmed
        self.token = token
        self.tokenExpiresAt = tokenExpiresAt
        self.createdAt = createdAt
    }
}

/// One message on its way to one endpoint: a row of the outbox until it is delivered or given up.
public struct Delivery: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case notification = "Notification"
        case subscriptionConfirmation = "SubscriptionConfirmation"
        /// To an http/https endpoint after it was unsubscribed, with a token that restores it.
        case unsubscribeConfirmation = "UnsubscribeConfirmation"
    }

    public var id: String
    public var kind: Kind
    public var messageId: String
    public var topicArn: String
    public var subscriptionArn: String
    public var deliveryProtocol: DeliveryProtocol
    public var endpoint: String
    /// Email subject line (email and email-json); the message's Subject or SNS's default.
    public var subject: String
    /// What goes to the endpoint: the mail text (email) or the SNS JSON document (everything else).
    public var body: String
    /// The topic's DisplayName when it has one: the email sender's name.
    public var senderName: String
    /// Failed attempts so far.
    public var attempts: Int
    public var createdAt: Double
    /// When the next attempt may start.
    public var dueAt: Double
    public var lastError: String?
    /// The body is the raw message (RawMessageDelivery), not SNS's JSON document; nil: false.
    public var raw: Bool?
    /// A raw delivery's message attributes, which a queue receives as its message's attributes
    /// (SNS's document carries them inside otherwise).
    public var messageAttributes: [String: MessageAttributeValue]?

    public init(id: String, kind: Kind, messageId: String, topicArn: String, subscriptionArn: String, deliveryProtocol: DeliveryProtocol,
                endpoint: String, subject: String, body: String, senderName: String, attempts: Int = 0, createdAt: Double, dueAt: Double,
                lastError: String? = nil, raw: Bool? = nil, messageAttributes: [String: MessageAttributeValue]? = nil) {
        self.raw = raw
        self.messageAttributes = messageAttributes
        self.id = id
        self.kind = kind
        self.messageId = messageId
        self.topicArn = topicArn
        self.subscriptionArn = subscriptionArn
        self.deliveryProtocol = deliveryProtocol
        self.endpoint = endpoint
        self.subject = subject
        self.body = body
        self.senderName = senderName
        self.attempts = attempts
        self.createdAt = createdAt
        self.dueAt = dueAt
        self.lastError = lastError
    }
}

extension Delivery {
    /// The outbox row's JSON, written by hand (every publish writes one per subscriber, and
    /// JSONEncoder was a tenth of the notifier's CPU); JSONDecoder reads it back as `Delivery`.
    public func jsonData() -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(256 + body.utf8.count)
        func field(_ name: StaticString, _ value: String, first: Bool = false) {
            if !first { out.append(0x2C) }
            out.append(0x22)
            JSONText.append(name, to: &out)
            JSONText.append("\":", to: &out)
            JSONText.appendString(value, to: &out)
        }
        func number(_ name: StaticString, _ value: String) {
            out.append(0x2C)
            out.append(0x22)
            JSONText.append(name, to: &out)
            JSONText.append("\":", to: &out)
            out.append(contentsOf: value.utf8)
        }
        out.append(0x7B)
        field("id", id, first: true)
        field("kind", kind.rawValue)
        field("messageId", messageId)
        field("topicArn", topicArn)
        field("subscriptionArn", subscriptionArn)
        field("deliveryProtocol", deliveryProtocol.rawValue)
        field("endpoint", endpoint)
        field("subject", subject)
        field("body", body)
        field("senderName", senderName)
        number("attempts", String(attempts))
        // Swift's description of a Double is the shortest text that reads back as the same value.
        number("createdAt", "\(createdAt)")
        number("dueAt", "\(dueAt)")
        if let lastError { field("lastError", lastError) }
        if raw == true { JSONText.append(",\"raw\":true", to: &out) }
        if let messageAttributes, let encoded = try? JSONEncoder().encode(messageAttributes) {
            // Rare (raw delivery with attributes): the general encoder is fine here.
            JSONText.append(",\"messageAttributes\":", to: &out)
            out.append(contentsOf: encoded)
        }
        out.append(0x7D)
        return Data(out)
    }
}

/// How a delivery ended, for the delivery log.
public struct DeliveryOutcome: Codable, Sendable, Equatable {
    public var deliveryId: String
    public var messageId: String
    public var subscriptionArn: String
    public var deliveryProtocol: DeliveryProtocol
    public var endpoint: String
    public var delivered: Bool
    public var attempts: Int
    public var at: Double
    public var error: String?
}

/// A remembered Publish idempotency key.
public struct DedupeEntry: Codable, Sendable, Equatable {
    public var key: String
    public var messageId: String
    public var expiresAt: Double

    public init(key: String, messageId: String, expiresAt: Double) {
        self.key = key
        self.messageId = messageId
        self.expiresAt = expiresAt
    }
}

/// What the shell must make durable, in order, before answering.
public enum NotifierChange: Sendable, Equatable {
    case putTopic(Topic)
    case deleteTopic(arn: String)
    case putSubscription(Subscription)
    case deleteSubscription(arn: String)
    case putDelivery(Delivery)
    /// The delivery left the outbox (delivered, given up, or its subscription went away).
    case deleteDelivery(id: String)
    case logOutcome(DeliveryOutcome)
    case putDedupe(DedupeEntry)
    case deleteDedupe(key: String)
}

/// An SNS error, in SNS's codes; the runtime answers it as `{"code", "message"}`.
public struct SNSError: ServiceError, Equatable, Sendable, CustomStringConvertible {
    public var code: String
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code.rawValue
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    public enum Code: String, Sendable {
        case invalidParameter = "InvalidParameter"
        case notFound = "NotFound"
        case tooManyEntriesInBatchRequest = "TooManyEntriesInBatchRequest"
        case emptyBatchRequest = "EmptyBatchRequest"
        case batchEntryIdsNotDistinct = "BatchEntryIdsNotDistinct"
        case invalidBatchEntryId = "InvalidBatchEntryId"
    }

    static func invalid(_ what: String) -> SNSError { SNSError(.invalidParameter, "Invalid parameter: \(what)") }
}

/// When to try a failing delivery again, and when to stop: exponential backoff from
/// `initialDelay`, doubling up to `maxDelay`, until `maxAttempts` attempts or `maxAge` seconds
/// after the delivery was made, whichever comes first.
public struct RetryPolicy: Sendable, Equatable {
    public var initialDelay: Double
    public var maxDelay: Double
    public var maxAttempts: Int
    public var maxAge: Double

    public init(initialDelay: Double, maxDelay: Double, maxAttempts: Int, maxAge: Double) {
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.maxAttempts = maxAttempts
        self.maxAge = maxAge
    }

    /// Per protocol. Mail and queues are ours to keep trying for a day (an SMTP server or the queue
    /// broker being down for a while is normal); HTTP endpoints get AWS's default of 3 retries, but
    /// with a doubling delay instead of a flat 20 s.
    public static func forProtocol(_ deliveryProtocol: DeliveryProtocol) -> RetryPolicy {
        switch deliveryProtocol {
        case .email, .emailJSON: return RetryPolicy(initialDelay: 1, maxDelay: 60, maxAttempts: 2_000, maxAge: 86_400)
        case .sqs: return RetryPolicy(initialDelay: 1, maxDelay: 20, maxAttempts: 10_000, maxAge: 86_400)
        case .http, .https: return RetryPolicy(initialDelay: 1, maxDelay: 20, maxAttempts: 4, maxAge: 3_600)
        }
    }

    /// The delay before the next attempt after `failures` failed ones (1 s, 2 s, 4 s, ... capped).
    public func delay(afterFailures failures: Int) -> Double {
        guard failures > 0 else { return 0 }
        let exponent = min(failures - 1, 62)
        return min(maxDelay, initialDelay * pow(2, Double(exponent)))
    }

    /// When the next attempt is due after `failures` failed ones, or nil to give up.
    public func nextAttempt(afterFailures failures: Int, createdAt: Double, now: Double) -> Double? {
        if failures >= maxAttempts { return nil }
        let next = now + delay(afterFailures: failures)
        if next - createdAt > maxAge { return nil }
        return next
    }
}
