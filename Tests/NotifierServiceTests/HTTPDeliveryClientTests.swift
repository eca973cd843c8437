import Foundation
import Synchronization
import Testing
import NimbusTestSupport
@testable import NotifierService
#if canImport(Glibc)
import Glibc
#endif

@Suite struct HTTPAnswerParserTests {
    func parse(_ text: String) throws -> HTTPAnswerParser.Parse { try HTTPAnswerParser.parse(Array(text.utf8)[...]) }

    @Test func contentLengthEndsTheAnswer() throws {
        let answer = "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 5\r\n\r\nhello"
        #expect(try parse(answer) == .complete(status: 200, keepAlive: true, length: answer.utf8.count))
        #expect(try parse(String(answer.dropLast())) == .incomplete)
        // What follows belongs to the next answer.
        #expect(try parse(answer + "HTTP/1.1 500") == .complete(status: 200, keepAlive: true, length: answer.utf8.count))
        let empty = "HTTP/1.1 201 Created\r\ncontent-length:0\r\n\r\n"
        #expect(try parse(empty) == .complete(status: 201, keepAlive: true, length: empty.utf8.count))
    }

    @Test func headerNamesAnyCaseAndBareLineFeeds() throws {
        let answer = "HTTP/1.1 404 Not Found\nCONTENT-LENGTH: 2\n\nno"
        #expect(try parse(answer) == .complete(status: 404, keepAlive: true, length: answer.utf8.count))
    }

    @Test func chunkedBodiesWithExtensionsAndTrailers() throws {
        let answer = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
        #expect(try parse(answer) == .complete(status: 200, keepAlive: true, length: answer.utf8.count))
        for cut in [1, 3, 10, 20] {
            #expect(try parse(String(answer.dropLast(cut))) == .incomplete)
        }
        // Transfer-Encoding wins over a Content-Length (RFC 9112, 6.3).
        let both = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        #expect(try parse(both) == .complete(status: 200, keepAlive: true, length: both.utf8.count))
    }

    @Test func keepAliveFollowsTheVersionAndConnectionHeader() throws {
        #expect(try parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n") == .complete(status: 200, keepAlive: false, length: 57))
        #expect(try parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n") == .complete(status: 200, keepAlive: false, length: 38))
        #expect(try parse("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n") == .complete(status: 200, keepAlive: true, length: 62))
    }

    @Test func bodilessStatusesAndInterimAnswers() throws {
        #expect(try parse("HTTP/1.1 204 No Content\r\n\r\n") == .complete(status: 204, keepAlive: true, length: 27))
        #expect(try parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n") == .complete(status: 100, keepAlive: true, length: 25))
    }

    @Test func noLengthMeansUntilTheServerCloses() throws {
        #expect(try parse("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsome") == .untilClose(status: 200))
    }

    @Test func malformedAnswersAreErrors() throws {
        for garbage in ["SMTP 220 hello\r\n\r\n", "HTTP/1.1 abc OK\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
                        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"] {
            #expect(throws: HTTPAnswerParser.Malformed.self) { try parse(garbage) }
        }
        #expect(try parse("HTTP/1.1 200 OK\r\n" + String(repeating: "X-Long: y\r\n", count: 7_000)) == .headTooLarge)
    }
}

@Suite struct HTTPTargetTests {
    @Test func theRequestNamesPathQueryHostAndCredentials() throws {
        let target = try HTTPTarget("https://me:p%40ss@Example.com/hooks/sns?x=1&y=%20")
        #expect(target.origin == HTTPOrigin(secure: true, host: "Example.com", port: 443))
        let request = String(decoding: target.request(headers: [("X-A", "1"), ("X-Bad", "a\r\nInjected: yes")], body: Array("hi".utf8)), as: UTF8.self)
        #expect(request == "POST /hooks/sns?x=1&y=%20 HTTP/1.1\r\nHost: Example.com\r\nContent-Length: 2\r\n"
                + "Authorization: Basic \(Data("me:p@ss".utf8).base64EncodedString())\r\nX-A: 1\r\n\r\nhi")
        #expect(try HTTPTarget("http://127.0.0.1:8080").requestTarget == "/")
        #expect(try HTTPTarget("http://127.0.0.1:8080").hostHeader == "127.0.0.1:8080")
        #expect(try HTTPTarget("http://[::1]:9/x").hostHeader == "[::1]:9")
        #expect(try HTTPTarget("http://[::1]:9/x").origin.host == "::1")
        #expect(throws: SenderError.self) { try HTTPTarget("ftp://example.com/") }
        #expect(throws: SenderError.self) { try HTTPTarget("http:///nohost") }
    }
}

