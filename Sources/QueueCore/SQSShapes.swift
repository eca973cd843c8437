import Foundation
import NimbusProtocol

// Request and response bodies in SQS's JSON protocol shapes (botocore's sqs 2012-11-05 model),
// as they travel in the payload frame of `sqs:*` requests.

public struct CreateQueueRequest: Codable, Sendable {
    public var QueueName: String
    public var Attributes: [String: String]?
    public var tags: [String: String]?
}

public struct QueueURLRequest: Codable, Sendable {
    public var QueueUrl: String
}

public struct GetQueueUrlRequest: Codable, Sendable {
    public var QueueName: String
    public var QueueOwnerAWSAccountId: String?
}

public struct QueueURLResponse: Codable, Sendable {
    public var QueueUrl: String
    public init(QueueUrl: String) { self.QueueUrl = QueueUrl }
}

public struct ListQueuesRequest: Codable, Sendable {
    public var QueueNamePrefix: String?
    public var MaxResults: Int?
    public var NextToken: String?
}

public struct ListQueuesResponse: Codable, Sendable {
    public var QueueUrls: [String]
    public var NextToken: String?
}

public struct GetQueueAttributesRequest: Codable, Sendable {
    public var QueueUrl: String
    public var AttributeNames: [String]?
    public init(QueueUrl: String, AttributeNames: [String]? = nil) {
        self.QueueUrl = QueueUrl
        self.AttributeNames = AttributeNames
    }
}

public struct AttributesResponse: Codable, Sendable {
    public var Attributes: [String: String]
    public init(Attributes: [String: String]) { self.Attributes = Attributes }
}

public struct SetQueueAttributesRequest: Codable, Sendable {
    public var QueueUrl: String
    public var Attributes: [String: String]
}

public struct SendMessageRequest: Codable, Sendable {
    public var QueueUrl: String
    public var MessageBody: String
    public var DelaySeconds: Int?
    public var MessageAttributes: [String: MessageAttributeValue]?
    /// FIFO queues' member: refused here (every Nimbus queue is a standard queue), as AWS refuses it.
    public var MessageDeduplicationId: String?
    /// Nimbus extension (the gateway's Idempotency-Key): a send with the key of a send made on the
    /// same queue within 5 minutes is not enqueued again and answers the first send's answer.
    public var NimbusIdempotencyKey: String?
    public init(QueueUrl: String, MessageBody: String, DelaySeconds: Int? = nil, MessageAttributes: [String: MessageAttributeValue]? = nil,
                NimbusIdempotencyKey: String? = nil) {
        self.QueueUrl = QueueUrl
        self.MessageBody = MessageBody
        self.DelaySeconds = DelaySeconds
        self.MessageAttributes = MessageAttributes
        self.NimbusIdempotencyKey = NimbusIdempotencyKey
    }
}

public struct SendMessageResponse: Codable, Sendable, Equatable {
    public var MessageId: String
    public var MD5OfMessageBody: String
    public var MD5OfMessageAttributes: String?
    public init(MessageId: String, MD5OfMessageBody: String, MD5OfMessageAttributes: String?) {
        self.MessageId = MessageId
        self.MD5OfMessageBody = MD5OfMessageBody
        self.MD5OfMessageAttributes = MD5OfMessageAttributes
    }
}

public struct SendMessageBatchEntry: Codable, Sendable {
    public var Id: String
    public var MessageBody: String
    public var DelaySeconds: Int?
    public var MessageAttributes: [String: MessageAttributeValue]?
    /// Refused, as in SendMessageRequest.
    public var MessageDeduplicationId: String?
    /// Nimbus extension, as in SendMessageRequest: each entry its own key.
    public var NimbusIdempotencyKey: String?
    public init(Id: String, MessageBody: String, DelaySeconds: Int? = nil, MessageAttributes: [String: MessageAttributeValue]? = nil,
                NimbusIdempotencyKey: String? = nil) {
        self.Id = Id
        self.MessageBody = MessageBody
        self.DelaySeconds = DelaySeconds
        self.MessageAttributes = MessageAttributes
        self.NimbusIdempotencyKey = NimbusIdempotencyKey
    }
}

public struct SendMessageBatchRequest: Codable, Sendable {
    public var QueueUrl: String
    public var Entries: [SendMessageBatchEntry]
    public init(QueueUrl: String, Entries: [SendMessageBatchEntry]) {
        self.QueueUrl = QueueUrl
        self.Entries = Entries
    }
}

