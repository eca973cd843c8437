import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A local SMTP server that keeps what it receives: each message is appended, once per recipient, to
/// that recipient's mbox file in `directory` (`MailboxStore`). One thread per connection; many
/// connections and many messages per connection.
public final class MailSinkServer: @unchecked Sendable {
    public let directory: URL
    /// The port actually bound (useful with port 0).
    public private(set) var port: Int = 0
    private let listener: Int32
    private let lock = NSLock()
    private var connections = 0
    private let mailboxes: MailboxStore
    public static let maxConnections = 256

    public init(host: String = "127.0.0.1", port: Int, directory: URL) throws {
        self.directory = directory
        mailboxes = try MailboxStore(directory: directory)
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw SinkError("socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { close(s); throw SinkError("not an IPv4 address: \(host)") }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(s, 128) == 0 else {
            let message = String(cString: strerror(errno))
            close(s)
            throw SinkError("cannot listen on \(host):\(port): \(message)")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &length) } }
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        listener = s
    }

    /// Accepts connections until the process ends (blocking the calling thread).
    public func run() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE {
                    if errno == EMFILE || errno == ENFILE { usleep(100_000) }
                    continue
                }
                return  // the listener was closed
            }
            let admitted = lock.withLock { () -> Bool in
                guard connections < Self.maxConnections else { return false }
                connections += 1
                return true
            }
            guard admitted else {
                _ = "421 4.3.2 Too many connections\r\n".withCString { send(client, $0, strlen($0), Int32(MSG_NOSIGNAL)) }
                close(client)
                continue
            }
            let thread = Thread { [self] in
                serve(client)
                lock.withLock { connections -= 1 }
            }
            thread.stackSize = 512 * 1024
            thread.start()
        }
    }

    /// Runs `run()` on a thread of its own.
    public func start() {
        let thread = Thread { [self] in run() }
        thread.start()
    }

    public func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func serve(_ fd: Int32) {
        defer { close(fd) }
        // An idle client is dropped after 5 minutes (RFC 5321's server timeout is in that range).
        var tv = timeval(tv_sec: 300, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var session = SMTPSession()
        guard write(fd, session.greeting) else { return }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            // Replies to every complete line at hand go out in one write: a pipelining client
            // (RFC 2920) sends MAIL, RCPT and DATA together and gets their three replies together.
            var replies = ""
            var consumed = 0
            defer { if !replies.isEmpty { _ = write(fd, replies, terminated: false) } }
            while let newline = buffer[consumed...].firstIndex(of: 10) {
                var line = Array(buffer[consumed..<newline])
                consumed = newline + 1
                if line.last == 13 { line.removeLast() }
                for output in session.receive(line: line) {
                    switch output {
                    case .reply(let text): replies += text + "\r\n"
                    case .message(let message):
                        do { try store(message) } catch {
                            // Could not keep it: tell the client to try again later rather than lose it.
                            replies += "451 4.3.0 Cannot store message: \(error)\r\n"
                            return
                        }
                    case .close: return
                    }
                }
            }
            buffer.removeSubrange(..<consumed)
            if !replies.isEmpty {
                guard write(fd, replies, terminated: false) else { return }
                replies = ""
            }
            // A "line" that never ends is garbage: drop the client instead of growing without bound.
            if buffer.count > SMTPSession.maxMessageBytes { _ = write(fd, "500 5.5.2 Line too long"); return }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
            buffer += chunk[..<n]
        }
    }

    private func write(_ fd: Int32, _ text: String, terminated: Bool = true) -> Bool {
        let bytes = Array((terminated ? text + "\r\n" : text).utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }

    /// Mails kept (one per recipient of each message), and received again with a Message-ID already
    /// kept for that recipient (not stored twice).
    public var mailsStored: Int { mailboxes.stored }
    public var duplicates: Int { mailboxes.duplicates }

    func store(_ message: SMTPSession.Message) throws {
        try mailboxes.store(message)
    }
}

public struct SinkError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
