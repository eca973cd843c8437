import Foundation
import Hummingbird
import Logging
import NimbusRuntime
import NotifierCore
import QueueCore
import ServiceLifecycle
import Synchronization

/// The gateway as a Nimbus node: an HTTP server (the lab's POC-API) whose POST sends the body to
/// POC-Queue, answering only after the broker's durable acknowledgement.
public struct GatewayNodeService: NodeService {
    let configuration: NodeConfiguration
    private let bucket: Throttle

    public init(configuration: NodeConfiguration) {
        self.configuration = configuration
        let g = configuration.cluster.gateway
        bucket = Throttle(TokenBucket(rate: g.rateLimit, burst: g.burst, now: .now))
    }

    public var actions: Set<String> { [] }

    public func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data {
        throw WireError(.invalidAction, "the gateway answers HTTP, not \(request.header.action ?? "")")
    }

    public func healthDetails() async -> [String: String] {
        ["http": configuration.cluster.gateway.http, "queue": configuration.cluster.gateway.queueName]
    }

    public func run(runtime: NodeRuntime) async throws {
        let cluster = configuration.cluster
        let g = cluster.gateway
        let parts = g.http.split(separator: ":")
        let batcher = SendBatcher(
            client: runtime.client, endpoint: cluster.endpoint(.queue).description,
            queueURL: SQSNames.url(region: cluster.region, account: cluster.account, name: g.queueName),
            timeout: .milliseconds(g.queueTimeoutMilliseconds))
        let router = Router()
        router.add(middleware: AccessLog(logger: runtime.logger))
        // The console's count and timing of accepted POSTs (docs/console.md); nil when it is off.
        let meter = cluster.console.enabled ? PostMeter() : nil
        let post: @Sendable (Request, BasicRequestContext) async throws -> Response = { request, _ in
            // A queue known to be unreachable is said at once, not after the queue timeout.
            if let reason = runtime.readiness.unreachableReason("queue") {
                return Self.error(.serviceUnavailable, "The queue is unavailable: \(reason)")
            }
            guard let meter else { return try await send(request, batcher: batcher, logger: runtime.logger) }
            let started = ContinuousClock.now
            let response = try await send(request, batcher: batcher, logger: runtime.logger)
            if response.status == .ok { meter.record(since: started) }
            return response
        }
        for path in ["/", "/orders"] {
            router.post(RouterPath(path), use: post)
            for method in [HTTPRequest.Method.get, .put, .delete, .patch, .head] {
                router.on(RouterPath(path), method: method) { _, _ in
                    Self.error(.methodNotAllowed, "Method not allowed: use POST", headers: [.allow: "POST"])
                }
            }
        }
        // The links in SNS confirmation and notification mails (the notifier builds them on
        // notifier.publicBaseURL): a click confirms or ends a subscription. Forwarded with API
        // Gateway's service identity, not the POC-API role: the links are public in AWS too.
        router.get("/sns/confirm") { request, _ in
            await Self.subscriptionLink(request, action: SNSAction.confirmSubscription, required: ["TopicArn", "Token"],
                                        done: "Subscription confirmed!", client: runtime.platformClient, logger: runtime.logger)
        }
        router.get("/sns/unsubscribe") { request, _ in
            await Self.subscriptionLink(request, action: SNSAction.unsubscribe, required: ["SubscriptionArn"],
                                        done: "Subscription removed!", client: runtime.platformClient, logger: runtime.logger)
        }
        router.get("/health") { _, _ in
            // One reading: ready exactly when there is no reason not to be.
            let reason = runtime.readiness.reason
            var notReady = ""
            if let reason {
                notReady = ",\"notReady\":"
                JSONText.appendString(reason, to: &notReady)
            }
            return Self.json(.ok, #"{"status":"ok","name":"\#(runtime.identity.name)","incarnation":"\#(runtime.identity.incarnation)","#
                + #""live":true,"ready":\#(reason == nil)\#(notReady)}"#)
        }
        // The web console: its page and API at console.path, sending the lab's order the POST's way.
        let console = meter.map { meter in
            Console(runtime: runtime, meter: meter) { body in
                let started = ContinuousClock.now
                let sent = try await batcher.send(body)
                meter.record(since: started)
                return sent.MessageId
            }
        }
        console?.register(on: router)
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .nanoseconds(Int64(g.idleTimeoutSeconds * 1e9)))),
            configuration: .init(address: .hostname(String(parts[0]), port: Int(parts[1])!), serverName: "Nimbus"),
            logger: runtime.logger)
        let consoleNote = console.map { ", console at \($0.base)" } ?? ""
        runtime.logger.info("HTTP on http://\(g.http) (POST / and /orders -> \(g.queueName)\(consoleNote))")
        // Event streams last until their page closes: they end when the gateway is told to stop,
        // so the server's graceful shutdown need not wait for them.
        try await withGracefulShutdownHandler {
            try await app.run()
        } onGracefulShutdown: {
            console?.stop()
        }
    }

    /// POST: the lab's integration, SendMessage of the raw body, with none of its template's
    /// breakage on `&`, `+`, `%` or unicode: the bytes travel as they came.
    ///
    /// With an `Idempotency-Key` header the key travels to the broker with the message (the
    /// `NimbusIdempotencyKey` extension, docs/protocol.md), which enqueues it once per key and queue
    /// within 5 minutes and answers every repeat with the first send's MessageId and MD5: a client
    /// that retries after a timeout, a 503 or a killed gateway creates no duplicate. The key is kept
    /// by the broker, durably with the message, not here: this process may be killed at any moment.
    private func send(_ request: Request, batcher: SendBatcher, logger: Logger) async throws -> Response {
        guard bucket.take() else { return Self.error(.tooManyRequests, "Too Many Requests") }
        let idempotencyKey: String?
        switch Self.idempotencyKey(request.headers) {
        case .success(let key): idempotencyKey = key
        case .failure(let refusal): return Self.error(.badRequest, refusal.message)
        }
        let limit = configuration.cluster.gateway.maxBodyBytes
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch let error as HTTPResponseError where error.status == .contentTooLarge {
            return Self.error(.contentTooLarge, "Request body is larger than \(limit) bytes")
        }
        let valid = buffer.withUnsafeReadableBytes { JSONValidator.isValid($0) }
        guard buffer.readableBytes > 0, valid, let body = buffer.getString(at: buffer.readerIndex, length: buffer.readableBytes),
              body.utf8.count == buffer.readableBytes else {
            return Self.error(.badRequest, buffer.readableBytes == 0 ? "Request body is empty: send a JSON document" : "Request body is not valid JSON")
        }
        do {
            let sent = try await batcher.send(body, idempotencyKey: idempotencyKey)
            // A keyed answer's RequestId comes from its MessageId, so a repeat answers byte for byte the first.
            let requestID = idempotencyKey == nil ? UUID().uuidString.lowercased() : Self.requestID(replaying: sent.MessageId)
            return Self.json(.ok, """
                {"SendMessageResponse":{"ResponseMetadata":{"RequestId":"\(requestID)"},"SendMessageResult":{"MD5OfMessageAttributes":null,\
                "MD5OfMessageBody":"\(sent.MD5OfMessageBody)","MD5OfMessageSystemAttributes":null,"MessageId":"\(sent.MessageId)","SequenceNumber":null}}}
                """)
        } catch let error as WireError where error.code == "InvalidMessageContents" || error.code == "InvalidParameterValue" {
            return Self.error(.badRequest, error.message)
        } catch {
            logger.warning("SendMessage to the queue failed: \(error)")
            return Self.error(.serviceUnavailable, "The queue is unavailable: \(error)")
        }
    }

    // (HTTPField itself is not among what Hummingbird exports.)
    static let idempotencyKeyField = HTTPFields.Element.Name("Idempotency-Key")!

    struct KeyRefusal: Error {
        var message: String
    }

    /// The request's `Idempotency-Key` (any casing of the name), nil without one; refused when there
    /// are several, or when it is not 1 to 128 printable ASCII characters without space (as SQS's
    /// MessageDeduplicationId).
    static func idempotencyKey(_ headers: HTTPFields) -> Result<String?, KeyRefusal> {
        let values = headers[values: idempotencyKeyField]
        guard let key = values.first else { return .success(nil) }
        guard values.count == 1 else { return .failure(KeyRefusal(message: "Send one Idempotency-Key header, not \(values.count)")) }
        guard !QueueBroker.isValidIdempotencyKey(key) else { return .success(key) }
        let reason = key.isEmpty ? "it is empty"
            : key.utf8.count > 128 ? "it is \(key.utf8.count) bytes long" : "it holds a space, a control or a non-ASCII character"
        return .failure(KeyRefusal(message: "Invalid Idempotency-Key: \(reason); use 1 to 128 printable ASCII characters (no spaces)"))
    }

    /// The RequestId of an answer to a keyed POST: the MessageId's bytes XORed with a constant, shaped
    /// as a version 4 UUID. The same for every repeat of the key (so its answer is the first answer
    /// exactly), distinct from the MessageId, and distinct between messages.
    static func requestID(replaying messageID: String) -> String {
        guard let id = UUID(uuidString: messageID) else { return UUID().uuidString.lowercased() }
        var bytes = id.uuid
        let mask: [UInt8] = [0x6e, 0x69, 0x6d, 0x62, 0x75, 0x73, 0x2d, 0x72, 0x65, 0x71, 0x75, 0x65, 0x73, 0x74, 0x2d, 0x69]
        withUnsafeMutableBytes(of: &bytes) { raw in
            for i in 0..<16 { raw[i] ^= mask[i] }
            raw[6] = (raw[6] & 0x0F) | 0x40
            raw[8] = (raw[8] & 0x3F) | 0x80
        }
        return UUID(uuid: bytes).uuidString.lowercased()
    }

    /// Forwards a mail link's query parameters to the notifier and answers with a small page.
    static func subscriptionLink(_ request: Request, action: String, required: [String], done: String,
                                 client: NimbusClient, logger: Logger) async -> Response {
        var body: [String: String] = [:]
        for name in required {
            guard let value = request.uri.queryParameters[Substring(name)].map(String.init), !value.isEmpty else {
                return page(.badRequest, "Invalid link", "The link is missing its \(name) parameter.")
            }
            body[name] = value
        }
        do {
            let answer = try await client.request(action, to: .notifier, body: try JSONEncoder().encode(body), timeout: .seconds(3), attempts: 2)
            let arn = (try? JSONDecoder().decode([String: String].self, from: answer))?["SubscriptionArn"] ?? body["SubscriptionArn"] ?? ""
            return page(.ok, done, "Subscription: \(arn)")
        } catch let error as WireError where error.code == "InvalidParameter" || error.code == "NotFound" {
            return page(error.code == "NotFound" ? .notFound : .badRequest, "Request failed", "\(error.code): \(error.message)")
        } catch {
            logger.warning("\(action) for a mail link failed: \(error)")
            return page(.serviceUnavailable, "Try again later", "The notifier is unavailable: \(error)")
        }
    }

    static func page(_ status: HTTPResponse.Status, _ title: String, _ detail: String) -> Response {
        func escape(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        let html = "<!doctype html><html><head><title>\(escape(title))</title></head><body><h1>\(escape(title))</h1><p>\(escape(detail))</p></body></html>\n"
        return Response(status: status, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static func json(_ status: HTTPResponse.Status, _ text: String, headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// API Gateway's error shape: `{"message": "..."}`.
    static func error(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) -> Response {
        var text = "{\"message\":"
        JSONText.appendString(message, to: &text)
        return json(status, text + "}", headers: headers)
    }
}

/// One line per request, and API Gateway-style JSON for the router's own errors (404).
struct AccessLog: RouterMiddleware {
    typealias Context = BasicRequestContext
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as HTTPResponseError {
            response = GatewayNodeService.error(
                error.status, error.status == .notFound ? "Not Found: \(request.uri.path)" : (error as? HTTPError)?.body ?? error.status.reasonPhrase)
        }
        let elapsed = (ContinuousClock.now - start).components
        let micros = elapsed.seconds * 1_000_000 + elapsed.attoseconds / 1_000_000_000_000
        logger.info("\(request.method) \(request.uri.path) \(response.status.code) \(micros)us")
        return response
    }
}