public struct BatchResultErrorEntry: Codable, Sendable, Equatable {
    public var Id: String
    public var SenderFault: Bool
    public var Code: String
    public var Message: String
}

public struct SendMessageBatchResultEntry: Codable, Sendable, Equatable {
    public var Id: String
    public var MessageId: String
    public var MD5OfMessageBody: String
    public var MD5OfMessageAttributes: String?
}

public struct SendMessageBatchResponse: Codable, Sendable {
    public var Successful: [SendMessageBatchResultEntry]
    public var Failed: [BatchResultErrorEntry]
}

public struct ReceiveMessageRequest: Codable, Sendable {
    public var QueueUrl: String
    public var MaxNumberOfMessages: Int?
    public var VisibilityTimeout: Int?
    public var WaitTimeSeconds: Int?
    public var AttributeNames: [String]?
    public var MessageSystemAttributeNames: [String]?
    public var MessageAttributeNames: [String]?
    public var ReceiveRequestAttemptId: String?
    public init(QueueUrl: String, MaxNumberOfMessages: Int? = nil, VisibilityTimeout: Int? = nil, WaitTimeSeconds: Int? = nil,
                AttributeNames: [String]? = nil, MessageAttributeNames: [String]? = nil) {
        self.QueueUrl = QueueUrl
        self.MaxNumberOfMessages = MaxNumberOfMessages
        self.VisibilityTimeout = VisibilityTimeout
        self.WaitTimeSeconds = WaitTimeSeconds
        self.AttributeNames = AttributeNames
        self.MessageAttributeNames = MessageAttributeNames
    }
}

public struct ReceivedMessage: Codable, Sendable, Equatable {
    public var MessageId: String
    public var ReceiptHandle: String
    public var MD5OfBody: String
    public var Body: String
    public var Attributes: [String: String]?
    public var MD5OfMessageAttributes: String?
    public var MessageAttributes: [String: MessageAttributeValue]?
}

public struct ReceiveMessageResponse: Codable, Sendable {
    public var Messages: [ReceivedMessage]
    public init(Messages: [ReceivedMessage]) { self.Messages = Messages }
}

public struct DeleteMessageRequest: Codable, Sendable {
    public var QueueUrl: String
    public var ReceiptHandle: String
}

public struct ChangeMessageVisibilityRequest: Codable, Sendable {
    public var QueueUrl: String
    public var ReceiptHandle: String
    public var VisibilityTimeout: Int
}

public struct BatchHandleEntry: Codable, Sendable, Equatable {
    public var Id: String
    public var ReceiptHandle: String
    public var VisibilityTimeout: Int?

    public init(Id: String, ReceiptHandle: String, VisibilityTimeout: Int? = nil) {
        self.Id = Id
        self.ReceiptHandle = ReceiptHandle
        self.VisibilityTimeout = VisibilityTimeout
    }
}

public struct HandleBatchRequest: Codable, Sendable, Equatable {
    public var QueueUrl: String
    public var Entries: [BatchHandleEntry]

    public init(QueueUrl: String, Entries: [BatchHandleEntry]) {
        self.QueueUrl = QueueUrl
        self.Entries = Entries
    }
}

public struct IdOnly: Codable, Sendable, Equatable {
    public var Id: String
}

public struct HandleBatchResponse: Codable, Sendable {
    public var Successful: [IdOnly]
    public var Failed: [BatchResultErrorEntry]
}

/// SQS action names, spelled as IAM spells them.
public enum SQSAction {
    public static let createQueue = "sqs:CreateQueue"
    public static let getQueueUrl = "sqs:GetQueueUrl"
    public static let listQueues = "sqs:ListQueues"
    public static let getQueueAttributes = "sqs:GetQueueAttributes"
    public static let setQueueAttributes = "sqs:SetQueueAttributes"
    public static let sendMessage = "sqs:SendMessage"
    public static let sendMessageBatch = "sqs:SendMessageBatch"
    public static let receiveMessage = "sqs:ReceiveMessage"
    public static let deleteMessage = "sqs:DeleteMessage"
    public static let deleteMessageBatch = "sqs:DeleteMessageBatch"
    public static let changeMessageVisibility = "sqs:ChangeMessageVisibility"
    public static let changeMessageVisibilityBatch = "sqs:ChangeMessageVisibilityBatch"
    public static let purgeQueue = "sqs:PurgeQueue"
    public static let deleteQueue = "sqs:DeleteQueue"

