import Foundation
import Logging
import NimbusAuth
import NimbusRuntime

/// Turns one AWS request into the nimbus/1 request of the node that serves it, and the answer back:
/// which protocol it speaks (JSON 1.0 by `X-Amz-Target`, Lambda's REST API by its path, else the
/// query protocol by its `Action`), who sent it (SigV4), and on whose behalf it is forwarded. No
/// service logic lives here.
public final class EdgeDispatcher: Sendable {
    let client: NimbusClient
    let cluster: ClusterConfig
    let authenticator: EdgeAuthenticator
    let timeout: Duration
    let logger: Logger
    private let lambda = LambdaREST()

    public init(client: NimbusClient, cluster: ClusterConfig, logger: Logger) {
        self.client = client
        self.cluster = cluster
        self.logger = logger
        authenticator = EdgeAuthenticator(client: client, enforce: cluster.iam.enforce)
        timeout = .milliseconds(cluster.edge.timeoutMilliseconds)
    }

    public func serve(_ request: EdgeRequest) async -> EdgeResponse {
        if let target = request.headers["x-amz-target"] {
            return await serveJSON(request, target: target)
        }
        if LambdaREST.matches(request) {
            return await serveLambda(request)
        }
        return await serveQuery(request)
    }

    // MARK: JSON 1.0

    func serveJSON(_ request: EdgeRequest, target: String) async -> EdgeResponse {
        guard let (service, operation) = JSONService.parse(target: target) else {
            let error = EdgeError("UnknownOperationException", "Nimbus does not serve the target \(target)")
            return JSONService.dynamodb.error(error, requestID: request.requestID)
        }
        do {
            let caller = try await authenticator.authenticate(request, account: cluster.account)
            guard service.operations.contains(operation) else {
                throw EdgeError(service == .sqs ? "UnsupportedOperation" : "UnknownOperationException",
                                "Nimbus does not serve \(service.prefix):\(operation)")
            }
            var body = request.body.isEmpty ? Data("{}".utf8) : request.body
            if service == .sqs { body = QueueURLs.toNode(body, region: cluster.region) }
            let answer = try await forward("\(service.prefix):\(operation)", to: service.node, instance: 1, body: body, caller: caller)
            let shown = service == .sqs && QueueURLs.actions.contains(operation)
                ? QueueURLs.toCaller(answer, region: cluster.region, baseURL: request.baseURL) : answer
            return EdgeResponse(status: 200, headers: [("Content-Type", service.contentType), ("x-amzn-RequestId", request.requestID)], body: shown)
        } catch {
            return service.error(edgeError(error), requestID: request.requestID)
        }
    }

    // MARK: Query

    func serveQuery(_ request: EdgeRequest) async -> EdgeResponse {
        var parameters = request.queryParameters
        if request.method == "POST", (request.headers["content-type"] ?? "").lowercased().hasPrefix("application/x-www-form-urlencoded") {
            parameters += EdgeRequest.form(String(decoding: request.body, as: UTF8.self))
        }
        let action = parameters.first { $0.0 == "Action" }?.1
        let scope = try? SigV4Request.parse(headers: request.headers, query: request.queryParameters)
        // The service: the signature's scope; unsigned (IAM off), what the path or action says.
        let serviceName = scope?.service ?? Self.guessService(path: request.path, action: action)
        guard let query = QueryProtocol(service: serviceName) else {
            let error = EdgeError("InvalidAction", "Nimbus serves no service \"\(serviceName)\" at \(request.method) \(request.path)", status: 400)
            return QueryProtocol(service: "sqs")!.xmlError(error, requestID: request.requestID)
        }
        do {
            let caller = try await authenticator.authenticate(request, account: cluster.account)
            guard let action, !action.isEmpty else { throw EdgeError("MissingAction", "The request must contain the parameter Action.") }
            guard query.supports(action) else { throw EdgeError("InvalidAction", "The action \(action) is not valid for this endpoint.") }
            var form = parameters
            // A query-protocol SQS request may name its queue by the path (http://HOST/ACCOUNT/NAME).
            if serviceName == "sqs", !form.contains(where: { $0.0 == "QueueUrl" }), request.path.split(separator: "/").count == 2 {
                form.append(("QueueUrl", request.baseURL + request.path))
            }
            var body = try query.jsonBody(action: action, parameters: form, baseURL: request.baseURL)
            if serviceName == "sqs" { body = QueueURLs.toNode(body, region: cluster.region) }
            var answer = try await forward("\(serviceName):\(action)", to: query.node, instance: 1, body: body, caller: caller)
            if serviceName == "sqs", QueueURLs.actions.contains(action) {
                answer = QueueURLs.toCaller(answer, region: cluster.region, baseURL: request.baseURL)
            }
            let xml = try query.xmlResponse(action: action, json: answer, requestID: request.requestID, baseURL: request.baseURL)
            return EdgeResponse(status: 200, headers: [("Content-Type", "text/xml"), ("x-amzn-RequestId", request.requestID)], body: xml)
        } catch {
            var refusal = edgeError(error)
            // SNS names a policy's denial AuthorizationError (403), where IAM and STS say AccessDenied.
            if serviceName == "sns", refusal.code == "AccessDenied" { refusal.code = "AuthorizationError" }
            return query.xmlError(refusal, requestID: request.requestID)
        }
    }

