import Foundation
import Hummingbird
import Logging
import NimbusRuntime
import QueueCore
import Synchronization

/// The web console's HTTP side (docs/console.md): the page's static files at `console.path`, and
/// its JSON API under `<console.path>api/`, each call checked against the bearer token in
/// `<data>/console-token`. Registered on the gateway's router beside POC-API's routes, which it
/// leaves as they are (the router finds the console's paths in their own branch).
final class Console: Sendable {
    /// `/console/`: begins and ends with "/".
    let base: String
    let backend: ConsoleBackend
    let sampler: FlowSampler
    let traces: LabTraces
    let files: ConsoleFiles?
    let token: ConsoleTokenFile
    let logger: Logger
    /// Sends a body to POC-Queue as the gateway's POST does (its SendBatcher); the MessageId.
    let send: @Sendable (String) async throws -> String

    init(runtime: NodeRuntime, meter: PostMeter, send: @escaping @Sendable (String) async throws -> String) {
        let backend = ConsoleBackend(runtime: runtime)
        self.backend = backend
        base = runtime.cluster.console.path
        sampler = FlowSampler(backend: backend, meter: meter, gatewayName: runtime.identity.name)
        traces = LabTraces(backend: backend)
        files = ConsoleFiles.locate(logger: runtime.logger)
        token = ConsoleTokenFile(ConsoleToken.file(dataDirectory: runtime.configuration.dataDirectory), logger: runtime.logger)
        logger = runtime.logger
        self.send = send
    }

    /// Adds the console's routes: its path itself and everything below it, any method.
    func register(on router: Router<BasicRequestContext>) {
        let root = String(base.dropLast())
        for path in [root, root + "/**"] {
            for method in [HTTPRequest.Method.get, .head, .post, .put, .delete, .patch] {
                router.on(RouterPath(path), method: method) { request, _ in await self.respond(request) }
            }
        }
    }

    /// Ends the samplers and the event streams (graceful shutdown).
    func stop() { sampler.stop() }

