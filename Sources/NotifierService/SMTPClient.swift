import Foundation
import NotifierCore
#if canImport(Glibc)
import Glibc
#endif

/// Why a mail did not go. `permanent` (a 5xx reply to the recipient or the message) means trying
/// again will not help; everything else (connection refused, timeouts, 4xx) is worth a retry.
public struct SMTPError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public var permanent: Bool
    /// The connection is still usable after this error (the server answered; it did not go away).
    var connectionUsable: Bool

    init(_ description: String, permanent: Bool = false, connectionUsable: Bool = false) {
        self.description = description
        self.permanent = permanent
        self.connectionUsable = connectionUsable
    }
}

/// A small SMTP client (RFC 5321): EHLO (HELO fallback), STARTTLS (RFC 3207) or TLS from the first
/// byte when configured, optional AUTH PLAIN/LOGIN, MAIL FROM, RCPT TO, DATA with dot-stuffing. One
/// connection, kept open and reused for the next mail; RSET after a refused mail, a fresh connection
/// after an I/O error.
///
/// The sockets are blocking, so every bit of I/O runs on one dedicated serial DispatchQueue, never
/// on Swift's cooperative pool (two cores: a blocked pool thread would stall half the node).
public final class SMTPClient: @unchecked Sendable {
    /// How the connection is protected (see `ClusterConfig.NotifierSettings.smtpTLS`).
    public enum Security: Sendable, Equatable {
        /// Plain SMTP (a local relay or the mail sink).
        case none
        /// Plain, then upgraded by STARTTLS before anything else is said; a server that does not
        /// offer it gets no mail (never a silent fall back to plain text).
        case startTLS
        /// TLS from the first byte ("SMTPS", port 465).
        case implicitTLS
    }

    public struct Settings: Sendable {
        public var host: String
        public var port: Int
        public var username: String?
        public var password: String?
        /// The name we give in EHLO.
        public var heloName: String
        /// Bound on connect and on every read and write.
        public var timeoutSeconds: Double
        public var security: Security
        /// CA certificates (PEM) the server's certificate must chain to; nil: the system's store.
        public var caFile: String?

