import Foundation
import NimbusProtocol

/// A queue's configurable attributes, with SQS's defaults and ranges.
public struct QueueAttributes: Codable, Equatable, Sendable {
    public var visibilityTimeout = 30
    public var messageRetentionPeriod = 345_600
    public var maximumMessageSize = 1_048_576
    public var delaySeconds = 0
    public var receiveMessageWaitTimeSeconds = 0
    public var redrivePolicy: RedrivePolicy?
    /// The queue's access policy (JSON text), enforced once IAM lands.
    public var policy: String?

    public init() {}

    public struct RedrivePolicy: Codable, Equatable, Sendable {
        public var deadLetterTargetArn: String
        public var maxReceiveCount: Int
    }

    /// The attribute names SetQueueAttributes/CreateQueue accept, with their valid ranges.
    static let ranges: [String: ClosedRange<Int>] = [
        "VisibilityTimeout": 0...43_200,
        "MessageRetentionPeriod": 60...1_209_600,
        "MaximumMessageSize": 1_024...1_048_576,
        "DelaySeconds": 0...900,
        "ReceiveMessageWaitTimeSeconds": 0...20,
    ]

    /// Applies attributes as SQS's API spells them (all values are strings).
    mutating func apply(_ values: [String: String]) throws(QueueError) {
        for (name, text) in values.sorted(by: { $0.key < $1.key }) {
            if let range = Self.ranges[name] {
                guard let value = Int(text), range.contains(value) else {
                    throw QueueError(.invalidParameterValue,
                                     "Invalid value for the parameter \(name): \(text) is not an integer in \(range.lowerBound)..\(range.upperBound).")
                }
                switch name {
                case "VisibilityTimeout": visibilityTimeout = value
                case "MessageRetentionPeriod": messageRetentionPeriod = value
                case "MaximumMessageSize": maximumMessageSize = value
                case "DelaySeconds": delaySeconds = value
                default: receiveMessageWaitTimeSeconds = value
                }
                continue
            }
            switch name {
            case "RedrivePolicy":
                if text.isEmpty { redrivePolicy = nil; continue }
                struct Raw: Decodable {
                    var deadLetterTargetArn: String?
                    var maxReceiveCount: FlexibleInt?
                }
                guard let raw = try? JSONDecoder().decode(Raw.self, from: Data(text.utf8)),
                      let arn = raw.deadLetterTargetArn, let count = raw.maxReceiveCount?.value, (1...1000).contains(count) else {
                    throw QueueError(.invalidParameterValue,
                                     "Invalid value for the parameter RedrivePolicy. Reason: it must be JSON with deadLetterTargetArn and maxReceiveCount 1..1000.")
                }
                redrivePolicy = RedrivePolicy(deadLetterTargetArn: arn, maxReceiveCount: count)
            case "Policy":
                if text.utf8.count > 8_192 {
                    throw QueueError(.invalidParameterValue, "Invalid value for the parameter Policy: longer than 8192 bytes.")
                }
                if !text.isEmpty, (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] == nil {
                    throw QueueError(.invalidParameterValue, "Invalid value for the parameter Policy: not a JSON policy document.")
                }
                policy = text.isEmpty ? nil : text
            case "FifoQueue", "ContentBasedDeduplication":
                throw QueueError(.invalidParameterValue, "FIFO queues are not supported by Nimbus (attribute \(name)).")
            case "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "SqsManagedSseEnabled":
                // Encryption at rest is the disk's business here; accepted and ignored, as a local SQS would.
                continue
            default:
                throw QueueError(.invalidAttributeName, "Unknown Attribute \(name).")
            }
        }
    }
}

/// maxReceiveCount arrives as a number or a string, depending on the client.
struct FlexibleInt: Decodable {
    var value: Int?
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        value = (try? c.decode(Int.self)) ?? (try? c.decode(String.self)).flatMap(Int.init)
    }
}

/// One message as stored.
public struct StoredMessage: Codable, Equatable, Sendable {
    /// Position in the broker's single sequence: primary key and delivery order.
    public var seq: Int64
    public var queue: String
    public var messageId: String
    public var body: String
    public var md5OfBody: String
    /// MessageAttributes as JSON, in SQS's shape.
    public var messageAttributes: Data?
    public var md5OfMessageAttributes: String?
    public var senderId: String
    /// Epoch milliseconds.
    public var sentTimestamp: Int64
    /// When it becomes (or became) receivable: send + delay, or receive + visibility timeout.
    public var visibleAt: Int64
    public var receiveCount: Int
    public var firstReceiveTimestamp: Int64?
    /// The nonce of the latest receipt handle; nil before the first receive.
    public var receipt: String?

