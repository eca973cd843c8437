import Foundation
import Hummingbird
import NimbusRuntime

// What every part of the console's server side shares: its error, JSON in and out, the headers of
// its answers (docs/console.md).

/// An answer the console gives instead of what was asked: `{"code", "message"}` with an HTTP status.
/// `code` is the AWS error code of the service call that failed, or the console's own
/// (ValidationException for a bad request, ServiceUnavailable for a node that does not answer).
struct ConsoleError: Error, CustomStringConvertible, Sendable {
    var status: HTTPResponse.Status
    var code: String
    var message: String

    init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    var description: String { "\(status.code) \(code): \(message)" }

    static func validation(_ message: String) -> ConsoleError { ConsoleError(.badRequest, "ValidationException", message) }
    static func notFound(_ message: String) -> ConsoleError { ConsoleError(.notFound, "ResourceNotFoundException", message) }
    static func unavailable(_ message: String) -> ConsoleError { ConsoleError(.serviceUnavailable, "ServiceUnavailable", message) }

    /// A failed call to `node` (at `endpoint`) as the console answers it: the node's AWS error code
    /// with a status that fits it; silence (the client's RequestTimeout) is 503 naming the node.
    static func from(_ error: any Error, node: String, endpoint: String) -> ConsoleError {
        if let error = error as? ConsoleError { return error }
        guard let wire = error as? WireError else {
            return ConsoleError(.internalServerError, "InternalFailure", "\(node): \(error)")
        }
        switch wire.code {
        case ErrorCode.requestTimeout.rawValue:
            return .unavailable("\(node) does not answer at \(endpoint)")
        case ErrorCode.serviceUnavailable.rawValue:
            return .unavailable(wire.message.contains(node) ? wire.message : "\(node): \(wire.message)")
        default:
            return ConsoleError(status(ofCode: wire.code), wire.code, wire.message)
        }
    }

    /// The HTTP status an AWS error code is answered with (AWS's own choice where it has one; most
    /// of its client errors are 400).
    static func status(ofCode code: String) -> HTTPResponse.Status {
        switch code {
        case "ServiceUnavailable", "RequestTimeout": return .serviceUnavailable
        case "ThrottlingException", "Throttling", "TooManyRequestsException": return .tooManyRequests
        case "InternalFailure", "InternalError", "InternalServerError": return .internalServerError
        case "AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken",
             "MissingAuthenticationToken", "RequestExpired", "RequestReplayed", "AuthorizationError", "InvalidToken":
            return .forbidden
        case "ResourceNotFoundException", "NotFound", "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist":
            return .notFound
        default: return .badRequest
        }
    }
}

/// JSON as the console reads and writes it: Foundation's untyped values (DynamoDB items and events
/// pass through as they are).
enum ConsoleJSON {
    /// `object` as compact JSON (one line: server-sent events need that). nil values must be NSNull.
    static func data(_ object: Any) -> Data {
        // Checked first: on Linux an invalid value (NaN, a type JSON has not) may stop the process.
        guard JSONSerialization.isValidJSONObject(object) else { return Data("{}".utf8) }
        return (try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes, .sortedKeys])) ?? Data("{}".utf8)
    }

    /// A JSON object, or nil when `data` is not one.
    static func object(_ data: Data) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) as? [String: Any]
    }

    /// A service's answer, which is always a JSON object; anything else is the service's fault.
    static func answer(_ data: Data, from node: String) throws(ConsoleError) -> [String: Any] {
        guard let object = object(data) else {
            throw ConsoleError(.badGateway, "InternalFailure", "\(node) answered something that is not a JSON object")
        }
        return object
    }

    /// An optional value for a JSON object: NSNull for nil.
    static func orNull(_ value: Any?) -> Any { value ?? NSNull() }
}

/// The headers of everything the console serves (the page's and the API's): no framing, no
/// sniffing, no referrer, and a policy that allows nothing but the console's own files.
enum ConsoleHeaders {
    static let contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        + "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    static let referrerPolicy = HTTPFields.Element.Name("Referrer-Policy")!

    static func fields(contentType: String, cache: String = "no-store") -> HTTPFields {
        var fields = HTTPFields()
        fields[.contentType] = contentType
        fields[.contentSecurityPolicy] = contentSecurityPolicy
        fields[.xContentTypeOptions] = "nosniff"
        fields[referrerPolicy] = "no-referrer"
        fields[.cacheControl] = cache
        return fields
    }

    static func json(_ status: HTTPResponse.Status, _ data: Data) -> Response {
        Response(status: status, headers: fields(contentType: "application/json"), body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func json(_ status: HTTPResponse.Status = .ok, object: Any) -> Response { json(status, ConsoleJSON.data(object)) }

    static func error(_ error: ConsoleError) -> Response {
        json(error.status, WireError(code: error.code, message: error.message).jsonData)
    }
}

extension Request {
    /// The body as a JSON object (an empty body is `{}`); anything else is a ValidationException.
    func consoleObject(limit: Int = 1 << 20) async throws(ConsoleError) -> [String: Any] {
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: limit)
        } catch {
            throw .validation("the request body is larger than \(limit) bytes or could not be read")
        }
        if buffer.readableBytes == 0 { return [:] }
        guard let object = ConsoleJSON.object(Data(buffer.readableBytesView)) else {
            throw .validation("the request body must be a JSON object")
        }
        return object
    }
}

/// Reading members of a request body, with the ValidationException a wrong one gets.
extension Dictionary where Key == String, Value == Any {
    func string(_ key: String, required: Bool = true) throws(ConsoleError) -> String? {
        guard let value = self[key], !(value is NSNull) else {
            if required { throw .validation("\(key) is required") }
            return nil
        }
        guard let text = value as? String else { throw .validation("\(key) must be a string") }
        return text
    }

    func integer(_ key: String, in range: ClosedRange<Int>, default fallback: Int? = nil) throws(ConsoleError) -> Int {
        guard let value = self[key], !(value is NSNull) else {
            guard let fallback else { throw .validation("\(key) is required") }
            return fallback
        }
        guard let number = value as? NSNumber, let n = Int(exactly: number.doubleValue) else {
            throw .validation("\(key) must be an integer")
        }
        guard range.contains(n) else { throw .validation("\(key) must be \(range.lowerBound)..\(range.upperBound), not \(n)") }
        return n
    }
}
