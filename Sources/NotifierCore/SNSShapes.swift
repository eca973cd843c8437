import Foundation
import NimbusProtocol

/// What Publish (and each PublishBatch entry) asks for, before validation.
public struct PublishInput: Sendable, Equatable {
    public var message: String?
    public var subject: String?
    public var messageStructure: String?
    public var messageAttributes: [String: MessageAttributeValue]?
    /// Nimbus extension: an idempotency key. A second Publish to the same topic with the same key
    /// (within `SNSTopics.dedupeWindow`) is answered with the first one's MessageId and delivers nothing.
    public var deduplicationId: String?

    public init(message: String?, subject: String? = nil, messageStructure: String? = nil,
                messageAttributes: [String: MessageAttributeValue]? = nil, deduplicationId: String? = nil) {
        self.message = message
        self.subject = subject
        self.messageStructure = messageStructure
        self.messageAttributes = messageAttributes
        self.deduplicationId = deduplicationId
    }
}

/// A PublishBatch entry as the request carries it.
public struct PublishBatchEntry: Codable, Sendable, Equatable {
    public var Id: String
    public var Message: String?
    public var Subject: String?
    public var MessageStructure: String?
    public var MessageAttributes: [String: MessageAttributeValue]?
    public var MessageDeduplicationId: String?

    public init(Id: String, Message: String?, Subject: String? = nil, MessageStructure: String? = nil,
                MessageAttributes: [String: MessageAttributeValue]? = nil, MessageDeduplicationId: String? = nil) {
        self.Id = Id
        self.Message = Message
        self.Subject = Subject
        self.MessageStructure = MessageStructure
        self.MessageAttributes = MessageAttributes
        self.MessageDeduplicationId = MessageDeduplicationId
    }

    var input: PublishInput {
        PublishInput(message: Message, subject: Subject, messageStructure: MessageStructure, messageAttributes: MessageAttributes,
                     deduplicationId: MessageDeduplicationId)
    }
}

public struct PublishBatchResultEntry: Codable, Sendable, Equatable {
    public var Id: String
    public var MessageId: String
}

public struct BatchResultErrorEntry: Codable, Sendable, Equatable {
    public var Id: String
    public var Code: String
    public var Message: String
    public var SenderFault: Bool
}

public struct PublishBatchResult: Codable, Sendable, Equatable {
    public var Successful: [PublishBatchResultEntry]
    public var Failed: [BatchResultErrorEntry]
}

/// A subscription as the List* actions show it.
public struct SubscriptionSummary: Codable, Sendable, Equatable {
    public var SubscriptionArn: String
    public var Owner: String
    public var `Protocol`: String
    public var Endpoint: String
    public var TopicArn: String
}
