import Foundation
import NimbusRuntime

/// AWS's JSON 1.0 protocol (`X-Amz-Target: Prefix.Operation`, a JSON body each way): SQS (as the SDKs
/// have sent it since 2023), DynamoDB and DynamoDB Streams. The nodes take and answer AWS's JSON
/// shapes already, so a request's body is forwarded as it came and the answer's body returned as it is.
public enum JSONService: String, Sendable, CaseIterable {
    case sqs = "AmazonSQS"
    case dynamodb = "DynamoDB_20120810"
    case streams = "DynamoDBStreams_20120810"

    /// The service and operation an `X-Amz-Target` names.
    public static func parse(target: String) -> (JSONService, String)? {
        guard let dot = target.lastIndex(of: "."), let service = JSONService(rawValue: String(target[..<dot])) else { return nil }
        return (service, String(target[target.index(after: dot)...]))
    }

    /// The IAM action prefix (what the request is signed and authorized for).
    public var prefix: String {
        switch self {
        case .sqs: return "sqs"
        case .dynamodb, .streams: return "dynamodb"
        }
    }

    public var node: ServiceKind {
        switch self {
        case .sqs: return .queue
        case .dynamodb, .streams: return .table
        }
    }

    /// The operations the nodes serve (anything else is UnknownOperationException at the edge).
    public var operations: Set<String> {
        switch self {
        case .sqs:
            return ["CreateQueue", "GetQueueUrl", "ListQueues", "GetQueueAttributes", "SetQueueAttributes", "SendMessage",
                    "SendMessageBatch", "ReceiveMessage", "DeleteMessage", "DeleteMessageBatch", "ChangeMessageVisibility",
                    "ChangeMessageVisibilityBatch", "PurgeQueue", "DeleteQueue"]
        case .dynamodb:
            return ["CreateTable", "DescribeTable", "UpdateTable", "DeleteTable", "ListTables", "PutItem", "GetItem", "UpdateItem",
                    "DeleteItem", "Scan", "Query", "BatchWriteItem", "BatchGetItem", "TransactWriteItems", "TransactGetItems"]
        case .streams:
            return ["ListStreams", "DescribeStream", "GetShardIterator", "GetRecords"]
        }
    }

    public var contentType: String { "application/x-amz-json-1.0" }

    /// The error body (and headers) an SDK of this service reads.
    public func error(_ error: EdgeError, requestID: String) -> EdgeResponse {
        var headers: [(String, String)] = [("Content-Type", contentType), ("x-amzn-RequestId", requestID)]
        let code = jsonCode(error.code)
        var object: [String: String] = ["message": error.message]
        switch self {
        case .sqs:
            // The SDKs read the query protocol's code from this header (awsQueryCompatible), so
            // `QueueDoesNotExist` is caught as it was when SQS spoke only the query protocol.
            object["__type"] = "com.amazonaws.sqs#\(code)"
            headers.append(("x-amzn-query-error", "\(error.code);\(error.sender ? "Sender" : "Receiver")"))
        case .dynamodb, .streams:
            object["__type"] = "com.amazonaws.dynamodb.v20120810#\(code)"
        }
        headers.append(("x-amzn-ErrorType", code))
        var body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        // The node's further members (an object's text, as it wrote them), spliced in after ours.
        if let fields = error.fields, fields.first == 0x7B, fields.last == 0x7D, body.last == 0x7D {
            let members = fields.dropFirst().drop { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
            if members.first != 0x7D {
                body.removeLast()
                body.append(0x2C)
                body.append(contentsOf: members)
            }
        }
        return EdgeResponse(status: status(of: error, code: code), headers: headers, body: body)
    }

    /// DynamoDB answers its authentication and authorization errors with 400, not 403 (its
    /// "Error handling" page); SQS keeps the query protocol's statuses.
    func status(of error: EdgeError, code: String) -> Int {
        switch (self, code) {
        case (.dynamodb, "UnrecognizedClientException"), (.dynamodb, "InvalidSignatureException"), (.dynamodb, "AccessDeniedException"),
             (.dynamodb, "ExpiredTokenException"), (.streams, "ExpiredTokenException"),
             (.dynamodb, "MissingAuthenticationTokenException"), (.dynamodb, "IncompleteSignatureException"),
             (.streams, "UnrecognizedClientException"), (.streams, "InvalidSignatureException"), (.streams, "AccessDeniedException"),
             (.streams, "MissingAuthenticationTokenException"), (.streams, "IncompleteSignatureException"):
            return 400
        default:
            return error.status
        }
    }

    /// The JSON protocol's name for an error code the nodes give in the query protocol's form.
    func jsonCode(_ code: String) -> String {
        switch self {
        case .sqs:
            switch code {
            case "AWS.SimpleQueueService.NonExistentQueue": return "QueueDoesNotExist"
            case "QueueAlreadyExists": return "QueueNameExists"
            case "InvalidParameterValue": return "InvalidParameterValueException"
            case "MissingParameter": return "MissingRequiredParameterException"
            case "InvalidAction": return "UnsupportedOperation"
            default:
                return code.hasPrefix("AWS.SimpleQueueService.") ? String(code.dropFirst("AWS.SimpleQueueService.".count)) : code
            }
        case .dynamodb, .streams:
            switch code {
            case "InvalidClientTokenId": return "UnrecognizedClientException"
            case "SignatureDoesNotMatch", "RequestExpired": return "InvalidSignatureException"
            case "IncompleteSignature": return "IncompleteSignatureException"
            case "MissingAuthenticationToken": return "MissingAuthenticationTokenException"
            case "ExpiredToken": return "ExpiredTokenException"
            case "AccessDenied": return "AccessDeniedException"
            case "InvalidParameterValue", "MissingParameter": return "ValidationException"
            case "ThrottlingException": return "ThrottlingException"
            case "ServiceUnavailable": return "ServiceUnavailable"
            default: return code
            }
        }
    }
}
