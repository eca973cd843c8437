import ArgumentParser
import Foundation
import NimbusRuntime
import Synchronization

/// End-to-end latency through a running cluster, measured by a client that adds little of its own:
/// orders are POSTed at a fixed rate over one keep-alive HTTP connection (a plain socket on its own
/// thread), and their notifications are taken from a subscriber of POC-Topic: an SQS queue read by
/// a long poll (`--via sqs`), or an http endpoint this bench serves and subscribes itself
/// (`--via http`; the notifier POSTs each notification to it). An order's latency runs from just
/// before its POST is written to the moment its notification is in the bench's hands.
/// `Scripts/lib/e2e_bench.py` sets the cluster up and runs this.
struct LatencyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "latency")

    @Option(help: "The gateway, e.g. http://127.0.0.1:8080") var http: String
    @Option(help: "The queue broker's endpoint, e.g. tcp://127.0.0.1:7102") var queue: String
    @Option(help: "The subscriber queue's URL (--via sqs).") var subscriber: String?
    @Option(help: "Where notifications are taken from: sqs (the --subscriber queue) or http (an endpoint served here).")
    var via: Via = .sqs
    @Option(help: "The notifier's endpoint, e.g. tcp://127.0.0.1:7104 (--via http: to subscribe).") var notifier: String?
    @Option(help: "The topic to subscribe to (--via http).") var topicArn = "arn:aws:sns:us-east-1:000000000000:POC-Topic"

    enum Via: String, ExpressibleByArgument { case sqs, http }
    @Option(help: "Credentials file to sign the subscriber's calls with (a cluster's root.json).") var credentials: String?
    @Option var rate = 20
    @Option var seconds = 10

    func run() async throws {
        guard let url = URL(string: http), let host = url.host, let port = url.port else { throw ValidationError("--http must be http://HOST:PORT") }
        let client = try NimbusClient.standalone(
            name: "latency-probe", credentials: credentials.map { CredentialSource(file: URL(fileURLWithPath: $0)) })
        let count = rate * seconds
        let timings = Timings(count: count)
        // The notifications of the last orders get 30 s after the last POST.
        let deadline = ContinuousClock.now + .seconds(seconds + 30)
        let receiving: Task<Void, Error>
        let endpoint: NotificationEndpoint?
        switch via {
        case .sqs:
            guard let subscriber else { throw ValidationError("--via sqs needs --subscriber") }
            endpoint = nil
            receiving = Task { try await receive(client, from: subscriber, timings: timings, until: deadline) }
        case .http:
            guard let notifier else { throw ValidationError("--via http needs --notifier") }
            let served = try NotificationEndpoint(timings: timings)
            endpoint = served
            let subscription = try await subscribe(client, notifier: notifier, endpoint: served)
            receiving = Task {
                while !timings.complete, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
                _ = try? await client.request("sns:Unsubscribe", to: notifier,
                                              body: try JSONSerialization.data(withJSONObject: ["SubscriptionArn": subscription]))
            }
        }
        defer { endpoint?.close() }
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, Error>) in
            // Blocking socket calls stay off the cooperative pool, which the receiver needs.
            Thread.detachNewThread {
                do {
                    try post(host: host, port: port, count: count, timings: timings)
                    done.resume()
                } catch { done.resume(throwing: error) }
            }
        }
        do { try await receiving.value } catch { await client.close(); throw error }
        await client.close()
        let latencies = timings.latencies()
        guard latencies.count == count else {
            throw ValidationError("only \(latencies.count) of \(count) orders were delivered within 30 s of the last POST")
        }
        let m = Measurement(latencies: latencies, seconds: Double(seconds), operations: count)
        let subscriberKind = via == .sqs ? "read from an SQS subscriber" : "POSTed to an http subscriber"
        print(String(format: "e2e latency at %d orders/s (%d orders, POST -> notification %@, Swift client): "
                     + "p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                     rate, count, subscriberKind, m.percentile(0.50) / 1000, m.percentile(0.99) / 1000, (latencies.max() ?? 0) / 1000))
        let steps = timings.breakdown()
        switch via {
        case .sqs:
            print(String(format: "  medians: POST answered %.1f ms; -> published by POC-Topic %.1f ms; -> in the subscriber queue %.1f ms; "
                         + "-> read by the long poll %.1f ms (the last three from the notification's Timestamp and SentTimestamp, ms resolution)",
                         steps[0], steps[1], steps[2], steps[3]))
        case .http:
            print(String(format: "  medians: POST answered %.1f ms; -> published by POC-Topic %.1f ms; -> POSTed to the endpoint %.1f ms "
                         + "(the last two from the notification's Timestamp, ms resolution)",
                         steps[0], steps[1], steps[3]))
        }
    }

    /// POSTs `count` orders at `rate`, each `{"item": ..., "seq": N}`, and checks every answer is a 200.
    func post(host: String, port: Int, count: Int, timings: Timings) throws {
        let socket = try HTTPConnection(host: host, port: port)
        defer { socket.close() }
        let start = ContinuousClock.now
        for seq in 0..<count {
            let due = start + .microseconds(seq * 1_000_000 / rate)
            let wait = due - ContinuousClock.now
            if wait > .zero { Thread.sleep(forTimeInterval: microseconds(wait) / 1e6) }
            let body = #"{"item": "latex gloves", "seq": \#(seq)}"#
            let request = "POST /orders HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
            timings.sent(seq)
            let status = try socket.exchange(Array(request.utf8))
            timings.answered(seq)
            guard status == 200 else { throw ValidationError("POST \(seq) answered \(status)") }
        }
    }

    /// Long-polls the subscriber queue, noting when each order's notification arrives, and deletes
    /// them; returns once every order's has arrived or at `deadline`.
    func receive(_ client: NimbusClient, from subscriber: String, timings: Timings, until deadline: ContinuousClock.Instant) async throws {
        let receive = try JSONSerialization.data(withJSONObject: [
            "QueueUrl": subscriber, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1, "AttributeNames": ["SentTimestamp"]] as [String: Any])
        while !timings.complete, ContinuousClock.now < deadline {
            let answer = try await client.request("sqs:ReceiveMessage", to: queue, body: receive, timeout: .seconds(5), attempts: 1)
            let now = ContinuousClock.now
            let messages = (try JSONSerialization.jsonObject(with: answer) as? [String: Any])?["Messages"] as? [[String: Any]] ?? []
            guard !messages.isEmpty else { continue }
            let wallNow = Date().timeIntervalSince1970
            for message in messages {
                guard let (seq, published) = Self.sequence(inNotification: message["Body"] as? String) else { continue }
                let queued = ((message["Attributes"] as? [String: String])?["SentTimestamp"]).flatMap(Double.init).map { $0 / 1000 }
                timings.arrived(seq, at: now, wall: wallNow, published: published, queued: queued)
            }
            let entries = messages.enumerated().map { ["Id": "m\($0.offset)", "ReceiptHandle": $0.element["ReceiptHandle"] as? String ?? ""] }
            _ = try await client.request("sqs:DeleteMessageBatch", to: queue,
                                         body: try JSONSerialization.data(withJSONObject: ["QueueUrl": subscriber, "Entries": entries] as [String: Any]))
        }
    }

    /// Subscribes `endpoint` to the topic over http and confirms it with the token of the
    /// SubscriptionConfirmation it is sent; returns the subscription's ARN.
    func subscribe(_ client: NimbusClient, notifier: String, endpoint: NotificationEndpoint) async throws -> String {
        _ = try await client.request("sns:Subscribe", to: notifier, body: try JSONSerialization.data(withJSONObject: [
            "TopicArn": topicArn, "Protocol": "http", "Endpoint": endpoint.url]))
        let limit = ContinuousClock.now + .seconds(10)
        while endpoint.confirmationToken == nil {
            guard ContinuousClock.now < limit else { throw ValidationError("no SubscriptionConfirmation reached \(endpoint.url) in 10 s") }
            try await Task.sleep(for: .milliseconds(10))
        }
        let answer = try await client.request("sns:ConfirmSubscription", to: notifier, body: try JSONSerialization.data(withJSONObject: [
            "TopicArn": topicArn, "Token": endpoint.confirmationToken ?? ""]))
        let document = try JSONSerialization.jsonObject(with: answer) as? [String: Any]
        guard let arn = (document?["ConfirmSubscriptionResult"] as? [String: Any])?["SubscriptionArn"] as? String ?? document?["SubscriptionArn"] as? String else {
            throw ValidationError("ConfirmSubscription answered \(String(decoding: answer, as: UTF8.self))")
        }
        return arn
    }

    /// The `seq` of the order inside an SNS notification (Message is the new image, whose `order`
    /// attribute is the POSTed body) and the notification's Timestamp, in seconds since 1970.
    static func sequence(inNotification body: String?) -> (Int, Double?)? {
        func object(_ text: String?) -> [String: Any]? {
            text.flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        let notification = object(body)
        let image = object(notification?["Message"] as? String)
        let order = object((image?["order"] as? [String: Any])?["S"] as? String)
        guard let seq = order?["seq"] as? Int else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let published = (notification?["Timestamp"] as? String).flatMap { formatter.date(from: $0) }?.timeIntervalSince1970
        return (seq, published)
    }
}

/// An http endpoint on 127.0.0.1 (a port of its own) for SNS deliveries: a thread accepts, a
/// thread per connection reads each POST whole, notes the order's arrival and answers 200. Keeps
/// the SubscriptionConfirmation's token.
final class NotificationEndpoint: @unchecked Sendable {
    private let listener: Int32
    let url: String
    private let timings: Timings
    private let token = Mutex<String?>(nil)
    var confirmationToken: String? { token.withLock { $0 } }

    init(timings: Timings) throws {
        self.timings = timings
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && listen(listener, 16) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        guard bound else { throw ValidationError("cannot listen on 127.0.0.1: errno \(errno)") }
        url = "http://127.0.0.1:\(UInt16(bigEndian: address.sin_port))/notifications"
        let fd = listener
        Thread.detachNewThread { [self] in
            while true {
                let connection = accept(fd, nil, nil)
                if connection < 0 { if errno == EINTR { continue }; return }
                Thread.detachNewThread { self.serve(connection) }
            }
        }
    }

    func close() {
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
    }

    private func serve(_ connection: Int32) {
        defer { Glibc.close(connection) }
        var one: Int32 = 1
        setsockopt(connection, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        let ok = Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8)
        while true {
            if let (head, end) = HTTPMessage.firstComplete(in: buffer) {
                let arrived = ContinuousClock.now
                let wall = Date().timeIntervalSince1970
                let body = String(decoding: buffer[head..<end], as: UTF8.self)
                buffer.removeFirst(end)
                _ = ok.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                take(body, arrived: arrived, wall: wall)
                continue
            }
            let n = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return }
            buffer += chunk[..<n]
        }
    }

    private func take(_ body: String, arrived: ContinuousClock.Instant, wall: Double) {
        if let (seq, published) = LatencyBench.sequence(inNotification: body) {
            timings.arrived(seq, at: arrived, wall: wall, published: published, queued: nil)
        } else if let document = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any],
                  document["Type"] as? String == "SubscriptionConfirmation", let value = document["Token"] as? String {
            token.withLock { $0 = value }
        }
    }
}

