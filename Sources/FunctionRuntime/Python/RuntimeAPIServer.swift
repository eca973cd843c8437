import Foundation
import Hummingbird
import Logging

/// Serves one environment's `RuntimeAPI` over HTTP on 127.0.0.1, on a port the kernel picks (what
/// the runtime finds in AWS_LAMBDA_RUNTIME_API). Runs until `stop()`.
final class RuntimeAPIServer: Sendable {
    let port: Int
    private let task: Task<Void, Never>

    private init(port: Int, task: Task<Void, Never>) {
        self.port = port
        self.task = task
    }

    /// Starts the server and returns once it listens.
    static func start(_ api: RuntimeAPI, logger: Logger) async throws -> RuntimeAPIServer {
        let router = Router()
        let handler: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            await serve(request, api: api)
        }
        for method in [HTTPRequest.Method.get, .post, .put, .delete, .head, .patch] {
            router.on("/", method: method, use: handler)
            router.on("**", method: method, use: handler)
        }
        // The server's own messages are not the function's: stopping it with its environment logs a
        // CancellationError at error level, which says nothing.
        var quiet = logger
        quiet.logLevel = .critical
        let (stream, bound) = AsyncStream.makeStream(of: Int?.self)
        let app = Application(router: router, server: .http1(),
                              configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: "Nimbus"),
                              onServerRunning: { channel in
                                  bound.yield(channel.localAddress?.port)
                                  bound.finish()
                              },
                              logger: quiet)
        // Detached: the server follows this environment's life, not the node's graceful shutdown
        // (a long-polling `next` would hold that up).
        let task = Task.detached {
            do { try await app.run() } catch { logger.error("runtime API server: \(error)") }
            bound.finish()
        }
        var port: Int?
        for await value in stream {
            port = value
            break
        }
        guard let port else {
            task.cancel()
            throw FunctionErrorReport(errorType: "Runtime.Unavailable", errorMessage: "the Runtime API server did not start on 127.0.0.1")
        }
        return RuntimeAPIServer(port: port, task: task)
    }

    func stop() { task.cancel() }

    static func serve(_ request: Request, api: RuntimeAPI) async -> Response {
        var headers: [String: String] = [:]
        for field in request.headers { headers[field.name.canonicalName.lowercased()] = field.value }
        let body: Data
        do {
            // A little over the response limit, so an oversize response is refused by the API itself.
            let buffer = try await request.body.collect(upTo: RuntimeAPI.maxResponseBytes + 1024 * 1024)
            body = Data(buffer.readableBytesView)
        } catch {
            return respond(.error(413, "RequestEntityTooLarge", "Exceeded maximum allowed payload size (\(RuntimeAPI.maxResponseBytes) bytes)."))
        }
        let path = request.uri.path
        return respond(await api.route(method: request.method.rawValue, path: path, headers: headers, body: body))
    }

    static func respond(_ reply: RuntimeAPIReply) -> Response {
        var fields = HTTPFields()
        for (name, value) in reply.headers.sorted(by: { $0.key < $1.key }) {
            if let name = HTTPFields.Element.Name(name) { fields.append(HTTPFields.Element(name: name, value: value)) }
        }
        return Response(status: .init(code: reply.status), headers: fields, body: .init(byteBuffer: ByteBuffer(data: reply.body)))
    }
}