        public init(host: String, port: Int, username: String? = nil, password: String? = nil, heloName: String = "nimbus.local",
                    timeoutSeconds: Double = 10, security: Security = .none, caFile: String? = nil) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.heloName = heloName
            self.timeoutSeconds = timeoutSeconds
            self.security = security
            self.caFile = caFile
        }
    }

    private let settings: Settings
    private let queue = DispatchQueue(label: "nimbus.notifier.smtp")
    /// Only touched on `queue` (that is what makes the class safe to share).
    private var connection: SMTPConnection?
    /// Made on first use, on `queue`.
    private var tlsContext: TLSClientContext?

    public init(settings: Settings) {
        self.settings = settings
    }

    /// Sends one mail; returns once the server accepted it (250 after DATA). A cancelled caller
    /// stops waiting at once (CancellationError); the transaction on the queue runs on.
    public func send(_ mail: MailMessage) async throws {
        try await BlockingTCP.run(on: queue) { try self.sendOnQueue(mail) }
    }

    /// Closes the connection (QUIT), e.g. at shutdown. Waits at most `seconds` for it: a
    /// connection still stuck in a transaction (a relay that never answers) must not hold up the
    /// node's exit; the QUIT then follows when the transaction gives up, if the process is still there.
    public func close(waitingUpTo seconds: Double = 1) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                _ = try? await BlockingTCP.run(on: self.queue) {
                    if let c = self.connection { _ = try? c.command("QUIT"); c.close() }
                    self.connection = nil
                }
            }
            group.addTask { try? await Task.sleep(for: .seconds(seconds)) }
            await group.next()
            group.cancelAll()
        }
    }

    private func sendOnQueue(_ mail: MailMessage) throws {
        // A kept connection may have been dropped by the server while idle: on an I/O error on a
        // reused connection, try once more on a fresh one.
        if let reused = connection {
            do {
                try transaction(mail, on: reused)
                return
            } catch let error as SMTPError where error.connectionUsable {
                throw error
            } catch {
                reused.close()
                connection = nil
            }
        }
        let fresh = try open()
        connection = fresh
        do {
            try transaction(mail, on: fresh)
        } catch let error as SMTPError where error.connectionUsable {
            throw error
        } catch {
            fresh.close()
            connection = nil
            throw error
        }
    }

    private func open() throws -> SMTPConnection {
        let c = try SMTPConnection(host: settings.host, port: settings.port, timeout: settings.timeoutSeconds)
        do {
            if settings.security == .implicitTLS { try c.startTLS(try context(), host: settings.host) }
            let greeting = try c.readReply()
            guard greeting.code == 220 else { throw SMTPError("SMTP server greeted with \(greeting.text)") }
            var capabilities = try hello(c)
            if settings.security == .startTLS {
                guard capabilities.contains("STARTTLS") else {
                    throw SMTPError("the SMTP server \(settings.host):\(settings.port) does not offer STARTTLS, which notifier.smtpTLS: starttls requires")
                }
                let reply = try c.command("STARTTLS")
                guard reply.code == 220 else { throw SMTPError("SMTP STARTTLS refused: \(reply.text)") }
                try c.startTLS(try context(), host: settings.host)
                // RFC 3207: everything learnt before the handshake is forgotten; ask again.
                capabilities = try hello(c, heloFallback: false)
            }
            if let user = settings.username, let password = settings.password {
                try authenticate(c, capabilities: capabilities, user: user, password: password)
            }
            c.pipelining = capabilities.contains("PIPELINING")
            return c
        } catch {
            c.close()
            throw error
        }
    }

    /// EHLO (HELO when refused); the server's capabilities, upper-cased.
    private func hello(_ c: SMTPConnection, heloFallback: Bool = true) throws -> [String] {
        let ehlo = try c.command("EHLO \(settings.heloName)")
        if ehlo.code == 250 { return Array(ehlo.lines.dropFirst()).map { $0.uppercased() } }
        guard heloFallback else { throw SMTPError("SMTP server refused EHLO: \(ehlo.text)") }
        let helo = try c.command("HELO \(settings.heloName)")
        guard helo.code == 250 else { throw SMTPError("SMTP server refused EHLO and HELO: \(helo.text)") }
        return []
    }

    private func context() throws -> TLSClientContext {
        if let tlsContext { return tlsContext }
        let made = try TLSClientContext(caFile: settings.caFile)
        tlsContext = made
        return made
    }

    private func authenticate(_ c: SMTPConnection, capabilities: [String], user: String, password: String) throws {
        let mechanisms = capabilities.first { $0.hasPrefix("AUTH ") || $0.hasPrefix("AUTH=") }?
            .dropFirst(5).split(separator: " ").map(String.init) ?? []
        if mechanisms.contains("PLAIN") {
            let credentials = Data(([0] + Array(user.utf8) + [0] + Array(password.utf8))).base64EncodedString()
            let reply = try c.command("AUTH PLAIN \(credentials)")
            guard reply.code == 235 else { throw SMTPError("SMTP AUTH PLAIN failed: \(reply.text)", permanent: false) }
        } else if mechanisms.contains("LOGIN") {
            var reply = try c.command("AUTH LOGIN")
            guard reply.code == 334 else { throw SMTPError("SMTP AUTH LOGIN failed: \(reply.text)") }
            reply = try c.command(Data(user.utf8).base64EncodedString())
            guard reply.code == 334 else { throw SMTPError("SMTP AUTH LOGIN failed: \(reply.text)") }
            reply = try c.command(Data(password.utf8).base64EncodedString())
            guard reply.code == 235 else { throw SMTPError("SMTP AUTH LOGIN failed: \(reply.text)") }
        } else if capabilities.contains("STARTTLS") {
            throw SMTPError("the SMTP server offers AUTH only after STARTTLS: set notifier.smtpTLS: starttls")
        } else {
            throw SMTPError("the SMTP server offers neither AUTH PLAIN nor AUTH LOGIN")
        }
    }

    /// One mail on an open connection. A refusal (4xx/5xx) leaves the connection usable after RSET.
    private func transaction(_ mail: MailMessage, on c: SMTPConnection) throws {
        func expect(_ reply: SMTPConnection.Reply, _ ok: Set<Int>, _ what: String) throws {
            if ok.contains(reply.code) { return }
            let rset = (try? c.command("RSET"))?.code == 250
            var text = "SMTP \(what) refused: \(reply.text)"
            if reply.code == 530, reply.text.uppercased().contains("STARTTLS") {
                text += " (set notifier.smtpTLS: starttls)"
            }
            // 421: the server is closing the connection.
            throw SMTPError(text, permanent: (500...599).contains(reply.code), connectionUsable: rset && reply.code != 421)
        }
        guard c.pipelining else {
            try expect(try c.command("MAIL FROM:<\(mail.from)>"), [250], "MAIL FROM")
            try expect(try c.command("RCPT TO:<\(mail.to)>"), [250, 251], "RCPT TO <\(mail.to)>")
            try expect(try c.command("DATA"), [354], "DATA")
            try c.write(mail.dataPayload() + ".\r\n")
            try expect(try c.readReply(), [250], "message")
            return
        }
        // RFC 2920: the envelope in one write, its three replies read in order; two round trips a
        // mail instead of four.
        try c.write("MAIL FROM:<\(mail.from)>\r\nRCPT TO:<\(mail.to)>\r\nDATA\r\n")
        let mailFrom = try c.readReply(), recipient = try c.readReply(), data = try c.readReply()
        let envelopeTaken = mailFrom.code == 250 && [250, 251].contains(recipient.code)
        if data.code == 354 {
            guard envelopeTaken else {
                // DATA was taken although the envelope was not (a server should refuse it): end an
                // empty message, then report what was refused.
                try c.write(".\r\n")
                _ = try c.readReply()
                try expect(mailFrom, [250], "MAIL FROM")
                try expect(recipient, [250, 251], "RCPT TO <\(mail.to)>")
                return
            }
            try c.write(mail.dataPayload() + ".\r\n")
            try expect(try c.readReply(), [250], "message")
            return
        }
        try expect(mailFrom, [250], "MAIL FROM")
        try expect(recipient, [250, 251], "RCPT TO <\(mail.to)>")
        try expect(data, [354], "DATA")
    }
}