/// A scripted HTTP server on a thread: answers each request with the next of `answers` (raw bytes),
/// counting connections and requests; an answer of "" closes the connection without a word, and
/// one without a length closes it after.
final class ScriptedHTTPServer: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let state = Mutex<(connections: Int, requests: [String])>((0, []))
    var connections: Int { state.withLock { $0.connections } }
    var requests: [String] { state.withLock { $0.requests } }

    init(answers: [String]) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        listener = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length); listen(fd, 8); return getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread { [self] in
            var remaining = answers[...]
            while !remaining.isEmpty {
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return }
                state.withLock { $0.connections += 1 }
                var buffer: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 4096)
                serving: while let answer = remaining.first {
                    // Read one request: its head, then Content-Length bytes.
                    while true {
                        if let end = buffer.firstRange(of: Array("\r\n\r\n".utf8))?.upperBound {
                            let head = String(decoding: buffer[..<end], as: UTF8.self)
                            let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                                .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                            if buffer.count >= end + length {
                                state.withLock { $0.requests.append(String(decoding: buffer[..<(end + length)], as: UTF8.self)) }
                                buffer.removeFirst(end + length)
                                break
                            }
                        }
                        let n = recv(client, &chunk, chunk.count, 0)
                        if n <= 0 { break serving }
                        buffer += chunk[..<n]
                    }
                    remaining = remaining.dropFirst()
                    if answer.isEmpty { break serving }
                    _ = answer.utf8CString.withUnsafeBufferPointer { send(client, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) }
                    // An answer without a length ends where the connection does.
                    if !answer.lowercased().contains("content-length") && !answer.lowercased().contains("chunked") { break serving }
                }
                close(client)
            }
        }.start()
    }

    deinit { close(listener) }
}

@Suite struct HTTPDeliveryClientTests {
    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    @Test func requestsOneAtATimeShareOneKeptConnection() async throws {
        // Four connections allowed, but one request at a time keeps to the first (this server
        // serves one connection at a time: a second would wait forever).
        let server = ScriptedHTTPServer(answers: [ok, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", ok])
        let client = HTTPDeliveryClient(timeoutSeconds: 5, connectionsPerOrigin: 4)
        for n in 0..<3 {
            #expect(try await client.post("http://127.0.0.1:\(server.port)/hook", headers: [("X-N", "\(n)")], body: Array("body \(n)".utf8)) == 200)
        }
        #expect(server.connections == 1)
        #expect(server.requests.count == 3)
        #expect(server.requests[2].hasPrefix("POST /hook HTTP/1.1\r\n"))
        #expect(server.requests[2].hasSuffix("X-N: 2\r\n\r\nbody 2"))
        client.close()
    }

    @Test func aConnectionTheServerClosedIsReplacedWithoutFailingTheDelivery() async throws {
        // The server takes the second request and closes without an answer (as one that timed an idle
        // connection out would): the client tries once more on a fresh connection.
        let server = ScriptedHTTPServer(answers: [ok, "", ok])
        let client = HTTPDeliveryClient(timeoutSeconds: 5, connectionsPerOrigin: 1)
        #expect(try await client.post("http://127.0.0.1:\(server.port)/", headers: [], body: []) == 200)
        #expect(try await client.post("http://127.0.0.1:\(server.port)/", headers: [], body: []) == 200)
        #expect(server.connections == 2)
        #expect(server.requests.count == 3)
    }

    @Test func anErrorStatusIsReturnedAndAnAnswerDelimitedByCloseIsRead() async throws {
        let server = ScriptedHTTPServer(answers: ["HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"])
        let client = HTTPDeliveryClient(timeoutSeconds: 5)
        #expect(try await client.post("http://127.0.0.1:\(server.port)/", headers: [], body: []) == 503)
        let closing = ScriptedHTTPServer(answers: ["HTTP/1.0 200 OK\r\n\r\nuntil the end"])
        #expect(try await client.post("http://127.0.0.1:\(closing.port)/", headers: [], body: []) == 200)
    }

    @Test func aCancelledPostStopsWaitingAtOnce() async throws {
        let listener = ScriptedHTTPServer(answers: [])  // listens, never accepts
        let client = HTTPDeliveryClient(timeoutSeconds: 60)
        let post = Task { try await client.post("http://127.0.0.1:\(listener.port)/", headers: [], body: []) }
        post.cancel()
        await #expect(throws: CancellationError.self) { try await post.value }
    }

    @Test func aServerThatNeverAnswersTimesOut() async throws {
        let listener = ScriptedHTTPServer(answers: [])  // listens, never accepts
        let client = HTTPDeliveryClient(timeoutSeconds: 1)
        let started = ContinuousClock.now
        await #expect(throws: (any Error).self) { try await client.post("http://127.0.0.1:\(listener.port)/", headers: [], body: []) }
        #expect(ContinuousClock.now - started < .seconds(10))
    }
}

@Suite struct SlotsTests {
    @Test func anAcquirePastTheBoundWaitsForARelease() async throws {
        let slots = Slots(2)
        try await slots.acquire()
        try await slots.acquire()
        #expect(slots.free == 0)
        let third = Task { try await slots.acquire() }
        try await until("the third acquire waiting") { slots.waiting == 1 }
        slots.release()
        try await third.value
        #expect(slots.free == 0 && slots.waiting == 0)
        slots.release()
        slots.release()
        #expect(slots.free == 2)
    }

    @Test func aCancelledWaiterGivesUpItsPlace() async throws {
        let slots = Slots(1)
        try await slots.acquire()
        let waiter = Task { try await slots.acquire() }
        try await until("the second acquire waiting") { slots.waiting == 1 }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(slots.waiting == 0)
        slots.release()
        #expect(slots.free == 1)
        // A task cancelled before it asks does not take a slot either.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await slots.acquire()
        }
        await #expect(throws: CancellationError.self) { try await early.value }
        #expect(slots.free == 1)
    }
}
