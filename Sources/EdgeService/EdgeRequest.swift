import Foundation
import NimbusRuntime

/// One AWS request as the edge handles it, once HTTP is done with: no Hummingbird types, so that the
/// protocol code is tested without a server.
public struct EdgeRequest: Sendable {
    public var method: String
    /// The path as it came, percent-encoded (what SigV4 signs).
    public var rawPath: String
    /// The query string as it came, without `?`.
    public var rawQuery: String
    /// Lower-cased names; several values joined by ",".
    public var headers: [String: String]
    /// The body as it came (what the signature covers), and decompressed (what the request means).
    public var rawBody: Data
    public var body: Data
    public var requestID: String

    public init(method: String, rawPath: String, rawQuery: String, headers: [String: String], rawBody: Data, body: Data? = nil,
                requestID: String = UUID().uuidString.lowercased()) {
        self.method = method
        self.rawPath = rawPath
        self.rawQuery = rawQuery
        self.headers = headers
        self.rawBody = rawBody
        self.body = body ?? rawBody
        self.requestID = requestID
    }

    /// The decoded query parameters, in order.
    public var queryParameters: [(String, String)] { Self.form(rawQuery) }

    /// `application/x-www-form-urlencoded` pairs, decoded.
    public static func form(_ text: String) -> [(String, String)] {
        text.split(separator: "&", omittingEmptySubsequences: true).map { item in
            let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (SigV4Request.formDecode(String(kv[0])), kv.count > 1 ? SigV4Request.formDecode(String(kv[1])) : "")
        }
    }

    /// The path decoded (what a REST API's routes match).
    public var path: String { rawPath.removingPercentEncoding ?? rawPath }

    /// Scheme and authority the caller used, for URLs in answers (queue URLs): `http://HOST`.
    public var baseURL: String {
        let host = headers["host"] ?? "127.0.0.1:4566"
        return "\(headers["x-forwarded-proto"] ?? "http")://\(host)"
    }
}

public struct EdgeResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: Data

    public init(status: Int = 200, headers: [(String, String)] = [], body: Data = Data()) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// An error as the caller's protocol states it: its code (as AWS names it for that protocol), message,
/// HTTP status, and whether it was the sender's fault.
public struct EdgeError: Error, Sendable, Equatable {
    public var code: String
    public var message: String
    public var status: Int
    public var sender: Bool
    /// The node's further members of the error (`WireError.fields`, a JSON object): written into
    /// the error body by the JSON protocol (DynamoDB's CancellationReasons, Item).
    public var fields: Data?

    public init(_ code: String, _ message: String, status: Int = 400, sender: Bool = true, fields: Data? = nil) {
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender
        self.fields = fields
    }

    /// A node's answer (or a failure to reach it) as an HTTP status: AWS's for the code, else 400
    /// for the caller's errors and 500/503 for ours.
    public static func from(_ error: WireError) -> EdgeError {
        var edge = statusOf(error)
        edge.fields = error.fields
        return edge
    }

    private static func statusOf(_ error: WireError) -> EdgeError {
        let code = error.code
        switch code {
        case "AccessDenied", "AccessDeniedException", "AuthorizationError", "InvalidClientTokenId", "SignatureDoesNotMatch",
             "ExpiredToken", "RequestExpired", "UnrecognizedClientException", "InvalidSignatureException", "MissingAuthenticationToken":
            return EdgeError(code, error.message, status: 403)
        case "ServiceUnavailable", "RequestTimeout":
            return EdgeError("ServiceUnavailable", error.message, status: 503, sender: false)
        case "InternalFailure", "InternalError", "InternalServerError":
            return EdgeError(code, error.message, status: 500, sender: false)
        case "ThrottlingException", "Throttling", "RequestThrottled":
            return EdgeError(code, error.message, status: 400)
        case "NotFound", "NoSuchEntity": return EdgeError(code, error.message, status: 404)
        case "EntityAlreadyExists", "DeleteConflict": return EdgeError(code, error.message, status: 409)
        default:
            return EdgeError(code, error.message, status: 400)
        }
    }
}