/// When each order was sent and when its notification arrived.
final class Timings: Sendable {
    private struct State {
        var sent: [ContinuousClock.Instant?]
        var arrived: [ContinuousClock.Instant?]
        var arrivals = 0
        /// Wall-clock seconds, for the breakdown: POST sent, POST answered, notification published
        /// (its Timestamp), queued at the subscriber (SentTimestamp, ms), read by the long poll.
        var stages: [[Double?]]
    }
    private let state: Mutex<State>
    let count: Int

    init(count: Int) {
        self.count = count
        state = Mutex(State(sent: Array(repeating: nil, count: count), arrived: Array(repeating: nil, count: count),
                            stages: Array(repeating: Array(repeating: nil, count: 5), count: count)))
    }

    func sent(_ seq: Int) {
        let wall = Date().timeIntervalSince1970
        let now = ContinuousClock.now
        state.withLock { $0.sent[seq] = now; $0.stages[seq][0] = wall }
    }

    func answered(_ seq: Int) {
        let wall = Date().timeIntervalSince1970
        state.withLock { $0.stages[seq][1] = wall }
    }

    func arrived(_ seq: Int, at instant: ContinuousClock.Instant, wall: Double, published: Double?, queued: Double?) {
        guard seq >= 0, seq < count else { return }
        state.withLock {
            if $0.arrived[seq] == nil {
                $0.arrived[seq] = instant
                $0.arrivals += 1
                $0.stages[seq][2] = published
                $0.stages[seq][3] = queued
                $0.stages[seq][4] = wall
            }
        }
    }

