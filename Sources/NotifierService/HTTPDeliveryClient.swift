import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// POSTs SNS's http and https deliveries over HTTP/1.1 keep-alive connections: a few per origin
/// (scheme, host, port), each with its own serial DispatchQueue doing blocking I/O, so a slow
/// endpoint holds up only its own connections, and no I/O runs on Swift's cooperative pool.
/// Replaces Foundation's URLSession (libcurl on Linux): the end-to-end p50 at 20 orders/s to an
/// http subscriber fell from 5.4–5.7 to 4.5–4.6 ms (docs/notifier.md). Redirects are not followed:
/// a 3xx is a failed delivery.
final class HTTPDeliveryClient: Sendable {
    /// Bounds a whole request: connecting, writing, and reading the answer.
    let timeoutSeconds: Double
    /// Connections (and DispatchQueues) per origin.
    let connectionsPerOrigin: Int
    private let origins = Mutex<[HTTPOrigin: OriginConnections]>([:])
    /// The system's CA store; made on the first https delivery.
    private let tlsContext = Mutex<TLSClientContext?>(nil)
    /// Bounds the exchanges running at once over all origins: each holds a thread in blocking I/O,
    /// and many stuck endpoints must not take every thread Dispatch will make (the SMTP client's
    /// too). A request past the bound waits, suspended, for a running one to end.
    private let running: Slots

    init(timeoutSeconds: Double = 15, connectionsPerOrigin: Int = 4, maxRunning: Int = 64) {
        self.timeoutSeconds = timeoutSeconds
        self.connectionsPerOrigin = connectionsPerOrigin
        running = Slots(maxRunning)
    }

    /// POSTs `body` to `endpoint` with `headers` (Host, Content-Length and, for a URL with user
    /// info, Authorization are added); returns the answer's status code once it is read whole.
    func post(_ endpoint: String, headers: [(String, String)], body: [UInt8]) async throws -> Int {
        let target = try HTTPTarget(endpoint)
        let request = target.request(headers: headers, body: body)
        let connections = origins.withLock { origins in
            if let known = origins[target.origin] { return known }
            let made = OriginConnections(origin: target.origin, count: connectionsPerOrigin)
            origins[target.origin] = made
            return made
        }
        let tls = target.origin.secure ? try context() : nil
        let connection = connections.take()
        defer { connection.requests.subtract(1, ordering: .relaxed) }
        let timeout = timeoutSeconds
        try await running.acquire()
        let slots = running
        // The slot is given back when the exchange ends (not when a cancelled caller stops waiting
        // for it), or at once when it never starts.
        return try await BlockingTCP.run(on: connection.queue, skipped: { slots.release() }) {
            defer { slots.release() }
            return try connection.exchange(request, tls: tls, timeout: timeout)
        }
    }

    /// Closes every kept connection (at shutdown).
    func close() {
        for connections in origins.withLock({ $0.values }) { connections.close() }
    }

    private func context() throws -> TLSClientContext {
        try tlsContext.withLock { context in
            if let context { return context }
            // Servers often close without close_notify after an answer that runs to the close (and
            // only the status matters here); OpenSSL 3 would call that an error.
            let made = try TLSClientContext(caFile: nil, toleratingUnexpectedEOF: true)
            context = made
            return made
        }
    }
}

/// A counting semaphore for async callers: `acquire` suspends (never blocks a thread) while all
/// slots are taken; a cancelled waiter gives up its place.
final class Slots: Sendable {
    private struct State {
        var free: Int
        var waiters: [(id: Int, continuation: CheckedContinuation<Void, Error>)] = []
        var nextID = 0
    }
    private let state: Mutex<State>

    init(_ count: Int) { state = Mutex(State(free: max(1, count))) }

    var free: Int { state.withLock { $0.free } }
    var waiting: Int { state.withLock { $0.waiters.count } }

    func acquire() async throws {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
                // Decided under the lock: a cancellation after the waiter is queued finds it there
                // (onCancel), one before is seen here; either way it is resumed once.
                let granted = state.withLock { s -> Bool? in
                    if Task.isCancelled { return false }
                    if s.free > 0 {
                        s.free -= 1
                        return true
                    }
                    s.waiters.append((id, continuation))
                    return nil
                }
                switch granted {
                case true?: continuation.resume()
                case false?: continuation.resume(throwing: CancellationError())
                case nil: break
                }
            }
        } onCancel: {
            let waiter = state.withLock { s -> CheckedContinuation<Void, Error>? in
                guard let index = s.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.waiters.remove(at: index).continuation
            }
            waiter?.resume(throwing: CancellationError())
        }
    }

    func release() {
        let next = state.withLock { s -> CheckedContinuation<Void, Error>? in
            if s.waiters.isEmpty {
                s.free += 1
                return nil
            }
            return s.waiters.removeFirst().continuation
        }
        next?.resume()
    }
}

