import Foundation
import NotifierCore
import NimbusProtocol

// Request and response bodies in SNS's JSON shapes (botocore's field names).

struct CreateTopicRequest: Decodable {
    var Name: String
    var Attributes: [String: String]?
}

struct TopicArnRequest: Decodable {
    var TopicArn: String
}

struct TopicArnResponse: Encodable {
    var TopicArn: String
}

struct NextTokenRequest: Decodable {
    var NextToken: String?
}

struct ListTopicsResponse: Encodable {
    struct Entry: Encodable { var TopicArn: String }
    var Topics: [Entry]
    var NextToken: String?
}

struct AttributesResponse: Encodable {
    var Attributes: [String: String]
}

struct SetTopicAttributesRequest: Decodable {
    var TopicArn: String
    var AttributeName: String
    var AttributeValue: String?
}

struct SubscribeRequest: Decodable {
    var TopicArn: String
    var `Protocol`: String
    var Endpoint: String?
    var ReturnSubscriptionArn: Bool?
    var Attributes: [String: String]?
}

struct SubscriptionArnResponse: Encodable {
    var SubscriptionArn: String
}

struct ConfirmSubscriptionRequest: Decodable {
    var TopicArn: String
    var Token: String
    var AuthenticateOnUnsubscribe: String?
}

struct SubscriptionArnRequest: Decodable {
    var SubscriptionArn: String
}

struct SetSubscriptionAttributesRequest: Decodable {
    var SubscriptionArn: String
    var AttributeName: String
    var AttributeValue: String?
}

struct ListSubscriptionsByTopicRequest: Decodable {
    var TopicArn: String
    var NextToken: String?
}

struct ListSubscriptionsResponse: Encodable {
    var Subscriptions: [SubscriptionSummary]
    var NextToken: String?
}

struct PublishRequest: Decodable {
    /// Either TopicArn or TargetArn (the lab's Lambda uses TargetArn); PhoneNumber is not supported.
    var TopicArn: String?
    var TargetArn: String?
    var PhoneNumber: String?
    var Message: String?
    var Subject: String?
    var MessageStructure: String?
    var MessageAttributes: [String: MessageAttributeValue]?
    /// Nimbus extension: an idempotency key (24 h).
    var MessageDeduplicationId: String?
}

struct PublishResponse: Encodable {
    var MessageId: String
}

struct PublishBatchRequest: Decodable {
    var TopicArn: String
    var PublishBatchRequestEntries: [PublishBatchEntry]

    /// A batch whose entries are strings only (what the stream worker sends for every few orders),
    /// read by the strict reader; nil for anything else, which JSONDecoder then reads (and whose
    /// errors it words).
    static func fast(_ data: Data) -> PublishBatchRequest? {
        guard let m = StringJSON.parse(data)?.members(allowed: ["TopicArn", "PublishBatchRequestEntries"]),
              let topic = m["TopicArn"]?.string, let items = m["PublishBatchRequestEntries"]?.array else { return nil }
        var entries: [PublishBatchEntry] = []
        entries.reserveCapacity(items.count)
        for item in items {
            guard let e = item.members(allowed: ["Id", "Message", "Subject", "MessageStructure", "MessageDeduplicationId"]),
                  let id = e["Id"]?.string else { return nil }
            var strings: [String?] = []
            for key in ["Message", "Subject", "MessageStructure", "MessageDeduplicationId"] {
                guard let value = e[key] else { strings.append(nil); continue }
                guard let text = value.string else { return nil }
                strings.append(text)
            }
            entries.append(PublishBatchEntry(Id: id, Message: strings[0], Subject: strings[1], MessageStructure: strings[2],
                                             MessageDeduplicationId: strings[3]))
        }
        return PublishBatchRequest(TopicArn: topic, PublishBatchRequestEntries: entries)
    }
}
