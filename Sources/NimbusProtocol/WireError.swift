import Foundation

/// An error a service core throws in AWS's terms; the runtime answers it as an `error` message with
/// this code and message, so services need no mapping of their own.
public protocol ServiceError: Error {
    var code: String { get }
    var message: String { get }
    /// AWS's further members of this error, as a JSON object (DynamoDB's `CancellationReasons` of a
    /// TransactionCanceledException, the `Item` of a ConditionalCheckFailedException): they travel
    /// as the error's `fields` and the AWS endpoint writes them into the error body. nil: none.
    var fields: Data? { get }
}

extension ServiceError {
    public var fields: Data? { nil }
}

/// An error as it travels: `{"code": ..., "message": ...}`, with AWS's error codes, and
/// `"fields": {...}` when the error has further members (`ServiceError.fields`).
public struct WireError: ServiceError, Codable, Sendable, Equatable, CustomStringConvertible {
    public var code: String
    public var message: String
    /// A JSON object's text, or nil (see `ServiceError.fields`). Not part of the Codable form:
    /// `jsonData` writes it and `init(json:)` reads it, as raw JSON.
    public var fields: Data? = nil

    enum CodingKeys: String, CodingKey { case code, message }

    public init(code: String, message: String, fields: Data? = nil) {
        self.code = code
        self.message = message
        self.fields = fields
    }

    /// An error body as `jsonData` writes it; nil when it is not one.
    public init?(json body: Data) {
        guard var error = try? JSONDecoder().decode(WireError.self, from: body) else { return nil }
        error.fields = JSONFields.topLevelRaw("fields", in: body)
        self = error
    }

    public init(_ code: ErrorCode, _ message: String) {
        self.init(code: code.rawValue, message: message)
    }

    public var description: String { "\(code): \(message)" }

    public var jsonData: Data {
        // Two string fields: cheaper and just as exact by hand as through JSONEncoder.
        var out = "{\"code\":"
        JSONText.appendString(code, to: &out)
        out += ",\"message\":"
        JSONText.appendString(message, to: &out)
        guard let fields else {
            out += "}"
            return Data(out.utf8)
        }
        out += ",\"fields\":"
        var data = Data(out.utf8)
        data.append(fields)
        data.append(0x7D)
        return data
    }
}

/// Error codes used on the wire. The AWS ones keep AWS's spelling; the protocol-level ones are named
/// in the same style and listed in docs/protocol.md.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }

    // Protocol level.
    /// The message is not a Nimbus message (wrong tag, wrong number of frames).
    public static let malformedFrame: ErrorCode = "MalformedFrame"
    /// A Nimbus tag with a version this node does not speak.
    public static let unsupportedProtocolVersion: ErrorCode = "UnsupportedProtocolVersion"
    /// A message larger than the node accepts.
    public static let requestEntityTooLarge: ErrorCode = "RequestEntityTooLarge"

    // AWS's common codes.
    public static let serializationException: ErrorCode = "SerializationException"
    public static let missingParameter: ErrorCode = "MissingParameter"
    public static let invalidParameterValue: ErrorCode = "InvalidParameterValue"
    public static let validationException: ErrorCode = "ValidationException"
    public static let invalidAction: ErrorCode = "InvalidAction"
    public static let internalFailure: ErrorCode = "InternalFailure"
    public static let serviceUnavailable: ErrorCode = "ServiceUnavailable"
    public static let requestTimeout: ErrorCode = "RequestTimeout"
    public static let throttling: ErrorCode = "ThrottlingException"
    public static let accessDenied: ErrorCode = "AccessDenied"
}