/// Where a connection goes: TLS or not, host, port.
struct HTTPOrigin: Hashable, Sendable {
    var secure: Bool
    var host: String
    var port: Int
}

/// An endpoint URL taken apart for one request.
struct HTTPTarget: Sendable {
    var origin: HTTPOrigin
    /// Path and query, as in the URL ("/" when it has no path).
    var requestTarget: String
    /// The Host header's value: the host (an IPv6 address in brackets), and the port when not the default.
    var hostHeader: String
    /// "user:password" from the URL (percent-decoded), sent as HTTP Basic authentication, as SNS does.
    var userInfo: String?

    init(_ endpoint: String) throws {
        guard let url = URLComponents(string: endpoint), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = url.host, !host.isEmpty else {
            throw SenderError("not an http or https URL: \(endpoint)")
        }
        let secure = scheme == "https"
        let port = url.port ?? (secure ? 443 : 80)
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        origin = HTTPOrigin(secure: secure, host: bare, port: port)
        let path = url.percentEncodedPath.isEmpty ? "/" : url.percentEncodedPath
        requestTarget = url.percentEncodedQuery.map { "\(path)?\($0)" } ?? path
        let named = bare.contains(":") ? "[\(bare)]" : bare
        hostHeader = url.port == nil ? named : "\(named):\(port)"
        userInfo = url.user.map { "\($0):\(url.password ?? "")" }
    }

    /// The request's bytes. Header values with a line break are dropped: they would end the header.
    func request(headers: [(String, String)], body: [UInt8]) -> [UInt8] {
        var head = "POST \(requestTarget) HTTP/1.1\r\nHost: \(hostHeader)\r\nContent-Length: \(body.count)\r\n"
        if let userInfo { head += "Authorization: Basic \(Data(userInfo.utf8).base64EncodedString())\r\n" }
        for (name, value) in headers where !name.contains(where: \.isNewline) && !value.contains(where: \.isNewline) {
            head += "\(name): \(value)\r\n"
        }
        head += "\r\n"
        return Array(head.utf8) + body
    }
}

/// The connections of one origin. A request goes to the one with the fewest requests on it, the
/// first of those: one at a time, they all use the first connection (kept warm, and a server that
/// serves one connection at a time is not kept waiting on a second); more open under load.
final class OriginConnections: Sendable {
    private let connections: [KeptConnection]

    init(origin: HTTPOrigin, count: Int) {
        connections = (0..<max(1, count)).map { KeptConnection(origin: origin, index: $0) }
    }

    /// The connection for the next request, its count of requests raised (the caller lowers it).
    func take() -> KeptConnection {
        var chosen = connections[0]
        var fewest = chosen.requests.load(ordering: .relaxed)
        for connection in connections.dropFirst() where fewest > 0 {
            let count = connection.requests.load(ordering: .relaxed)
            if count < fewest { (chosen, fewest) = (connection, count) }
        }
        chosen.requests.add(1, ordering: .relaxed)
        return chosen
    }

    func close() {
        for connection in connections { connection.queue.async { connection.drop() } }
    }
}

/// One kept-alive connection and the serial queue that alone touches it.
final class KeptConnection: @unchecked Sendable {
    let origin: HTTPOrigin
    let queue: DispatchQueue
    /// Requests queued on or running on this connection.
    let requests = Atomic<Int>(0)
    // Only touched on `queue` (that is what makes the class safe to share).
    private var socket: HTTPSocket?

    init(origin: HTTPOrigin, index: Int) {
        self.origin = origin
        queue = DispatchQueue(label: "nimbus.notifier.http.\(origin.host):\(origin.port).\(index)")
    }

    /// One request and its answer, on `queue`. A kept connection the server has closed meanwhile
    /// fails before any answer arrives: then once more on a fresh one (not after a wait that used
    /// up the time: that was an endpoint not answering).
    func exchange(_ request: [UInt8], tls: TLSClientContext?, timeout: Double) throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        if let kept = socket {
            do {
                return try exchange(request, on: kept, deadline: deadline)
            } catch let failure as HTTPSocket.Failure where failure.beforeAnswer && Date() < deadline {
                drop()
            } catch {
                drop()
                throw error
            }
        }
        let fresh = try HTTPSocket(origin: origin, tls: tls, timeout: timeout)
        socket = fresh
        do {
            return try exchange(request, on: fresh, deadline: deadline)
        } catch {
            drop()
            throw error
        }
    }

    private func exchange(_ request: [UInt8], on socket: HTTPSocket, deadline: Date) throws -> Int {
        try socket.write(request)
        while true {
            let answer = try socket.readAnswer(deadline: deadline)
            if (100..<200).contains(answer.status) && answer.status != 101 { continue }  // interim (100 Continue)
            if !answer.keepAlive { drop() }
            return answer.status
        }
    }

    func drop() {
        socket?.close()
        socket = nil
    }
}

