import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where the sink keeps mail: one mbox file per recipient, `<address>.mbox` (mboxrd: a "From "
/// line before each mail, LF line ends, body lines that start with ">*From " quoted with one more
/// ">"), appended to. Each mail carries `X-Nimbus-Rcpt` and `X-Nimbus-Mail-From` headers in front.
///
/// Why not a file per mail: on this project's benchmark machine (ext4 without a journal) creating a
/// file cost 80–600 µs, because the allocator skips inodes freed in the last minutes, and at a mail
/// an order the sink became the end-to-end benchmark's largest consumer of CPU. An append costs no
/// inode.
///
/// A mail is appended with one write(2) under an exclusive flock(2), so a reader that takes a shared
/// flock never sees half of one; a failed write is cut off again (ftruncate), so the file stays a
/// valid mbox.
final class MailboxStore: @unchecked Sendable {
    let directory: URL
    private let lock = NSLock()
    /// fnv1a("Message-ID \0 recipient") of every mail kept, to keep a re-sent mail once.
    private var seen: Set<UInt64> = []
    /// Open append descriptors by file name; closed all together past `maxOpenFiles`.
    private var files: [String: Int32] = [:]
    private static let maxOpenFiles = 64
    private var storedCount = 0
    private var duplicateCount = 0

    /// Opens (creating) `directory` and reads the mailboxes already there, so counts and
    /// deduplication carry over a restart. They are read a megabyte at a time: a mailbox can be
    /// larger than the memory the sink should take.
    init(directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] where name.hasSuffix(".mbox") {
            guard let file = FileHandle(forReadingAtPath: directory.appendingPathComponent(name).path) else { continue }
            defer { try? file.close() }
            var scanner = MboxScanner()
            while let chunk = try file.read(upToCount: 1 << 20), !chunk.isEmpty { scanner.feed([UInt8](chunk)) }
            scanner.finish()
            storedCount += scanner.count
            seen.formUnion(scanner.keys)
        }
    }

    deinit {
        for fd in files.values { close(fd) }
    }

    /// Mails kept (one per recipient of each message).
    var stored: Int { lock.withLock { storedCount } }
    /// Mails received again with a Message-ID already kept for that recipient (not stored twice).
    var duplicates: Int { lock.withLock { duplicateCount } }

    /// Appends `message` to each recipient's mailbox. A mail with a Message-ID is kept once per
    /// recipient, as mailbox providers do: SMTP delivery is at-least-once (a sender that lost the final
    /// "250" sends again, with the same Message-ID), and the copy is collapsed here.
    func store(_ message: SMTPSession.Message, date: Date = Date()) throws {
        let messageID = Self.messageID(message.data)
        try lock.withLock {
            for recipient in message.recipients {
                var key: UInt64?
                if let messageID {
                    let hash = Self.fnv1a(messageID + "\u{0}" + recipient)
                    if seen.contains(hash) {
                        duplicateCount += 1
                        continue
                    }
                    key = hash
                }
                try append(Self.entry(from: message.from, recipient: recipient, data: message.data, date: date),
                           to: Self.fileName(recipient))
                if let key { seen.insert(key) }
                storedCount += 1
            }
        }
    }

    /// The mailbox file of `recipient`: its address with anything unusual replaced by "_".
    static func fileName(_ recipient: String) -> String {
        let safe = String(recipient.map { $0.isLetter || $0.isNumber || "@._-+".contains($0) ? $0 : "_" }.prefix(100))
        return (safe.isEmpty || safe.hasPrefix(".") ? "_" + safe : safe) + ".mbox"
    }

    /// One mail as it goes into an mbox: the "From " line, Nimbus's two headers, the message with
    /// LF line ends and ">From " quoting, and the blank line that ends it.
    static func entry(from sender: String, recipient: String, data: [UInt8], date: Date) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 200)
        let envelope = sender.filter { !$0.isWhitespace }
        out += Array("From \(envelope.isEmpty ? "MAILER-DAEMON" : envelope) \(asctime(date))\n".utf8)
        out += Array("X-Nimbus-Rcpt: \(oneLine(recipient))\nX-Nimbus-Mail-From: \(oneLine(sender))\n".utf8)
        var start = 0
        while start < data.count {
            var end = start
            while end < data.count, data[end] != 0x0A { end += 1 }
            var line = data[start..<end]
            if line.last == 0x0D { line = line.dropLast() }
            if isFromLine(line) { out.append(UInt8(ascii: ">")) }
            out += line
            out.append(0x0A)
            start = end + 1
        }
        out.append(0x0A)
        return out
    }

    /// How many mails an mbox holds, and the deduplication keys of those with a Message-ID.
    static func scan(_ data: [UInt8]) -> (count: Int, keys: [UInt64]) {
        var scanner = MboxScanner()
        scanner.feed(data)
        scanner.finish()
        return (scanner.count, scanner.keys)
    }

    /// Reads an mbox line by line, fed in pieces of any size: counts the mails (a "From " line at the
    /// start or after a blank line) and notes the recipient and Message-ID in each one's headers.
    struct MboxScanner {
        private(set) var count = 0
        private(set) var keys: [UInt64] = []
        private var pending: [UInt8] = []
        private var inHeaders = false
        private var previousBlank = true
        private var recipient: String?
        private var messageID: String?

        mutating func feed(_ bytes: [UInt8]) {
            pending += bytes
            var start = 0
            while let newline = pending[start...].firstIndex(of: 0x0A) {
                line(pending[start..<newline])
                start = newline + 1
            }
            pending.removeSubrange(..<start)
        }

        /// The last line, when the file does not end with a line end.
        mutating func finish() {
            if !pending.isEmpty { line(pending[...]) }
            pending = []
        }

        private mutating func line(_ line: ArraySlice<UInt8>) {
            if previousBlank, line.starts(with: Array("From ".utf8)) {
                count += 1
                inHeaders = true
                recipient = nil
                messageID = nil
                previousBlank = false
                return
            }
            previousBlank = line.isEmpty
            guard inHeaders else { return }
            if line.isEmpty {
                inHeaders = false
                if let recipient, let messageID { keys.append(MailboxStore.fnv1a(messageID + "\u{0}" + recipient)) }
            } else if let value = MailboxStore.headerValue(line, "x-nimbus-rcpt:") {
                recipient = value
            } else if let value = MailboxStore.headerValue(line, "message-id:") {
                messageID = value
            }
        }
    }

    // MARK: Private

    private func append(_ bytes: [UInt8], to name: String) throws {
        let fd = try descriptor(name)
        guard flock(fd, LOCK_EX) == 0 else { throw SinkError("flock \(name): \(String(cString: strerror(errno)))") }
        defer { flock(fd, LOCK_UN) }
        let before = lseek(fd, 0, SEEK_END)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                let reason = String(cString: strerror(errno))
                // Half a mail would run into the next one: cut it off.
                if before >= 0 { _ = ftruncate(fd, before) }
                throw SinkError("write \(name): \(reason)")
            }
            offset += n
        }
    }

    private func descriptor(_ name: String) throws -> Int32 {
        if let fd = files[name] {
            // A mailbox deleted while open (someone emptied it with rm) is opened anew: writing on
            // into the unlinked file would lose every mail after.
            var status = stat()
            if fstat(fd, &status) == 0, status.st_nlink > 0 { return fd }
            close(fd)
            files[name] = nil
        }
        if files.count >= Self.maxOpenFiles {
            for fd in files.values { close(fd) }
            files.removeAll()
        }
        let fd = open(directory.appendingPathComponent(name).path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SinkError("open \(name): \(String(cString: strerror(errno)))") }
        files[name] = fd
        return fd
    }

    private static func isFromLine(_ line: ArraySlice<UInt8>) -> Bool {
        var rest = line.drop { $0 == UInt8(ascii: ">") }
        guard rest.count >= 5 else { return false }
        rest = rest.prefix(5)
        return rest.elementsEqual("From ".utf8)
    }

    static func headerValue(_ line: ArraySlice<UInt8>, _ name: String) -> String? {
        let lower = Array(name.utf8)
        guard line.count >= lower.count,
              zip(line.prefix(lower.count), lower).allSatisfy({ $0 | 0x20 == $1 | 0x20 }) else { return nil }
        let value = String(decoding: line.dropFirst(lower.count), as: UTF8.self).trimmingCharacters(in: .whitespaces)
        return value.isEmpty ? nil : value
    }

    /// The date of a "From " line, asctime's format in UTC: "Fri Nov 27 10:55:19 2026".
    static func asctime(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [Int8](repeating: 0, count: 64)
        let length = strftime(&buffer, buffer.count, "%a %b %e %H:%M:%S %Y", &parts)
        return String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The Message-ID header's value, from the header section of a mail as SMTP carries it (lines
    /// end in CRLF; an empty line ends the headers). Read with `headerValue`, as the start-up scan
    /// reads stored mails (whose lines end in LF).
    static func messageID(_ data: [UInt8]) -> String? {
        let end = min(data.count, 64 * 1024)
        var start = 0
        while start < end {
            let stop = data[start..<end].firstIndex(of: 0x0A) ?? end
            let line = data[start..<(stop > start && data[stop - 1] == 0x0D ? stop - 1 : stop)]
            if line.isEmpty { return nil }  // end of the headers
            if let value = headerValue(line, "message-id:") { return value }
            start = stop + 1
        }
        return nil
    }

    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf29ce484222325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
        return hash
    }

    static func oneLine(_ text: String) -> String { text.filter { $0 != "\r" && $0 != "\n" } }
}
