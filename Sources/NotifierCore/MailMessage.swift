import Foundation
import NimbusProtocol

/// One mail as it goes over SMTP's DATA: RFC 5322 headers, a UTF-8 plain-text body with CRLF line
/// ends, dot-stuffed (RFC 5321 4.5.2) so a line holding only "." cannot end the message early.
public struct MailMessage: Sendable, Equatable {
    public var from: String
    public var fromName: String
    public var to: String
    public var subject: String
    public var body: String
    public var messageID: String
    public var date: Date
    public var contentType: String

    public init(from: String, fromName: String = "", to: String, subject: String, body: String, messageID: String, date: Date,
                contentType: String = "text/plain; charset=UTF-8") {
        self.from = from
        self.fromName = fromName
        self.to = to
        self.subject = subject
        self.body = body
        self.messageID = messageID
        self.date = date
        self.contentType = contentType
    }

    /// The message as DATA sends it, without the terminating "." line; every line ends in CRLF.
    public func dataPayload() -> String {
        let sender = fromName.isEmpty ? "<\(from)>" : "\(Self.encodedWord(fromName)) <\(from)>"
        var lines = [
            "Message-ID: <\(messageID)>",
            "Date: \(Self.rfc5322Date(date))",
            "From: \(sender)",
            "To: <\(to)>",
            "Subject: \(Self.encodedWord(subject))",
            "MIME-Version: 1.0",
            "Content-Type: \(contentType)",
            "Content-Transfer-Encoding: 8bit",
            "",
        ]
        lines += Self.lines(of: body)
        return lines.map(Self.dotStuffed).joined(separator: "\r\n") + "\r\n"
    }

    /// Splits on any line break (CRLF, CR or LF), so the wire gets CRLF only.
    static func lines(of text: String) -> [String] {
        var lines: [String] = []
        let utf8 = text.utf8
        var start = utf8.startIndex, i = utf8.startIndex
        while i != utf8.endIndex {
            let byte = utf8[i]
            guard byte == 0x0A || byte == 0x0D else { i = utf8.index(after: i); continue }
            lines.append(String(Substring(utf8[start..<i])))
            var next = utf8.index(after: i)
            if byte == 0x0D, next != utf8.endIndex, utf8[next] == 0x0A { next = utf8.index(after: next) }
            start = next
            i = next
        }
        lines.append(String(Substring(utf8[start..<utf8.endIndex])))
        return lines
    }

    public static func dotStuffed(_ line: String) -> String { line.hasPrefix(".") ? "." + line : line }

    /// A header value: as it is when printable ASCII, else an RFC 2047 encoded word (UTF-8, base64).
    public static func encodedWord(_ text: String) -> String {
        let plain = text.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F }
        if plain { return text }
        return "=?UTF-8?B?\(Data(text.utf8).base64EncodedString())?="
    }

    /// `Tue, 01 Jul 2026 12:00:00 +0000`.
    public static func rfc5322Date(_ date: Date) -> String { UTCTime.rfc5322(seconds: date.timeIntervalSince1970) }
}