/// A connected socket (TLS for https) and what has been read from it.
final class HTTPSocket {
    /// An I/O failure. `beforeAnswer`: nothing of the answer had arrived (a kept connection closed
    /// by the server while idle looks like this).
    struct Failure: Error, CustomStringConvertible {
        var description: String
        var beforeAnswer: Bool
    }

    /// Answers larger than this are not read to their end: the connection is closed instead.
    static let maxAnswerBytes = 1 << 20

    private var fd: Int32
    private var tls: TLSStream?
    private var buffer: [UInt8] = []
    private let origin: HTTPOrigin

    init(origin: HTTPOrigin, tls: TLSClientContext?, timeout: Double) throws {
        self.origin = origin
        switch BlockingTCP.connect(host: origin.host, port: origin.port, timeout: timeout) {
        case .success(let s): fd = s
        case .failure(.unresolved(let reason)): throw SenderError("cannot resolve \(origin.host): \(reason)")
        case .failure(.refused(let reason)): throw SenderError("cannot connect to \(origin.host):\(origin.port): \(reason)")
        }
        if let tls {
            do { self.tls = try TLSStream(context: tls, socket: fd, host: origin.host) } catch { close(); throw error }
        }
    }

    deinit { close() }

    func close() {
        tls?.close()
        tls = nil
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }

    func write(_ bytes: [UInt8]) throws {
        buffer.removeAll(keepingCapacity: true)
        if let tls {
            do { try tls.write(bytes) } catch { throw Failure(description: "\(error)", beforeAnswer: true) }
        } else if let failure = BlockingTCP.send(fd, bytes) {
            throw Failure(description: "writing to \(origin.host):\(origin.port) failed: \(failure)", beforeAnswer: true)
        }
    }

    /// Reads one answer whole (its body is read and dropped) and returns its status.
    func readAnswer(deadline: Date) throws -> (status: Int, keepAlive: Bool) {
        var closed = false
        while true {
            switch try HTTPAnswerParser.parse(buffer[...]) {
            case .complete(let status, let keepAlive, let length):
                buffer.removeFirst(length)
                return (status, keepAlive)
            case .untilClose(let status) where closed || buffer.count > Self.maxAnswerBytes:
                return (status, false)
            case .headTooLarge:
                throw SenderError("\(origin.host):\(origin.port) answered with a header over \(HTTPAnswerParser.maxHeadBytes) bytes")
            case .incomplete, .untilClose:
                if closed {
                    throw Failure(description: "\(origin.host):\(origin.port) closed the connection before its answer was complete",
                                  beforeAnswer: buffer.isEmpty)
                }
                if buffer.count > Self.maxAnswerBytes, let status = HTTPAnswerParser.status(buffer[...]) { return (status, false) }
                guard Date() < deadline else { throw SenderError("\(origin.host):\(origin.port) did not answer in time") }
                closed = try fill() == 0
            }
        }
    }

    /// Appends what the socket has (waiting for it); 0 when the server closed the connection.
    private func fill() throws -> Int {
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n: Int
            if let tls {
                do { n = try chunk.withUnsafeMutableBytes { try tls.read(into: $0) } } catch {
                    throw Failure(description: "\(error)", beforeAnswer: buffer.isEmpty)
                }
            } else {
                n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK { throw SenderError("\(origin.host):\(origin.port) did not answer in time") }
                    throw Failure(description: "reading from \(origin.host):\(origin.port) failed: \(String(cString: strerror(errno)))",
                                  beforeAnswer: buffer.isEmpty)
                }
            }
            buffer += chunk[..<n]
            return n
        }
    }
}

/// Where an HTTP/1.x answer ends in the bytes read so far (RFC 9112: Content-Length, chunked, or
/// the connection's close), and whether the connection stays open after it. Pure, for tests.
enum HTTPAnswerParser {
    enum Parse: Equatable {
        /// More bytes are needed.
        case incomplete
        /// The answer is the first `length` bytes.
        case complete(status: Int, keepAlive: Bool, length: Int)
        /// The head is read; the body has no length and runs until the server closes.
        case untilClose(status: Int)
        /// No end of the head within `maxHeadBytes`.
        case headTooLarge
    }