    public init(seq: Int64, queue: String, messageId: String, body: String, md5OfBody: String, messageAttributes: Data?,
                md5OfMessageAttributes: String?, senderId: String, sentTimestamp: Int64, visibleAt: Int64, receiveCount: Int,
                firstReceiveTimestamp: Int64?, receipt: String?) {
        self.seq = seq
        self.queue = queue
        self.messageId = messageId
        self.body = body
        self.md5OfBody = md5OfBody
        self.messageAttributes = messageAttributes
        self.md5OfMessageAttributes = md5OfMessageAttributes
        self.senderId = senderId
        self.sentTimestamp = sentTimestamp
        self.visibleAt = visibleAt
        self.receiveCount = receiveCount
        self.firstReceiveTimestamp = firstReceiveTimestamp
        self.receipt = receipt
    }
}

/// A queue as stored.
public struct StoredQueue: Codable, Equatable, Sendable {
    public var name: String
    public var attributes: QueueAttributes
    public var createdTimestamp: Int64
    public var lastModifiedTimestamp: Int64
    public var tags: [String: String]

    public init(name: String, attributes: QueueAttributes, createdTimestamp: Int64, lastModifiedTimestamp: Int64, tags: [String: String]) {
        self.name = name
        self.attributes = attributes
        self.createdTimestamp = createdTimestamp
        self.lastModifiedTimestamp = lastModifiedTimestamp
        self.tags = tags
    }
}

/// What the store must write for a change to be durable. The core emits these; the shell commits
/// them, many changes per transaction, before it answers.
public enum StoreChange: Equatable, Sendable {
    case putQueue(StoredQueue)
    case deleteQueue(String)
    case putMessage(StoredMessage)
    /// A receive's update of a message: receive count, first receive, hidden until, receipt. The
    /// store writes just those four columns when the message is already on disk.
    case receiveMessage(StoredMessage)
    case deleteMessage(Int64)
    /// A send made with an idempotency key (Nimbus extension), written in the same transaction as
    /// its message; and its removal once its 5 minutes are over (or it is forgotten, oldest first).
    case putIdempotentSend(IdempotentSend)
    case deleteIdempotentSend(queue: String, key: String)
}

/// What a send made with an idempotency key (the `NimbusIdempotencyKey` extension: the gateway's
/// `Idempotency-Key` header) answered, and when: the same key on the same queue within
/// `QueueBroker.idempotencyWindow` answers this again instead of enqueueing another message.
public struct IdempotentSend: Equatable, Sendable {
    public var queue: String
    public var key: String
    public var messageId: String
    public var md5OfBody: String
    public var md5OfMessageAttributes: String?
    /// Epoch milliseconds.
    public var sentTimestamp: Int64

    public init(queue: String, key: String, messageId: String, md5OfBody: String, md5OfMessageAttributes: String?, sentTimestamp: Int64) {
        self.queue = queue
        self.key = key
        self.messageId = messageId
        self.md5OfBody = md5OfBody
        self.md5OfMessageAttributes = md5OfMessageAttributes
        self.sentTimestamp = sentTimestamp
    }
}

public struct QueueError: ServiceError, Equatable, Sendable, CustomStringConvertible {
    public var code: String
    public var message: String
    public init(_ code: Code, _ message: String) {
        self.code = code.rawValue
        self.message = message
    }
    public var description: String { "\(code): \(message)" }

    /// SQS's error codes (query-protocol spelling, as `x-amzn-query-error` carries them).
    public enum Code: String, Sendable {
        case nonExistentQueue = "AWS.SimpleQueueService.NonExistentQueue"
        case queueAlreadyExists = "QueueAlreadyExists"
        case invalidParameterValue = "InvalidParameterValue"
        case missingParameter = "MissingParameter"
        case invalidAttributeName = "InvalidAttributeName"
        case invalidMessageContents = "InvalidMessageContents"
        case receiptHandleIsInvalid = "ReceiptHandleIsInvalid"
        case messageNotInflight = "AWS.SimpleQueueService.MessageNotInflight"
        case tooManyEntriesInBatchRequest = "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
        case emptyBatchRequest = "AWS.SimpleQueueService.EmptyBatchRequest"
        case batchEntryIdsNotDistinct = "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
        case invalidBatchEntryId = "AWS.SimpleQueueService.InvalidBatchEntryId"
        case batchRequestTooLong = "AWS.SimpleQueueService.BatchRequestTooLong"
        case purgeQueueInProgress = "AWS.SimpleQueueService.PurgeQueueInProgress"
    }
}