    func respond(_ request: Request) async -> Response {
        let path = request.uri.path
        if path + "/" == base {
            var headers = ConsoleHeaders.fields(contentType: "text/plain; charset=utf-8")
            headers[.location] = base
            return Response(status: .movedPermanently, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "See \(base)\n")))
        }
        guard path.hasPrefix(base) else { return ConsoleHeaders.error(.init(.notFound, "NotFound", "Not Found: \(path)")) }
        let rest = String(path.dropFirst(base.count))
        if rest == "api" || rest.hasPrefix("api/") {
            return await api(request, route: String(rest.dropFirst(4)))
        }
        guard request.method == .get || request.method == .head else {
            var headers = ConsoleHeaders.fields(contentType: "application/json")
            headers[.allow] = "GET, HEAD"
            return Response(status: .methodNotAllowed, headers: headers,
                            body: .init(byteBuffer: ByteBuffer(bytes: WireError(code: "MethodNotAllowed", message: "the console's files are read with GET").jsonData)))
        }
        guard let files, let response = files.response(for: rest.isEmpty ? "index.html" : rest, head: request.method == .head) else {
            return ConsoleHeaders.error(.init(.notFound, "NotFound", "Not Found: \(path)"))
        }
        return response
    }

    // MARK: The API

    /// Bearer token first; then the route. Nothing a client sends ends the gateway: every failure
    /// is answered as `{"code", "message"}`.
    private func api(_ request: Request, route: String) async -> Response {
        if let refusal = authorize(request) { return ConsoleHeaders.error(refusal) }
        sampler.touch()
        let parts = route.split(separator: "/", omittingEmptySubsequences: true).map { String($0).removingPercentEncoding ?? String($0) }
        let method = request.method
        do {
            switch parts {
            case ["cluster"]: try only(.get, method); return try await cluster()
            case ["cluster", "scale"]: try only(.post, method); return try await scale(request.consoleObject())
            case ["cluster", "kill"]: try only(.post, method); return try await kill(request.consoleObject())
            case ["cluster", "restart"]: try only(.post, method); return try await restart(request.consoleObject())
            case ["flow"]: try only(.get, method); return try await flow()
            case ["events"]: try only(.get, method); return events()
            case ["items"]: try only(.get, method); return try await items(request.uri.queryParameters)
            case ["queue"]: try only(.get, method); return try await queue()
            case ["queue", "send"]: try only(.post, method); return try await sendMessage(request.consoleObject())
            case ["queue", "poll"]: try only(.post, method); return try await poll(request.consoleObject())
            case ["functions"]: try only(.get, method); return try await functions()
            case ["templates"]: try only(.get, method); return templates()
            case ["topic"]: try only(.get, method); return try await topic()
            case ["topic", "subscribe"]: try only(.post, method); return try await subscribe(request.consoleObject())
            case ["topic", "publish"]: try only(.post, method); return try await publish(request.consoleObject())
            case ["inbox"]: try only(.get, method); return inbox()
            case ["lab", "order"]: try only(.post, method); return try await labOrder(request.consoleObject())
            case ["lab", "trace"]: try only(.get, method); return try labTrace(request.uri.queryParameters)
            default:
                if parts.count == 3, parts[0] == "functions", parts[2] == "invoke" {
                    try only(.post, method)
                    return try await invoke(parts[1], request.consoleObject())
                }
                throw ConsoleError(.notFound, "NotFound", "the console has no API at \(request.uri.path)")
            }
        } catch let error as ConsoleError {
            if error.status.code >= 500 { logger.warning("console \(request.method) \(request.uri.path): \(error)") }
            return ConsoleHeaders.error(error)
        } catch {
            logger.error("console \(request.method) \(request.uri.path): \(error)")
            return ConsoleHeaders.error(ConsoleError(.internalServerError, "InternalFailure", "\(error)"))
        }
    }

    private func only(_ allowed: HTTPRequest.Method, _ method: HTTPRequest.Method) throws(ConsoleError) {
        guard method == allowed else { throw ConsoleError(.methodNotAllowed, "MethodNotAllowed", "use \(allowed.rawValue) here") }
    }

    /// `Authorization: Bearer <token>`: missing (or another scheme) 401, wrong 403.
    func authorize(_ request: Request) -> ConsoleError? {
        guard let header = request.headers[.authorization] else {
            return ConsoleError(.unauthorized, "MissingAuthenticationToken", "send Authorization: Bearer <token> (the token is in the console URL nimbus up printed)")
        }
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard trimmed.count > 7, trimmed.prefix(7).lowercased() == "bearer " else {
            return ConsoleError(.unauthorized, "MissingAuthenticationToken", "the Authorization header must be Bearer <token>")
        }
        let given = trimmed.dropFirst(7).trimmingCharacters(in: .whitespaces)
        guard let expected = token.current() else {
            return ConsoleError(.forbidden, "InvalidToken", "the gateway has no console token (\(token.file.path))")
        }
        return ConsoleToken.matches(given, expected) ? nil : ConsoleError(.forbidden, "InvalidToken", "the console token is not valid")
    }

    /// Server-sent events: `event: cluster` and `event: flow` once a second from the shared sample,
    /// and a comment line every 15 s. Ends when the client goes away or the gateway stops.
    private func events() -> Response {
        var headers = ConsoleHeaders.fields(contentType: "text/event-stream; charset=utf-8", cache: "no-store")
        headers[HTTPFields.Element.Name("X-Accel-Buffering")!] = "no"
        let sampler = self.sampler
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            sampler.subscribe()
            defer { sampler.unsubscribe() }
            // Something at once, so the client sees the stream open before the first sample.
            try await writer.write(ByteBuffer(string: ": nimbus console events\n\n"))
            var generation = 0
            var lastComment = ContinuousClock.now
            loop: while true {
                switch await sampler.next(after: generation, timeout: .seconds(5)) {
                case .sample(let sample):
                    generation = sample.generation
                    try await writer.write(sample.events)
                case .timeout:
                    break
                case .stopped:
                    break loop
                }
                if ContinuousClock.now - lastComment >= .seconds(15) {
                    try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                    lastComment = .now
                }
            }
            try await writer.finish(nil)
        })
    }
}