    static let maxHeadBytes = 65_536

    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    static func parse(_ bytes: ArraySlice<UInt8>) throws -> Parse {
        guard let headEnd = endOfHead(bytes) else { return bytes.count > maxHeadBytes ? .headTooLarge : .incomplete }
        let lines = headLines(bytes[bytes.startIndex..<headEnd])
        guard let statusLine = lines.first, let status = statusCode(statusLine) else {
            throw Malformed(description: "not an HTTP answer: \(String(lines.first ?? "").prefix(80))")
        }
        let http10 = statusLine.hasPrefix("HTTP/1.0")
        var length: Int?
        var chunked = false
        var connection: [Substring] = []
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw Malformed(description: "a header line without a colon: \(line.prefix(80))") }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch name {
            case "content-length":
                guard let n = Int(value), n >= 0, value.allSatisfy(\.isASCIIDigit), length == nil || length == n else {
                    throw Malformed(description: "a bad Content-Length: \(value.prefix(40))")
                }
                length = n
            case "transfer-encoding":
                chunked = value.split(separator: ",").last?.trimmingCharacters(in: .whitespaces).lowercased() == "chunked"
            case "connection":
                connection += value.lowercased().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces)[...] }
            default:
                break
            }
        }
        let keepAlive = http10 ? connection.contains("keep-alive") : !connection.contains("close")
        let headLength = headEnd - bytes.startIndex
        if (100..<200).contains(status) || status == 204 || status == 304 {
            return .complete(status: status, keepAlive: keepAlive, length: headLength)
        }
        if chunked {
            guard let bodyLength = try chunkedLength(bytes[headEnd...]) else { return .incomplete }
            return .complete(status: status, keepAlive: keepAlive, length: headLength + bodyLength)
        }
        if let length {
            return bytes.count - headLength >= length ? .complete(status: status, keepAlive: keepAlive, length: headLength + length) : .incomplete
        }
        return .untilClose(status: status)
    }

    /// The status code of an answer whose head is read, else nil.
    static func status(_ bytes: ArraySlice<UInt8>) -> Int? {
        guard let end = endOfHead(bytes), let line = headLines(bytes[bytes.startIndex..<end]).first else { return nil }
        return statusCode(line)
    }

    /// The head's lines without their line ends, split on the bytes (in a Swift String, CR LF is a
    /// single Character, which a split on "\n" would not find).
    private static func headLines(_ head: ArraySlice<UInt8>) -> [Substring] {
        head.split(separator: 10, omittingEmptySubsequences: false).map { line in
            Substring(String(decoding: line.last == 13 ? line.dropLast() : line, as: UTF8.self))
        }
    }

    /// "HTTP/1.1 200 OK" → 200.
    private static func statusCode(_ line: Substring) -> Int? {
        let parts = line.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3, let code = Int(parts[1]), code >= 100 else { return nil }
        return code
    }

    /// The index just past the empty line that ends the head (CRLF CRLF, or a bare LF LF).
    private static func endOfHead(_ bytes: ArraySlice<UInt8>) -> Int? {
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if bytes[i] == 10 {
                let next = i + 1
                if next < bytes.endIndex, bytes[next] == 10 { return next + 1 }
                if next + 1 < bytes.endIndex, bytes[next] == 13, bytes[next + 1] == 10 { return next + 2 }
            }
            i += 1
        }
        return nil
    }

    /// The length of a chunked body with its trailers, or nil when not all of it is here.
    private static func chunkedLength(_ body: ArraySlice<UInt8>) throws -> Int? {
        var i = body.startIndex
        func line() -> Substring? {
            guard let newline = body[i...].firstIndex(of: 10) else { return nil }
            let text = String(decoding: body[i..<newline], as: UTF8.self)
            i = newline + 1
            return Substring(text.hasSuffix("\r") ? String(text.dropLast()) : text)
        }
        while true {
            guard let sizeLine = line() else { return nil }
            let hex = sizeLine.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard !hex.isEmpty, hex.count <= 15, let size = Int(hex, radix: 16) else {
                throw Malformed(description: "a bad chunk size: \(sizeLine.prefix(40))")
            }
            if size == 0 {
                // Trailer fields, then an empty line.
                while true {
                    guard let trailer = line() else { return nil }
                    if trailer.isEmpty { return i - body.startIndex }
                }
            }
            guard body.endIndex - i >= size + 2 else { return nil }
            i += size
            guard body[i] == 13 || body[i] == 10 else { throw Malformed(description: "a chunk not followed by a line end") }
            i += body[i] == 13 ? 2 : 1
        }
    }
}

private extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