    static func guessService(path: String, action: String?) -> String {
        let parts = path.split(separator: "/")
        if parts.count == 2, parts[0].count == 12, parts[0].allSatisfy(\.isNumber) { return "sqs" }
        switch action ?? "" {
        case "GetCallerIdentity", "AssumeRole": return "sts"
        case let a where a.hasSuffix("Topic") || a.hasSuffix("Topics") || a.contains("Subscription") || a.hasPrefix("Publish") || a == "Subscribe"
            || a == "Unsubscribe": return "sns"
        case let a where a.contains("Role") || a.contains("Polic") || a.contains("User"): return "iam"
        default: return "sqs"
        }
    }

    // MARK: Lambda

    func serveLambda(_ request: EdgeRequest) async -> EdgeResponse {
        do {
            let caller = try await authenticator.authenticate(request, account: cluster.account)
            return await lambda.handle(request, cluster: cluster, send: { action, kind, instance, body in
                try await self.forward(action, to: kind, instance: instance, body: body, caller: caller)
            }, authorize: { action in
                try await self.authorize(caller, action: action, resource: "*")
            })
        } catch {
            return LambdaREST.error(edgeError(error), requestID: request.requestID)
        }
    }

    // MARK: Forwarding

    /// The nimbus/1 request for `caller`, signed with its own access key.
    func forward(_ action: String, to kind: ServiceKind, instance: Int, body: Data, caller: EdgeCaller) async throws -> Data {
        let key = try await authenticator.callerKey(caller, service: RequestSigning.service(of: action))
        return try await client.request(action, to: cluster.endpoint(kind, instance: instance).description, body: body, onBehalfOf: key,
                                        timeout: timeout, attempts: 1)
    }

    /// The caller's permission for `action`, asked of the IAM node (iam:SimulatePrincipalPolicy, as
    /// the account root), for the rare request that no node authorizes because none is asked.
    func authorize(_ caller: EdgeCaller, action: String, resource: String) async throws {
        guard cluster.iam.enforce, caller.principal != PlatformPrincipals.root(account: cluster.account) else { return }
        guard try await authenticator.authority.decide(principal: caller.principal, action: action, resource: resource,
                                                       resourcePolicy: nil) == .allow else {
            throw EdgeError("AccessDeniedException", "User: \(caller.principal) is not authorized to perform: \(action) on resource: \(resource)",
                            status: 403)
        }
    }

    func edgeError(_ error: any Error) -> EdgeError {
        switch error {
        case let error as EdgeError: return error
        case let error as WireError: return EdgeError.from(error)
        default:
            logger.error("edge: \(error)")
            return EdgeError("InternalFailure", "\(error)", status: 500, sender: false)
        }
    }
}

/// Queue URLs as the caller sees them (`http://HOST/ACCOUNT/NAME`, from the request's Host, as
/// LocalStack and ElasticMQ make them) and as the broker makes them (`https://sqs.REGION.amazonaws.com/...`).
enum QueueURLs {
    private static let host = Data("amazonaws.com".utf8)
    /// The answers that hold queue URLs, and only queue URLs: a message's body or attributes are
    /// never rewritten (their MD5s must stay the sender's).
    static let actions: Set<String> = ["CreateQueue", "GetQueueUrl", "ListQueues"]

    static func toCaller(_ json: Data, region: String, baseURL: String) -> Data {
        guard json.range(of: host) != nil else { return json }
        var text = String(decoding: json, as: UTF8.self)
        let node = "https://sqs.\(region).amazonaws.com/"
        text = text.replacingOccurrences(of: node, with: baseURL + "/")
        text = text.replacingOccurrences(of: node.replacingOccurrences(of: "/", with: "\\/"), with: (baseURL + "/").replacingOccurrences(of: "/", with: "\\/"))
        return Data(text.utf8)
    }

    /// The broker takes any host in a QueueUrl already; nothing to change.
    static func toNode(_ json: Data, region: String) -> Data { json }
}
