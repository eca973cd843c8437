import Foundation
import Hummingbird
import Logging
import NimbusRuntime
import ServiceLifecycle

/// The AWS-compatible endpoint as a Nimbus node (docs/aws-endpoint.md): an HTTP server on
/// `edge.http` whose every request goes through `EdgeDispatcher`.
public struct EdgeNodeService: NodeService {
    let configuration: NodeConfiguration

    public init(configuration: NodeConfiguration) throws {
        self.configuration = configuration
    }

    /// The edge looks up keys at the IAM node as the account root (like the supervisor and the
    /// console): its own calls are signed with `credentials/root.json`.
    public static func configure(_ configuration: inout NodeConfiguration) {
        guard configuration.cluster.iam.enforce else { return }
        let root = CredentialSource(file: CredentialSource.file(dataDirectory: configuration.dataDirectory, name: "root"))
        configuration.credentials = root
        configuration.platformCredentials = root
    }

    public var actions: Set<String> { [] }

    public func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data {
        throw WireError(.invalidAction, "the edge answers AWS's HTTP protocols, not \(request.header.action ?? "")")
    }

    public func healthDetails() async -> [String: String] { ["http": configuration.cluster.edge.http] }

    public func run(runtime: NodeRuntime) async throws {
        let settings = configuration.cluster.edge
        let parts = settings.http.split(separator: ":")
        let dispatcher = EdgeDispatcher(client: runtime.client, cluster: configuration.cluster, logger: runtime.logger)
        let router = Router()
        let handler: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            await Self.serve(request, dispatcher: dispatcher, limit: settings.maxBodyBytes)
        }
        for method in [HTTPRequest.Method.get, .post, .put, .delete, .head, .patch] {
            router.on("/", method: method, use: handler)
            router.on("**", method: method, use: handler)
        }
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .nanoseconds(Int64(settings.idleTimeoutSeconds * 1e9)))),
            configuration: .init(address: .hostname(String(parts[0]), port: Int(parts[1])!), serverName: "Nimbus"),
            logger: runtime.logger)
        runtime.logger.info("AWS endpoint on http://\(settings.http)")
        try await app.run()
    }

    static func serve(_ request: Request, dispatcher: EdgeDispatcher, limit: Int) async -> Response {
        var headers: [String: String] = [:]
        for field in request.headers {
            let name = field.name.canonicalName.lowercased()
            headers[name] = headers[name].map { $0 + "," + field.value } ?? field.value
        }
        // HTTP/1's Host travels as the :authority pseudo-header in HTTPTypes, outside the fields.
        if headers["host"] == nil, let authority = request.head.authority { headers["host"] = authority }
        let requestID = UUID().uuidString.lowercased()
        let raw: Data
        do {
            let buffer = try await request.body.collect(upTo: limit)
            raw = Data(buffer.readableBytesView)
        } catch {
            return respond(EdgeResponse(status: 413, headers: [("Content-Type", "text/plain")],
                                        body: Data("Request body is larger than \(limit) bytes".utf8)))
        }
        var body = raw
        if let encoding = headers["content-encoding"]?.lowercased(), encoding.contains("gzip") {
            do {
                body = try Gzip.inflate(raw, limit: limit)
            } catch is Gzip.TooLarge {
                return respond(EdgeResponse(status: 413, headers: [("Content-Type", "text/plain")],
                                            body: Data("Request body inflates past \(limit) bytes".utf8)))
            } catch {
                return respond(EdgeResponse(status: 400, headers: [("Content-Type", "text/plain")], body: Data("\(error)".utf8)))
            }
        }
        let edgeRequest = EdgeRequest(method: request.method.rawValue, rawPath: request.uri.path, rawQuery: request.uri.query ?? "",
                                      headers: headers, rawBody: raw, body: body, requestID: requestID)
        return respond(await dispatcher.serve(edgeRequest))
    }

    static func respond(_ response: EdgeResponse) -> Response {
        var fields = HTTPFields()
        for (name, value) in response.headers {
            if let name = HTTPFields.Element.Name(name) { fields.append(HTTPFields.Element(name: name, value: value)) }
        }
        return Response(status: .init(code: response.status), headers: fields, body: .init(byteBuffer: ByteBuffer(data: response.body)))
    }
}