/// The console token as the gateway knows it: `<data>/console-token`, looked at again at most once
/// a second and read again when its modification time changes. Made here when missing (a gateway
/// run without `nimbus up`), exclusively, so it never replaces one `up` made.
final class ConsoleTokenFile: Sendable {
    let file: URL
    private let state = Mutex<(token: String?, modified: Date?, checked: ContinuousClock.Instant?)>((nil, nil, nil))

    init(_ file: URL, logger: Logger) {
        self.file = file
        if ConsoleToken.read(file) == nil {
            do {
                _ = try ConsoleToken.ensure(file)
                logger.info("console token made in \(file.path)")
            } catch {
                logger.warning("console: no token and cannot make one: \(error)")
            }
        }
    }

    /// The token, re-read at most once a second when the file changed. The check and the read are
    /// one step under the lock, so concurrent first callers cannot see a time checked before the
    /// token was stored; a missing token is not cached.
    func current() -> String? {
        let now = ContinuousClock.now
        return state.withLock { s in
            if let checked = s.checked, now - checked < .seconds(1), s.token != nil { return s.token }
            s.checked = now
            let modified = (try? FileManager.default.attributesOfItem(atPath: file.path))?[.modificationDate] as? Date
            if s.token == nil || modified != s.modified || modified == nil {
                s.token = ConsoleToken.read(file)
                s.modified = modified
            }
            return s.token
        }
    }
}

/// The console's page and its files, from the GatewayService package resources (`Console/`).
struct ConsoleFiles: Sendable {
    let directory: URL

    static let contentTypes: [String: String] = [
        "html": "text/html; charset=utf-8", "css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8",
        "mjs": "text/javascript; charset=utf-8", "json": "application/json", "svg": "image/svg+xml", "png": "image/png",
        "ico": "image/x-icon", "txt": "text/plain; charset=utf-8", "woff2": "font/woff2", "map": "application/json",
    ]

    /// The resources' Console folder. SwiftPM's `Bundle.module` stops the process when its bundle
    /// is missing (an executable copied without `Nimbus_GatewayService.resources` beside it), so
    /// the bundle is looked for first and the console serves no page without it.
    static func locate(logger: Logger) -> ConsoleFiles? {
        let bundleName = "Nimbus_GatewayService.resources"
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
        let candidates = [Bundle.main.bundleURL.appendingPathComponent(bundleName), executable.appendingPathComponent(bundleName)]
        guard candidates.contains(where: { FileManager.default.fileExists(atPath: $0.path) }) else {
            logger.warning("console: \(bundleName) is not beside the executable: the page is not served (its API is)")
            return nil
        }
        guard let directory = Bundle.module.url(forResource: "Console", withExtension: nil) else {
            logger.warning("console: the Console folder is missing from \(bundleName)")
            return nil
        }
        return ConsoleFiles(directory: directory)
    }

    /// A file's answer; nil for a name that is not one of the console's files (404). Names are
    /// plain: letters, digits, "-", "_", "." and "/" between folders, no hidden files, no "..".
    func response(for relative: String, head: Bool = false) -> Response? {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: false)
        guard !parts.isEmpty, parts.allSatisfy({ part in
            !part.isEmpty && !part.hasPrefix(".") && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
        }) else { return nil }
        guard let ext = parts.last?.split(separator: ".").last.map({ $0.lowercased() }), parts.last!.contains("."),
              let type = Self.contentTypes[ext] else { return nil }
        let url = directory.appendingPathComponent(relative)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue,
              let data = FileManager.default.contents(atPath: url.path) else { return nil }
        var headers = ConsoleHeaders.fields(contentType: type, cache: "no-cache")
        headers[.contentLength] = String(data.count)
        return Response(status: .ok, headers: headers, body: head ? .init() : .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