/// One blocking TCP connection speaking SMTP's line protocol.
final class SMTPConnection {
    struct Reply {
        var code: Int
        /// Each line's text after the code and separator.
        var lines: [String]
        var text: String { "\(code) \(lines.joined(separator: " / "))" }
    }

    private var fd: Int32
    /// Set once STARTTLS (or implicit TLS) has shaken hands: every byte after goes through it.
    private var tls: TLSStream?
    private var buffer: [UInt8] = []
    /// The server announced PIPELINING in its EHLO reply.
    var pipelining = false

    init(host: String, port: Int, timeout: Double) throws {
        switch BlockingTCP.connect(host: host, port: port, timeout: timeout) {
        case .success(let s): fd = s
        case .failure(.unresolved(let reason)): throw SMTPError("cannot resolve SMTP host \(host): \(reason)")
        case .failure(.refused(let reason)): throw SMTPError("cannot connect to SMTP server \(host):\(port): \(reason)")
        }
    }

    /// Upgrades the connection: TLS over the same socket, the server's certificate verified.
    func startTLS(_ context: TLSClientContext, host: String) throws {
        // Bytes that arrived before the handshake were not protected by it: a man in the middle
        // could have injected them (RFC 3207 section 5, the "STARTTLS command injection").
        guard buffer.isEmpty else { throw SMTPError("the SMTP server sent data before the TLS handshake") }
        tls = try TLSStream(context: context, socket: fd, host: host)
    }

    func close() {
        tls?.close()
        tls = nil
        if fd >= 0 { Glibc.close(fd); fd = -1 }
    }

    deinit { close() }

    func write(_ text: String) throws {
        let bytes = Array(text.utf8)
        if let tls { return try tls.write(bytes) }
        if let failure = BlockingTCP.send(fd, bytes) { throw SMTPError("SMTP write failed: \(failure)") }
    }

    func command(_ line: String) throws -> Reply {
        try write(line + "\r\n")
        return try readReply()
    }

    /// A reply: lines "250-..." continue, "250 ..." ends it.
    func readReply() throws -> Reply {
        var lines: [String] = []
        while true {
            let line = try readLine()
            guard line.count >= 3, let code = Int(line.prefix(3)) else { throw SMTPError("SMTP server sent garbage: \(line.prefix(80))") }
            lines.append(line.count > 4 ? String(line.dropFirst(4)) : "")
            let separator = line.count > 3 ? line[line.index(line.startIndex, offsetBy: 3)] : " "
            if separator != "-" { return Reply(code: code, lines: lines) }
            if lines.count > 1000 { throw SMTPError("SMTP reply too long") }
        }
    }

    private func readLine() throws -> String {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                var line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            if buffer.count > 65_536 { throw SMTPError("SMTP reply line too long") }
            var chunk = [UInt8](repeating: 0, count: 4096)
            if let tls {
                let n = try chunk.withUnsafeMutableBytes { try tls.read(into: $0) }
                if n == 0 { throw SMTPError("SMTP server closed the connection") }
                buffer += chunk[..<n]
                continue
            }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n == 0 { throw SMTPError("SMTP server closed the connection") }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { throw SMTPError("SMTP server did not answer in time") }
                throw SMTPError("SMTP read failed: \(String(cString: strerror(errno)))")
            }
            buffer += chunk[..<n]
        }
    }
}
