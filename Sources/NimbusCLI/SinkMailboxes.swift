import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One mail the local mail sink kept, as much of it as `verify` needs.
struct SinkMail: Equatable {
    /// The envelope recipient (the sink's `X-Nimbus-Rcpt` header).
    var recipient: String
    var subject: String
    /// The body's first line, transfer encoding undone.
    var firstBodyLine: String

    var isSubscriptionConfirmation: Bool { subject.contains("Subscription Confirmation") }
}

/// Reads the mailboxes `nimbus-mail-sink` writes (Sources/MailSink/MailboxStore.swift): one mboxrd
/// file per recipient, `<address>.mbox`, a "From " line before each mail, body lines that start
/// with ">*From " quoted with one more ">", LF line ends.
enum SinkMailboxes {
    /// Every mail in `directory`'s mailboxes; none when there is no such directory.
    static func mails(in directory: URL) throws -> [SinkMail] {
        try mailboxFiles(in: directory).flatMap { parse(try read($0)) }
    }

    /// The mailboxes' total size: the sink only appends, so it changes exactly when a mail arrives.
    static func totalBytes(in directory: URL) -> Int {
        ((try? mailboxFiles(in: directory)) ?? []).reduce(0) { total, file in
            total + ((try? FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int) ?? 0)
        }
    }

    private static func mailboxFiles(in directory: URL) throws -> [URL] {
        guard FileManager.default.fileExists(atPath: directory.path) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".mbox") }.sorted()
            .map { directory.appendingPathComponent($0) }
    }

    /// A mailbox's bytes under a shared flock: the sink appends each mail with one write under an
    /// exclusive one, so the read never ends half-way through a mail.
    private static func read(_ file: URL) throws -> [UInt8] {
        let fd = open(file.path, O_RDONLY)
        guard fd >= 0 else { throw CLIError("cannot read \(file.path): \(String(cString: strerror(errno)))") }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        _ = flock(fd, LOCK_SH)
        return [UInt8](try handle.readToEnd() ?? Data())
    }

    /// The mails of one mbox.
    static func parse(_ bytes: [UInt8]) -> [SinkMail] {
        let lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        var mails: [SinkMail] = []
        var index = 0
        while index < lines.count {
            // A mail starts at a "From " line at the top or after a blank line.
            guard lines[index].hasPrefix("From "), index == 0 || lines[index - 1].isEmpty else { index += 1; continue }
            index += 1
            var headers: [(name: String, value: String)] = []
            while index < lines.count, !lines[index].isEmpty {
                let line = lines[index]
                if line.first == " " || line.first == "\t", !headers.isEmpty {
                    headers[headers.count - 1].value += " " + line.trimmingCharacters(in: .whitespaces)
                } else if let colon = line.firstIndex(of: ":") {
                    headers.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
                }
                index += 1
            }
            index += 1  // the blank line after the headers
            var body: [String] = []
            while index < lines.count, !(lines[index].hasPrefix("From ") && lines[index - 1].isEmpty) {
                body.append(unquoted(lines[index]))
                index += 1
            }
            func header(_ name: String) -> String { headers.first { $0.name == name }?.value ?? "" }
            let text = decoded(body.joined(separator: "\n"), transferEncoding: header("content-transfer-encoding"))
            mails.append(SinkMail(recipient: header("x-nimbus-rcpt"), subject: header("subject"),
                                  firstBodyLine: text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""))
        }
        return mails
    }

    /// mboxrd's quoting undone: ">From " was "From ", ">>From " was ">From ".
    private static func unquoted(_ line: String) -> String {
        guard line.hasPrefix(">"), line.drop(while: { $0 == ">" }).hasPrefix("From ") else { return line }
        return String(line.dropFirst())
    }

    /// The body as text. The notifier sends 8bit (UTF-8 as it is); base64 and quoted-printable are
    /// undone too, for mail that came by another way.
    static func decoded(_ body: String, transferEncoding: String) -> String {
        switch transferEncoding.lowercased() {
        case "base64":
            return Data(base64Encoded: body.filter { !$0.isWhitespace }).map { String(decoding: $0, as: UTF8.self) } ?? body
        case "quoted-printable":
            var out: [UInt8] = []
            let bytes = Array(body.utf8)
            var i = 0
            while i < bytes.count {
                if bytes[i] == UInt8(ascii: "="), i + 1 < bytes.count, bytes[i + 1] == 0x0A {
                    i += 2  // a soft line break
                } else if bytes[i] == UInt8(ascii: "="), i + 2 < bytes.count,
                          let byte = UInt8(String(decoding: bytes[i + 1...i + 2], as: UTF8.self), radix: 16) {
                    out.append(byte)
                    i += 3
                } else {
                    out.append(bytes[i])
                    i += 1
                }
            }
            return String(decoding: out, as: UTF8.self)
        default:
            return body
        }
    }
}