    public static let all: Set<String> = [
        createQueue, getQueueUrl, listQueues, getQueueAttributes, setQueueAttributes, sendMessage, sendMessageBatch,
        receiveMessage, deleteMessage, deleteMessageBatch, changeMessageVisibility, changeMessageVisibilityBatch,
        purgeQueue, deleteQueue,
    ]
}

/// How SQS names a queue.
public enum SQSNames {
    public static func url(region: String, account: String, name: String) -> String {
        "https://sqs.\(region).amazonaws.com/\(account)/\(name)"
    }

    public static func arn(region: String, account: String, name: String) -> String {
        "arn:aws:sqs:\(region):\(account):\(name)"
    }
}

/// Hand-written JSON for the shapes on the send path, which every order crosses twice; JSONEncoder
/// costs several microseconds an entry. The output is plain JSON that JSONDecoder reads back.
public enum SQSFastJSON {
    public static func encode(_ request: SendMessageBatchRequest) -> Data? {
        // Attributes and delays take the general path (and so does a MessageDeduplicationId, refused).
        guard request.Entries.allSatisfy({ $0.MessageAttributes == nil && $0.DelaySeconds == nil && $0.MessageDeduplicationId == nil })
        else { return nil }
        return writeStringBatch(url: request.QueueUrl, member: ",\"MessageBody\":",
                                request.Entries.map { ($0.Id, $0.MessageBody, $0.NimbusIdempotencyKey) })
    }

