import Foundation

/// One SMTP server conversation as a pure state machine: lines in, replies and finished messages
/// out. Speaks what a test mail sink needs: EHLO/HELO, MAIL, RCPT, DATA (dot-unstuffing), RSET,
/// NOOP, QUIT, VRFY, HELP and AUTH PLAIN/LOGIN (any credentials are accepted). Garbage gets 500-class
/// replies; too much of it ends the session.
public struct SMTPSession: Sendable {
    public struct Message: Sendable, Equatable {
        public var from: String
        public var recipients: [String]
        /// The DATA content with CRLF line ends, dot-unstuffed, without the final "." line.
        public var data: [UInt8]
    }

    public enum Output: Sendable, Equatable {
        case reply(String)
        case message(Message)
        case close
    }

    public static let maxMessageBytes = 10 * 1024 * 1024
    static let maxLineBytes = 4096
    static let maxRecipients = 100
    static let maxErrors = 20

    private enum Mode: Sendable { case command, data, authPlain, authLoginUser, authLoginPassword }

    private let hostname: String
    private var mode = Mode.command
    private var from: String?
    private var recipients: [String] = []
    private var data: [UInt8] = []
    private var dataTooLarge = false
    private var errors = 0

    public init(hostname: String = "nimbus-mail-sink") {
        self.hostname = hostname
    }

    public var greeting: String { "220 \(hostname) ESMTP nimbus-mail-sink ready" }

    /// Feeds one line (without its CRLF or LF).
    public mutating func receive(line raw: [UInt8]) -> [Output] {
        switch mode {
        case .data: return receiveData(raw)
        case .authPlain, .authLoginUser:
            mode = mode == .authPlain ? .command : .authLoginPassword
            return mode == .command ? [.reply("235 2.7.0 Authentication successful")] : [.reply("334 UGFzc3dvcmQ6")]
        case .authLoginPassword:
            mode = .command
            return [.reply("235 2.7.0 Authentication successful")]
        case .command:
            return receiveCommand(raw)
        }
    }

    private mutating func receiveCommand(_ raw: [UInt8]) -> [Output] {
        if raw.count > Self.maxLineBytes { return error("500 5.5.2 Line too long") }
        let line = String(decoding: raw, as: UTF8.self)
        let verb = line.prefix { $0 != " " }.uppercased()
        let argument = line.dropFirst(verb.count).trimmingCharacters(in: .whitespaces)
        switch verb {
        case "EHLO":
            reset()
            return [.reply("250-\(hostname)\r\n250-8BITMIME\r\n250-PIPELINING\r\n250-SIZE \(Self.maxMessageBytes)\r\n250 AUTH PLAIN LOGIN")]
        case "HELO":
            reset()
            return [.reply("250 \(hostname)")]
        case "MAIL":
            guard from == nil else { return error("503 5.5.1 Nested MAIL command") }
            guard let address = Self.path(argument, keyword: "FROM:") else { return error("501 5.5.4 Syntax: MAIL FROM:<address>") }
            from = address
            return [.reply("250 2.1.0 OK")]
        case "RCPT":
            guard from != nil else { return error("503 5.5.1 Need MAIL before RCPT") }
            guard let address = Self.path(argument, keyword: "TO:"), !address.isEmpty else {
                return error("501 5.5.4 Syntax: RCPT TO:<address>")
            }
            guard recipients.count < Self.maxRecipients else { return error("452 4.5.3 Too many recipients") }
            recipients.append(address)
            return [.reply("250 2.1.5 OK")]
        case "DATA":
            guard from != nil, !recipients.isEmpty else { return error("503 5.5.1 Need RCPT before DATA") }
            mode = .data
            data = []
            dataTooLarge = false
            return [.reply("354 End data with <CR><LF>.<CR><LF>")]
        case "RSET":
            reset()
            return [.reply("250 2.0.0 OK")]
        case "NOOP":
            return [.reply("250 2.0.0 OK")]
        case "QUIT":
            return [.reply("221 2.0.0 Bye"), .close]
        case "VRFY":
            return [.reply("252 2.1.5 Cannot verify, but will accept")]
        case "HELP":
            return [.reply("214 2.0.0 EHLO HELO MAIL RCPT DATA RSET NOOP QUIT")]
        case "STARTTLS":
            return error("454 4.7.0 TLS not available")
        case "AUTH":
            let parts = argument.split(separator: " ")
            switch parts.first?.uppercased() {
            case "PLAIN":
                if parts.count > 1 { return [.reply("235 2.7.0 Authentication successful")] }
                mode = .authPlain
                return [.reply("334 ")]
            case "LOGIN":
                mode = .authLoginUser
                return [.reply("334 VXNlcm5hbWU6")]
            default:
                return error("504 5.5.4 Unrecognized authentication type")
            }
        case "":
            return error("500 5.5.2 Empty command")
        default:
            return error("500 5.5.2 Command unrecognized")
        }
    }

    private mutating func receiveData(_ raw: [UInt8]) -> [Output] {
        if raw == [UInt8(ascii: ".")] {
            mode = .command
            defer { reset() }
            if dataTooLarge { return [.reply("552 5.3.4 Message too big")] }
            return [.message(Message(from: from ?? "", recipients: recipients, data: data)), .reply("250 2.0.0 OK: queued")]
        }
        guard !dataTooLarge else { return [] }
        let line = raw.first == UInt8(ascii: ".") ? Array(raw.dropFirst()) : raw
        if data.count + line.count + 2 > Self.maxMessageBytes {
            dataTooLarge = true
            data = []
            return []
        }
        data += line
        data += [13, 10]
        return []
    }

    private mutating func reset() {
        from = nil
        recipients = []
        data = []
    }

    private mutating func error(_ reply: String) -> [Output] {
        errors += 1
        if errors > Self.maxErrors { return [.reply("421 4.7.0 Too many errors, closing connection"), .close] }
        return [.reply(reply)]
    }

    /// `FROM:<a@b> SIZE=123` -> "a@b"; the null path `<>` -> "".
    static func path(_ argument: String, keyword: String) -> String? {
        guard argument.uppercased().hasPrefix(keyword) else { return nil }
        let rest = argument.dropFirst(keyword.count).trimmingCharacters(in: .whitespaces)
        if rest.hasPrefix("<") {
            guard let close = rest.firstIndex(of: ">") else { return nil }
            return String(rest[rest.index(after: rest.startIndex)..<close])
        }
        let bare = rest.prefix { $0 != " " }
        return bare.isEmpty ? nil : String(bare)
    }
}
