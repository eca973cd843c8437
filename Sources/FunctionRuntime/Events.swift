import Foundation
import TableCore

// The events and responses a function sees, in Lambda's own JSON shapes, so a handler written for
// Nimbus reads like one written for Lambda.

/// Lambda's SQS event: one record per received message.
public struct SQSEvent: Codable, Sendable, Equatable {
    public var Records: [Record]

    public init(Records: [Record]) { self.Records = Records }

    public struct Record: Codable, Sendable, Equatable {
        public var messageId: String
        public var receiptHandle: String
        public var body: String
        public var attributes: [String: String]
        public var messageAttributes: [String: MessageAttribute]
        public var md5OfBody: String
        public var eventSource: String
        public var eventSourceARN: String
        public var awsRegion: String

        public init(messageId: String, receiptHandle: String, body: String, attributes: [String: String],
                    messageAttributes: [String: MessageAttribute] = [:], md5OfBody: String, eventSourceARN: String, awsRegion: String) {
            self.messageId = messageId
            self.receiptHandle = receiptHandle
            self.body = body
            self.attributes = attributes
            self.messageAttributes = messageAttributes
            self.md5OfBody = md5OfBody
            self.eventSource = "aws:sqs"
            self.eventSourceARN = eventSourceARN
            self.awsRegion = awsRegion
        }
    }

    /// Lambda spells message attributes in camel case, unlike SQS's API.
    public struct MessageAttribute: Codable, Sendable, Equatable {
        public var dataType: String
        public var stringValue: String?
        public var binaryValue: String?
    }
}

/// Lambda's DynamoDB Streams event: the stream records as GetRecords gives them.
public struct DynamoDBStreamEvent: Codable, Sendable, Equatable {
    public var Records: [Record]
    public init(Records: [Record]) { self.Records = Records }

    /// Fields are optional where Lambda's console test events leave them out.
    public struct Record: Codable, Sendable, Equatable {
        public var eventID: String
        public var eventName: String
        public var eventVersion: String?
        public var eventSource: String?
        public var awsRegion: String?
        public var eventSourceARN: String?
        public var dynamodb: Body

        public init(eventID: String, eventName: String, eventVersion: String? = "1.1", eventSource: String? = "aws:dynamodb",
                    awsRegion: String?, eventSourceARN: String?, dynamodb: Body) {
            self.eventID = eventID
            self.eventName = eventName
            self.eventVersion = eventVersion
            self.eventSource = eventSource
            self.awsRegion = awsRegion
            self.eventSourceARN = eventSourceARN
            self.dynamodb = dynamodb
        }

        public struct Body: Codable, Sendable, Equatable {
            public var ApproximateCreationDateTime: Double?
            public var Keys: Item?
            public var NewImage: Item?
            public var OldImage: Item?
            public var SequenceNumber: String?
            public var SizeBytes: Int?
            public var StreamViewType: String?

            public init(ApproximateCreationDateTime: Double? = nil, Keys: Item? = nil, NewImage: Item? = nil, OldImage: Item? = nil,
                        SequenceNumber: String? = nil, SizeBytes: Int? = nil, StreamViewType: String? = nil) {
                self.ApproximateCreationDateTime = ApproximateCreationDateTime
                self.Keys = Keys
                self.NewImage = NewImage
                self.OldImage = OldImage
                self.SequenceNumber = SequenceNumber
                self.SizeBytes = SizeBytes
                self.StreamViewType = StreamViewType
            }
        }
    }
}

/// ReportBatchItemFailures: the records to retry (SQS: message ids; streams: sequence numbers).
/// An empty list is complete success.
public struct BatchResponse: Codable, Sendable, Equatable {
    public var batchItemFailures: [ItemFailure]

    public init(failures: [String] = []) { batchItemFailures = failures.map { ItemFailure(itemIdentifier: $0) } }

    public struct ItemFailure: Codable, Sendable, Equatable {
        public var itemIdentifier: String
    }

    public var failedIdentifiers: [String] { batchItemFailures.map(\.itemIdentifier) }
}
