import Foundation
import NimbusRuntime

/// Lambda's REST API (`/2015-03-31/functions/...`): the routes the edge serves, each turned into the
/// nimbus/1 request of the worker that hosts the function.
public struct LambdaREST: Sendable {
    public init() {}

    /// Whether `request` is a Lambda REST call (by its path).
    public static func matches(_ request: EdgeRequest) -> Bool {
        request.rawPath.hasPrefix("/2015-03-31/") || request.rawPath.hasPrefix("/2014-11-13/") || request.rawPath.hasPrefix("/2019-09-25/")
            || request.rawPath.hasPrefix("/2017-03-31/") || request.rawPath.hasPrefix("/2018-10-31/")
    }

    /// Serves one Lambda REST request; `send` forwards a nimbus/1 request (action, node kind and
    /// instance, body) on the caller's behalf.
    public func handle(_ request: EdgeRequest, cluster: ClusterConfig,
                       send: @escaping @Sendable (_ action: String, _ kind: ServiceKind, _ instance: Int, _ body: Data) async throws -> Data) async -> EdgeResponse {
        Self.error(EdgeError("UnknownOperationException", "Unknown operation \(request.method) \(request.path)", status: 404), requestID: request.requestID)
    }

    /// Lambda's error shape: `x-amzn-ErrorType` and a JSON body with `Type` and `message`.
    public static func error(_ error: EdgeError, requestID: String) -> EdgeResponse {
        let code: String
        switch error.code {
        case "InvalidClientTokenId": code = "UnrecognizedClientException"
        case "SignatureDoesNotMatch", "RequestExpired", "IncompleteSignature": code = "InvalidSignatureException"
        case "AccessDenied": code = "AccessDeniedException"
        default: code = error.code
        }
        let object: [String: String] = ["Type": error.sender ? "User" : "Service", "message": error.message]
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return EdgeResponse(status: error.status, headers: [("Content-Type", "application/json"), ("x-amzn-ErrorType", code),
                                                            ("x-amzn-RequestId", requestID)], body: body)
    }
}