    /// Median ms of each step between consecutive stages, over the orders where both are known (a
    /// stage not known for any order, as the queue's SentTimestamp for an http subscriber, is
    /// skipped: the step after it runs from the stage before).
    func breakdown() -> [Double] {
        state.withLock { s in
            (0..<4).map { step in
                let gaps = s.stages.compactMap { row -> Double? in
                    guard let a = row[step] ?? (step > 0 ? row[step - 1] : nil), let b = row[step + 1] else { return nil }
                    return (b - a) * 1000
                }.sorted()
                return gaps.isEmpty ? .nan : gaps[gaps.count / 2]
            }
        }
    }

    var complete: Bool { state.withLock { $0.arrivals == count } }

    /// µs from send to arrival, for every order that arrived.
    func latencies() -> [Double] {
        state.withLock { s in
            zip(s.sent, s.arrived).compactMap { sent, arrived in
                guard let sent, let arrived else { return nil }
                return microseconds(arrived - sent)
            }
        }
    }
}

/// One blocking HTTP/1.1 keep-alive connection: writes a request, reads the status and the body.
final class HTTPConnection {
    private let fd: Int32
    private var buffer: [UInt8] = []

    init(host: String, port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ValidationError("socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr) == 1 else {
            throw ValidationError("--http needs an IPv4 address, not \(host)")
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { Glibc.close(fd); throw ValidationError("connect to \(host):\(port): errno \(errno)") }
    }

    func close() { Glibc.close(fd) }

    /// Sends `request` and returns the answer's status once its whole body is read.
    func exchange(_ request: [UInt8]) throws -> Int {
        var written = 0
        while written < request.count {
            let n = request[written...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw ValidationError("send: errno \(errno)") }
            written += n
        }
        while true {
            if let (head, end) = HTTPMessage.firstComplete(in: buffer) {
                let statusLine = String(decoding: buffer[..<head], as: UTF8.self)
                let status = Int(statusLine.split(separator: " ", maxSplits: 2).dropFirst().first ?? "") ?? 0
                buffer.removeFirst(end)
                return status
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw ValidationError("the gateway closed the connection (errno \(errno))") }
            buffer += chunk[..<n]
        }
    }
}

/// The framing both of the bench's HTTP ends need: a message is its head, then Content-Length bytes
/// (the gateway's answers and the notifier's POSTs always carry one).
enum HTTPMessage {
    /// Where the first complete message's head ends (its body starts) and where the message ends;
    /// nil while it is incomplete.
    static func firstComplete(in buffer: [UInt8]) -> (head: Int, end: Int)? {
        guard let head = buffer.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound else { return nil }
        let length = String(decoding: buffer[..<head], as: UTF8.self).split(separator: "\r\n")
            .first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        return buffer.count >= head + length ? (head, head + length) : nil
    }
}