    /// `{"QueueUrl": ..., "Entries": [{"Id": ..., <member> ..., "NimbusIdempotencyKey": ...?}, ...]}`:
    /// the writing side of `stringBatch`. An entry's key is written only when it has one.
    private static func writeStringBatch(url: String, member: StaticString, _ entries: [(id: String, value: String, key: String?)]) -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(64 + entries.reduce(0) { $0 + $1.value.utf8.count + 32 + ($1.key.map { $0.utf8.count + 26 } ?? 0) })
        JSONText.append("{\"QueueUrl\":", to: &out)
        JSONText.appendString(url, to: &out)
        JSONText.append(",\"Entries\":[", to: &out)
        for (i, entry) in entries.enumerated() {
            if i > 0 { out.append(0x2C) }
            JSONText.append("{\"Id\":", to: &out)
            JSONText.appendString(entry.id, to: &out)
            JSONText.append(member, to: &out)
            JSONText.appendString(entry.value, to: &out)
            if let key = entry.key {
                JSONText.append(",\"NimbusIdempotencyKey\":", to: &out)
                JSONText.appendString(key, to: &out)
            }
            out.append(0x7D)
        }
        JSONText.append("]}", to: &out)
        return Data(out)
    }

    /// SendMessage with a queue URL, a body and perhaps an idempotency key (what the gateway and the
    /// benchmarks send); nil for anything else, which JSONDecoder then reads.
    public static func decodeSendMessage(_ data: Data) -> SendMessageRequest? {
        guard let m = StringJSON.parse(data)?.members(allowed: ["QueueUrl", "MessageBody", "NimbusIdempotencyKey"]),
              let url = m["QueueUrl"]?.string, let body = m["MessageBody"]?.string else { return nil }
        var key: String?
        if let value = m["NimbusIdempotencyKey"] {
            guard let text = value.string else { return nil }
            key = text
        }
        return SendMessageRequest(QueueUrl: url, MessageBody: body, NimbusIdempotencyKey: key)
    }

    /// SendMessageBatch whose entries have an id, a body and perhaps an idempotency key; nil for
    /// anything else.
    public static func decodeSendMessageBatch(_ data: Data) -> SendMessageBatchRequest? {
        stringBatch(data, "MessageBody", optional: "NimbusIdempotencyKey").map { url, entries in
            SendMessageBatchRequest(QueueUrl: url, Entries: entries.map {
                SendMessageBatchEntry(Id: $0.id, MessageBody: $0.value, NimbusIdempotencyKey: $0.extra)
            })
        }
    }

    /// `{"QueueUrl": ..., "Entries": [{"Id": ..., "<member>": ..., "<optional>": ...?}, ...]}` with
    /// strings only.
    private static func stringBatch(_ data: Data, _ member: String, optional: String? = nil)
        -> (url: String, entries: [(id: String, value: String, extra: String?)])? {
        guard let m = StringJSON.parse(data)?.members(allowed: ["QueueUrl", "Entries"]),
              let url = m["QueueUrl"]?.string, let items = m["Entries"]?.array else { return nil }
        var allowed: Set<String> = ["Id", member]
        if let optional { allowed.insert(optional) }
        var entries: [(id: String, value: String, extra: String?)] = []
        entries.reserveCapacity(items.count)
        for item in items {
            guard let e = item.members(allowed: allowed), let id = e["Id"]?.string, let value = e[member]?.string else { return nil }
            var extra: String?
            if let optional, let raw = e[optional] {
                guard let text = raw.string else { return nil }
                extra = text
            }
            entries.append((id, value, extra))
        }
        return (url, entries)
    }

    /// SendMessageBatch's answer when every entry got in (strings only); nil for anything else.
    public static func decodeSendMessageBatchResponse(_ data: Data) -> SendMessageBatchResponse? {
        guard let m = StringJSON.parse(data)?.members(allowed: ["Successful", "Failed"]),
              let items = m["Successful"]?.array, m["Failed"]?.array?.isEmpty == true else { return nil }
        var successful: [SendMessageBatchResultEntry] = []
        successful.reserveCapacity(items.count)
        for item in items {
            guard let e = item.members(allowed: ["Id", "MessageId", "MD5OfMessageBody", "MD5OfMessageAttributes"]),
                  let id = e["Id"]?.string, let messageID = e["MessageId"]?.string, let md5 = e["MD5OfMessageBody"]?.string else { return nil }
            var md5Attributes: String?
            if let value = e["MD5OfMessageAttributes"] {
                guard let text = value.string else { return nil }
                md5Attributes = text
            }
            successful.append(SendMessageBatchResultEntry(Id: id, MessageId: messageID, MD5OfMessageBody: md5, MD5OfMessageAttributes: md5Attributes))
        }
        return SendMessageBatchResponse(Successful: successful, Failed: [])
    }

    /// DeleteMessageBatch whose entries have an id and a receipt handle only; nil for anything else.
    public static func decodeDeleteMessageBatch(_ data: Data) -> HandleBatchRequest? {
        stringBatch(data, "ReceiptHandle").map { url, entries in
            HandleBatchRequest(QueueUrl: url, Entries: entries.map { BatchHandleEntry(Id: $0.id, ReceiptHandle: $0.value, VisibilityTimeout: nil) })
        }
    }

    /// ReceiveMessage's answer, as a poller reads it, when no message carries message attributes;
    /// nil for anything else (JSONDecoder then reads it).
    public static func decodeReceiveMessageResponse(_ data: Data) -> ReceiveMessageResponse? {
        guard let m = StringJSON.parse(data)?.members(allowed: ["Messages"]), let items = m["Messages"]?.array else { return nil }
        var messages: [ReceivedMessage] = []
        messages.reserveCapacity(items.count)
        for item in items {
            guard let e = item.members(allowed: ["MessageId", "ReceiptHandle", "MD5OfBody", "Body", "Attributes", "MD5OfMessageAttributes"]),
                  let id = e["MessageId"]?.string, let receipt = e["ReceiptHandle"]?.string, let md5 = e["MD5OfBody"]?.string,
                  let body = e["Body"]?.string else { return nil }
            var attributes: [String: String]?
            if let value = e["Attributes"] {
                guard case .object(let pairs) = value else { return nil }
                var map: [String: String] = [:]
                map.reserveCapacity(pairs.count)
                for (name, value) in pairs {
                    guard let text = value.string else { return nil }
                    map[name] = text
                }
                attributes = map
            }
            var md5Attributes: String?
            if let value = e["MD5OfMessageAttributes"] {
                guard let text = value.string else { return nil }
                md5Attributes = text
            }
            messages.append(ReceivedMessage(MessageId: id, ReceiptHandle: receipt, MD5OfBody: md5, Body: body, Attributes: attributes,
                                            MD5OfMessageAttributes: md5Attributes, MessageAttributes: nil))
        }
        return ReceiveMessageResponse(Messages: messages)
    }

    /// A DeleteMessageBatch request of ids and receipt handles (what a poller sends after a batch).
    public static func encode(_ request: HandleBatchRequest) -> Data? {
        guard request.Entries.allSatisfy({ $0.VisibilityTimeout == nil }) else { return nil }
        return writeStringBatch(url: request.QueueUrl, member: ",\"ReceiptHandle\":", request.Entries.map { ($0.Id, $0.ReceiptHandle, nil) })
    }

    /// DeleteMessageBatch's (and ChangeMessageVisibilityBatch's) answer when every entry succeeded:
    /// a poller's delete after each batch; nil when some failed (JSONEncoder writes those).
    public static func encode(_ response: HandleBatchResponse) -> Data? {
        guard response.Failed.isEmpty else { return nil }
        return writeAllSuccessful(response.Successful, bytesEach: 16) { entry, out in
            JSONText.append("{\"Id\":", to: &out)
            JSONText.appendString(entry.Id, to: &out)
            out.append(0x7D)
        }
    }

    /// `{"Successful": [...], "Failed": []}`: a batch answer in which every entry got through.
    private static func writeAllSuccessful<Entry>(_ entries: [Entry], bytesEach: Int, _ write: (Entry, inout [UInt8]) -> Void) -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(32 + entries.count * bytesEach)
        JSONText.append("{\"Successful\":[", to: &out)
        for (i, entry) in entries.enumerated() {
            if i > 0 { out.append(0x2C) }
            write(entry, &out)
        }
        JSONText.append("],\"Failed\":[]}", to: &out)
        return Data(out)
    }

    /// ReceiveMessage's answer when no message carries message attributes (which take the general
    /// path); system attributes are a map of strings.
    public static func encode(_ response: ReceiveMessageResponse) -> Data? {
        guard response.Messages.allSatisfy({ $0.MessageAttributes == nil }) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(16 + response.Messages.reduce(0) { $0 + $1.Body.utf8.count + 400 })
        JSONText.append("{\"Messages\":[", to: &out)
        for (i, m) in response.Messages.enumerated() {
            if i > 0 { out.append(0x2C) }
            JSONText.append("{\"MessageId\":", to: &out)
            JSONText.appendString(m.MessageId, to: &out)
            JSONText.append(",\"ReceiptHandle\":", to: &out)
            JSONText.appendString(m.ReceiptHandle, to: &out)
            JSONText.append(",\"MD5OfBody\":", to: &out)
            JSONText.appendString(m.MD5OfBody, to: &out)
            JSONText.append(",\"Body\":", to: &out)
            JSONText.appendString(m.Body, to: &out)
            if let attributes = m.Attributes {
                JSONText.append(",\"Attributes\":{", to: &out)
                for (j, (name, value)) in attributes.sorted(by: { $0.key < $1.key }).enumerated() {
                    if j > 0 { out.append(0x2C) }
                    JSONText.appendString(name, to: &out)
                    out.append(0x3A)
                    JSONText.appendString(value, to: &out)
                }
                out.append(0x7D)
            }
            if let md5 = m.MD5OfMessageAttributes {
                JSONText.append(",\"MD5OfMessageAttributes\":", to: &out)
                JSONText.appendString(md5, to: &out)
            }
            out.append(0x7D)
        }
        JSONText.append("]}", to: &out)
        return Data(out)
    }

    public static func encode(_ response: SendMessageResponse) -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(160)
        appendResult(id: nil, response.MessageId, response.MD5OfMessageBody, response.MD5OfMessageAttributes, to: &out)
        return Data(out)
    }

    public static func encode(_ response: SendMessageBatchResponse) -> Data? {
        guard response.Failed.isEmpty else { return nil }
        return writeAllSuccessful(response.Successful, bytesEach: 150) { s, out in
            appendResult(id: s.Id, s.MessageId, s.MD5OfMessageBody, s.MD5OfMessageAttributes, to: &out)
        }
    }

    private static func appendResult(id: String?, _ messageID: String, _ md5: String, _ md5Attributes: String?, to out: inout [UInt8]) {
        out.append(0x7B)
        if let id {
            JSONText.append("\"Id\":", to: &out)
            JSONText.appendString(id, to: &out)
            out.append(0x2C)
        }
        JSONText.append("\"MessageId\":", to: &out)
        JSONText.appendString(messageID, to: &out)
        JSONText.append(",\"MD5OfMessageBody\":", to: &out)
        JSONText.appendString(md5, to: &out)
        if let md5Attributes {
            JSONText.append(",\"MD5OfMessageAttributes\":", to: &out)
            JSONText.appendString(md5Attributes, to: &out)
        }
        out.append(0x7D)
    }
}
