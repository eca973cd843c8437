import Foundation
import Testing
@testable import MailSink

@Suite struct MailboxStoreTests {
    func temporaryDirectory() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-mailbox-\(UUID().uuidString)")
    }

    func message(_ id: String?, to recipients: [String], body: String = "hello") -> SMTPSession.Message {
        let header = id.map { "Message-ID: \($0)\r\n" } ?? ""
        return SMTPSession.Message(from: "no-reply@nimbus.local", recipients: recipients,
                                   data: Array("\(header)Subject: s\r\n\r\n\(body)\r\n".utf8))
    }

    @Test func anEntryIsAnMboxrdMailWithLFLineEnds() {
        let data = Array("Subject: s\r\n\r\nFrom here\r\n>From there\r\nFromage\r\n".utf8)
        let entry = MailboxStore.entry(from: "a@b.c", recipient: "me@x.y", data: data, date: Date(timeIntervalSince1970: 0))
        #expect(String(decoding: entry, as: UTF8.self) == """
            From a@b.c Thu Jan  1 00:00:00 1970
            X-Nimbus-Rcpt: me@x.y
            X-Nimbus-Mail-From: a@b.c
            Subject: s

            >From here
            >>From there
            Fromage


            """)
        // An empty envelope sender (a bounce) still gives a "From " line with one word.
        let bounce = MailboxStore.entry(from: "", recipient: "me@x.y", data: data, date: Date(timeIntervalSince1970: 0))
        #expect(String(decoding: bounce, as: UTF8.self).hasPrefix("From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n"))
    }

    @Test func aScanCountsMailsAndNotQuotedFromLines() {
        var mailbox: [UInt8] = []
        for (id, body) in [("<1@x>", "From the body\r\n\r\nFrom again"), ("<2@x>", "plain")] {
            mailbox += MailboxStore.entry(from: "a@b.c", recipient: "me@x.y",
                                          data: Array("Message-ID: \(id)\r\n\r\n\(body)\r\n".utf8), date: Date())
        }
        let scan = MailboxStore.scan(mailbox)
        #expect(scan.count == 2)
        #expect(Set(scan.keys) == [MailboxStore.fnv1a("<1@x>\u{0}me@x.y"), MailboxStore.fnv1a("<2@x>\u{0}me@x.y")])
        // Fed in pieces that split lines anywhere (the sink reads a mailbox a megabyte at a time).
        for size in [1, 7, 64] {
            var scanner = MailboxStore.MboxScanner()
            for start in stride(from: 0, to: mailbox.count, by: size) { scanner.feed(Array(mailbox[start..<min(start + size, mailbox.count)])) }
            scanner.finish()
            #expect(scanner.count == 2)
            #expect(Set(scanner.keys) == Set(scan.keys))
        }
    }

    @Test func oneMailboxPerRecipientAndAResentMailIsKeptOnceAcrossARestart() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        do {
            let store = try MailboxStore(directory: directory)
            try store.store(message("<1@x>", to: ["a@x.y", "b@x.y"]))
            try store.store(message("<1@x>", to: ["a@x.y"]))  // the sender lost our "250" and sent again
            try store.store(message(nil, to: ["a@x.y"]))       // without a Message-ID: always kept
            #expect(store.stored == 3)
            #expect(store.duplicates == 1)
        }
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: directory.path)) == ["a@x.y.mbox", "b@x.y.mbox"])
        let restarted = try MailboxStore(directory: directory)
        #expect(restarted.stored == 3)
        try restarted.store(message("<1@x>", to: ["b@x.y", "c@x.y"]))
        #expect(restarted.duplicates == 1)
        #expect(restarted.stored == 4)
        let a = try String(contentsOf: directory.appendingPathComponent("a@x.y.mbox"), encoding: .utf8)
        #expect(a.components(separatedBy: "\nX-Nimbus-Rcpt: a@x.y\n").count == 3)
    }

    @Test func aMailboxDeletedWhileOpenIsCreatedAgain() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try MailboxStore(directory: directory)
        try store.store(message("<1@x>", to: ["a@x.y"]))
        try FileManager.default.removeItem(at: directory.appendingPathComponent("a@x.y.mbox"))
        try store.store(message("<2@x>", to: ["a@x.y"]))
        let mailbox = try String(contentsOf: directory.appendingPathComponent("a@x.y.mbox"), encoding: .utf8)
        #expect(mailbox.contains("Message-ID: <2@x>"))
        #expect(!mailbox.contains("Message-ID: <1@x>"))
    }

    @Test func aRecipientBecomesASafeFileName() {
        #expect(MailboxStore.fileName("me+tag@example.com") == "me+tag@example.com.mbox")
        #expect(MailboxStore.fileName("../../etc/passwd") == "_.._.._etc_passwd.mbox")
        #expect(MailboxStore.fileName("a b/c") == "a_b_c.mbox")
        #expect(MailboxStore.fileName("") == "_.mbox")
    }
}
