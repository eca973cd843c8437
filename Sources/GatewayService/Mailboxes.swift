import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The local mail sink's mailboxes as the console's inbox: one mbox file per recipient
/// (`<address>.mbox`, mboxrd: a "From " line before each mail, body lines starting ">*From " quoted
/// with one more ">"), appended to by the sink under an exclusive flock; read here under a shared
/// one. Only the end of each file is read (`tailBytes`), so the cost stays bounded however much
/// mail a box holds.
enum Mailboxes {
    struct Mail: Equatable, Sendable {
        var to: String
        var subject: String
        /// ms since the epoch, from the Date header (whole seconds); nil without a readable one.
        var date: Int?
        var body: String
        var links: [String]
        var messageID: String?

        var jsonObject: [String: Any] {
            ["to": to, "subject": subject, "date": ConsoleJSON.orNull(date), "body": body, "links": links]
        }
    }

    /// The newest `limit` mails of the mailboxes in `directory`, newest first. Only boxes modified
    /// since `modifiedSince` are read, at most the `maxBoxes` most recently modified ones.
    static func recent(in directory: URL, limit: Int = 100, modifiedSince: Date? = nil, maxBoxes: Int = 20,
                       tailBytes: Int = 256 * 1024) -> [Mail] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        var boxes: [(path: String, modified: Date)] = []
        for name in names where name.hasSuffix(".mbox") {
            let path = directory.appendingPathComponent(name).path
            guard let modified = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date else { continue }
            if let modifiedSince, modified < modifiedSince { continue }
            boxes.append((path, modified))
        }
        boxes.sort { $0.modified > $1.modified }
        var mails: [(mail: Mail, order: Int)] = []
        var order = 0
        for box in boxes.prefix(maxBoxes) {
            guard let (bytes, fromStart) = tail(of: box.path, bytes: tailBytes) else { continue }
            for mail in parse(bytes, fromStart: fromStart) {
                mails.append((mail, order))
                order += 1
            }
        }
        // Newest first; within one second (the Date header's precision), later in its box first.
        mails.sort { a, b in
            let da = a.mail.date ?? 0, db = b.mail.date ?? 0
            return da != db ? da > db : a.order > b.order
        }
        return Array(mails.prefix(limit).map(\.mail))
    }

    /// The last `bytes` bytes of a file (all of it when smaller), read under a shared flock, and
    /// whether that is the whole file; nil while the sink holds the file's lock.
    static func tail(of path: String, bytes limit: Int) -> ([UInt8], Bool)? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        // Never wait on the sink's exclusive lock here (this runs on the Swift pool): a mailbox
        // being appended to is read at the next refresh.
        guard flock(fd, LOCK_SH | LOCK_NB) == 0 else { return nil }
        defer { flock(fd, LOCK_UN) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        let size = Int(info.st_size)
        let start = max(0, size - limit)
        var buffer = [UInt8](repeating: 0, count: size - start)
        var done = 0
        while done < buffer.count {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, $0.count - done, off_t(start + done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            done += n
        }
        return (Array(buffer[0..<done]), start == 0)
    }

    /// The mails in mbox text, oldest first. Text that does not start at the file's beginning
    /// starts at the first "From " line after a blank line (the part before is a cut mail).
    static func parse(_ bytes: [UInt8], fromStart: Bool) -> [Mail] {
        let text = String(decoding: bytes, as: UTF8.self)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)[...]
        if !fromStart {
            // Skip to a "From " line that follows a blank one.
            var previousBlank = false
            while let line = lines.first, !(previousBlank && line.hasPrefix("From ")) {
                previousBlank = line.isEmpty
                lines = lines.dropFirst()
            }
        }
        var mails: [Mail] = []
        var current: [Substring] = []
        var previousBlank = true
        for line in lines {
            if previousBlank && line.hasPrefix("From ") {
                if !current.isEmpty, let mail = mail(current) { mails.append(mail) }
                current = []
                previousBlank = false
                continue
            }
            current.append(line)
            previousBlank = line.isEmpty
        }
        if !current.isEmpty, let mail = mail(current) { mails.append(mail) }
        return mails
    }

    /// One mail from its lines (after the "From " line).
    static func mail(_ lines: [Substring]) -> Mail? {
        var headers: [(String, String)] = []
        var index = 0
        while index < lines.count, !lines[index].isEmpty {
            let line = lines[index]
            if line.first == " " || line.first == "\t", !headers.isEmpty {
                headers[headers.count - 1].1 += " " + line.trimmingCharacters(in: .whitespaces)
            } else if let colon = line.firstIndex(of: ":") {
                headers.append((line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
            index += 1
        }
        guard !headers.isEmpty else { return nil }
        func header(_ name: String) -> String? { headers.first { $0.0 == name }?.1 }
        var body = lines[min(index + 1, lines.count)...].map { line -> Substring in
            // mboxrd: ">From " was quoted with one ">" more.
            let quotes = line.prefix { $0 == ">" }
            return !quotes.isEmpty && line.dropFirst(quotes.count).hasPrefix("From ") ? line.dropFirst() : line
        }
        // The blank line that ends an mbox entry is not the mail's.
        while body.last?.isEmpty == true { body.removeLast() }
        let text = body.joined(separator: "\n")
        let to = header("x-nimbus-rcpt") ?? header("to").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "<> ")) } ?? ""
        return Mail(to: to, subject: decodeWords(header("subject") ?? ""), date: header("date").flatMap(parseDate), body: text,
                    links: links(in: text), messageID: header("message-id"))
    }

    /// The http(s) URLs in a text, in order, each once.
    static func links(in text: String) -> [String] {
        var found: [String] = []
        var rest = Substring(text)
        while let start = rest.range(of: "http", options: .caseInsensitive) {
            let candidate = rest[start.lowerBound...]
            let lower = candidate.prefix(8).lowercased()
            guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
                rest = rest[start.upperBound...]
                continue
            }
            var url = candidate.prefix { !$0.isWhitespace && !"<>\"'`".contains($0) }
            while let last = url.last, ".,;:!?)]}".contains(last) { url = url.dropLast() }
            if url.count > 8, !found.contains(String(url)) { found.append(String(url)) }
            rest = rest[url.endIndex...]
            if url.isEmpty { rest = rest.dropFirst() }
        }
        return found
    }

    /// RFC 2047 encoded words (`=?UTF-8?B?...?=`, `=?UTF-8?Q?...?=`) decoded; anything else as it is.
    static func decodeWords(_ value: String) -> String {
        guard value.contains("=?") else { return value }
        var out = ""
        var rest = Substring(value)
        while let open = rest.range(of: "=?") {
            out += rest[..<open.lowerBound]
            let word = rest[open.upperBound...]
            let parts = word.split(separator: "?", maxSplits: 3, omittingEmptySubsequences: false)
            guard parts.count == 4, parts[3].hasPrefix("="), let decoded = decodeWord(encoding: parts[1], text: parts[2]) else {
                out += "=?"
                rest = word
                continue
            }
            out += decoded
            rest = parts[3].dropFirst()
            // White space between two encoded words is not part of the text.
            let trimmed = rest.drop { $0 == " " || $0 == "\t" }
            if trimmed.hasPrefix("=?") { rest = trimmed }
        }
        return out + rest
    }

    private static func decodeWord(encoding: Substring, text: Substring) -> String? {
        switch encoding.uppercased() {
        case "B":
            return Data(base64Encoded: String(text)).map { String(decoding: $0, as: UTF8.self) }
        case "Q":
            var bytes: [UInt8] = []
            var i = text.utf8.startIndex
            let utf8 = text.utf8
            while i != utf8.endIndex {
                let byte = utf8[i]
                if byte == UInt8(ascii: "_") {
                    bytes.append(0x20)
                } else if byte == UInt8(ascii: "="), let a = utf8.index(i, offsetBy: 1, limitedBy: utf8.endIndex), a != utf8.endIndex,
                          let b = utf8.index(a, offsetBy: 1, limitedBy: utf8.endIndex), b != utf8.endIndex,
                          let value = UInt8(String(decoding: [utf8[a], utf8[b]], as: UTF8.self), radix: 16) {
                    bytes.append(value)
                    i = b
                } else {
                    bytes.append(byte)
                }
                i = utf8.index(after: i)
            }
            return String(decoding: bytes, as: UTF8.self)
        default:
            return nil
        }
    }

    /// An RFC 5322 date (`Tue, 01 Jul 2026 12:00:00 +0000`, the day name optional) as ms since the epoch.
    static func parseDate(_ text: String) -> Int? {
        var fields = text.split(separator: " ").map(String.init)
        if let first = fields.first, first.hasSuffix(",") { fields.removeFirst() }
        guard fields.count >= 4, let day = Int(fields[0]), (1...31).contains(day), let year = Int(fields[2]), (1970...9999).contains(year) else { return nil }
        let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        guard let month = months.firstIndex(of: fields[1].lowercased()) else { return nil }
        let time = fields[3].split(separator: ":").compactMap { Int($0) }
        guard time.count >= 2, time.allSatisfy({ (0...60).contains($0) }) else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(time[0])
        parts.tm_min = Int32(time[1])
        parts.tm_sec = Int32(time.count > 2 ? time[2] : 0)
        var seconds = Int(timegm(&parts))
        if fields.count > 4, fields[4].count == 5, let zone = Int(fields[4]) {
            // +HHMM east of UTC: subtract to get UTC.
            let sign = zone < 0 ? -1 : 1
            let magnitude = abs(zone)
            seconds -= sign * ((magnitude / 100) * 3600 + (magnitude % 100) * 60)
        }
        return seconds * 1000
    }
}
