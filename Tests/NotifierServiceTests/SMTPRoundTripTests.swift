import Foundation
import Testing
@testable import MailSink
import NotifierCore
@testable import NotifierService

@Suite struct SMTPSessionTests {
    func replies(_ outputs: [SMTPSession.Output]) -> [String] {
        outputs.compactMap { if case .reply(let r) = $0 { r } else { nil } }
    }

    @Test func aWholeConversationWithTwoMessages() {
        var s = SMTPSession()
        func say(_ line: String) -> [SMTPSession.Output] { s.receive(line: Array(line.utf8)) }
        #expect(replies(say("EHLO client")).first?.hasPrefix("250-") == true)
        for round in 0..<2 {
            #expect(replies(say("MAIL FROM:<a@x.org> SIZE=10")) == ["250 2.1.0 OK"])
            #expect(replies(say("RCPT TO:<b@y.org>")) == ["250 2.1.5 OK"])
            #expect(replies(say("DATA")).first?.hasPrefix("354") == true)
            _ = say("Subject: \(round)")
            _ = say("")
            _ = say("..dot")
            let end = say(".")
            guard case .message(let m)? = end.first else { Issue.record("no message"); return }
            #expect(m.from == "a@x.org" && m.recipients == ["b@y.org"])
            #expect(String(decoding: m.data, as: UTF8.self) == "Subject: \(round)\r\n\r\n.dot\r\n")
        }
        #expect(say("QUIT").last == .close)
    }

    @Test func garbageGets500sAndFinallyAClose() {
        var s = SMTPSession()
        #expect(replies(s.receive(line: [0xff, 0xfe, 0x00])).first?.hasPrefix("500") == true)
        #expect(replies(s.receive(line: Array("RCPT TO:<x@y>".utf8))).first?.hasPrefix("503") == true)
        #expect(replies(s.receive(line: Array("DATA".utf8))).first?.hasPrefix("503") == true)
        #expect(replies(s.receive(line: Array("MAIL FROM:nothing-bracketed".utf8))) == ["250 2.1.0 OK"])
        #expect(replies(s.receive(line: Array(repeating: 65, count: 10_000))).first?.hasPrefix("500") == true)
        var closed = false
        for _ in 0..<30 where !closed { closed = s.receive(line: Array("BOGUS".utf8)).contains(.close) }
        #expect(closed)
    }
}

@Suite(.serialized) struct SMTPRoundTripTests {
    @Test func clientSendsThroughTheSinkAndReusesItsConnection() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-sink-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try MailSinkServer(port: 0, directory: dir)
        server.start()
        defer { server.stop() }
        let client = SMTPClient(settings: .init(host: "127.0.0.1", port: server.port, username: "u", password: "p"))
        for i in 0..<3 {
            try await client.send(MailMessage(from: "no-reply@nimbus.local", to: "me@example.com", subject: "n\(i)",
                                              body: "hello \(i)\n.\nend", messageID: "m\(i)@nimbus.local", date: Date()))
        }
        await client.close()
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["me@example.com.mbox"])
        #expect(server.mailsStored == 3)
        let mailbox = try String(contentsOf: dir.appendingPathComponent("me@example.com.mbox"), encoding: .utf8)
        let mails = mailbox.components(separatedBy: "\n\nFrom ")
        #expect(mails.count == 3)
        #expect(mails.allSatisfy { $0.contains("\nX-Nimbus-Rcpt: me@example.com\nX-Nimbus-Mail-From: no-reply@nimbus.local\n") })
        // The lone "." line survived the trip (dot-stuffed by the client, unstuffed by the sink).
        #expect(mails[1].contains("\n\nhello 1\n.\nend"))
    }

    @Test func aRefusedConnectionIsARetryableError() async throws {
        // Bind and close to find a port nobody listens on.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-sink-\(UUID().uuidString)")
        let probe = try MailSinkServer(port: 0, directory: dir)
        let port = probe.port
        probe.stop()
        defer { try? FileManager.default.removeItem(at: dir) }
        let client = SMTPClient(settings: .init(host: "127.0.0.1", port: port, timeoutSeconds: 2))
        do {
            try await client.send(MailMessage(from: "a@b.c", to: "d@e.f", subject: "s", body: "b", messageID: "x@y", date: Date()))
            Issue.record("sent to a closed port")
        } catch let error as SMTPError {
            #expect(!error.permanent)
            #expect(error.description.contains("cannot connect"))
        }
    }
}

/// A scripted SMTP server on a thread: records the commands it gets and answers per a rule, to see
/// both of the client's paths (with and without PIPELINING) and how refusals leave the connection.
final class ScriptedSMTPServer: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var received: [String] = []
    var commands: [String] { lock.withLock { received } }

    init() {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        listener = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 4)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// `injectAfterStartTLS`: offer STARTTLS and send an extra line right after its 220, in the same
    /// segment (what a man in the middle injecting commands would do).
    func start(pipelining: Bool, refuseRecipient: String, injectAfterStartTLS: Bool = false) {
        let fd = listener
        Thread { [self] in
            let client = accept(fd, nil, nil)
            guard client >= 0 else { return }
            defer { close(client) }
            func say(_ text: String) { _ = text.utf8CString.withUnsafeBufferPointer { send(client, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) } }
            say("220 scripted\r\n")
            var buffer: [UInt8] = []
            var inData = false
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = recv(client, &chunk, chunk.count, 0)
                if n <= 0 { return }
                buffer += chunk[..<n]
                while let newline = buffer.firstIndex(of: 10) {
                    let line = String(decoding: buffer[..<newline].filter { $0 != 13 }, as: UTF8.self)
                    buffer.removeSubrange(...newline)
                    if inData {
                        if line == "." { inData = false; say("250 queued\r\n") }
                        continue
                    }
                    lock.withLock { received.append(line) }
                    let verb = line.prefix(4).uppercased()
                    switch verb {
                    case "EHLO" where injectAfterStartTLS: say("250-scripted\r\n250 STARTTLS\r\n")
                    case "EHLO": say(pipelining ? "250-scripted\r\n250 PIPELINING\r\n" : "250 scripted\r\n")
                    case "STAR" where injectAfterStartTLS: say("220 go ahead\r\n250 injected\r\n")
                    case "MAIL": say("250 ok\r\n")
                    case "RCPT": say(line.contains(refuseRecipient) ? "550 no such user\r\n" : "250 ok\r\n")
                    case "DATA":
                        let refused = lock.withLock { received.last(where: { $0.hasPrefix("RCPT") })?.contains(refuseRecipient) ?? false }
                        if refused { say("554 no valid recipients\r\n") } else { inData = true; say("354 go on\r\n") }
                    case "RSET": say("250 reset\r\n")
                    case "QUIT": say("221 bye\r\n"); return
                    default: say("500 what\r\n")
                    }
                }
            }
        }.start()
    }

    deinit { close(listener) }
}

@Suite(.serialized) struct SMTPPipeliningTests {
    func mail(to: String) -> MailMessage {
        MailMessage(from: "no-reply@nimbus.local", to: to, subject: "s", body: "b", messageID: "\(to)@nimbus.local", date: Date())
    }

    @Test(arguments: [true, false])
    func aRefusedRecipientIsPermanentAndTheConnectionGoesOn(pipelining: Bool) async throws {
        let server = ScriptedSMTPServer()
        server.start(pipelining: pipelining, refuseRecipient: "nobody@")
        let client = SMTPClient(settings: .init(host: "127.0.0.1", port: server.port, timeoutSeconds: 5))
        do {
            try await client.send(mail(to: "nobody@example.com"))
            Issue.record("a refused recipient was taken")
        } catch let error as SMTPError {
            #expect(error.permanent)
            #expect(error.description.contains("550"))
        }
        try await client.send(mail(to: "me@example.com"))
        await client.close()
        let verbs = server.commands.map { String($0.prefix(4)) }
        // One connection throughout; after the refusal, RSET, then the next mail.
        #expect(verbs.filter { $0 == "EHLO" }.count == 1)
        #expect(verbs == (pipelining
            ? ["EHLO", "MAIL", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA", "QUIT"]
            : ["EHLO", "MAIL", "RCPT", "RSET", "MAIL", "RCPT", "DATA", "QUIT"]))
    }
}

@Suite(.serialized) struct SMTPStartTLSRefusalTests {
    func send(_ client: SMTPClient) async throws {
        try await client.send(MailMessage(from: "a@nimbus.local", to: "b@example.com", subject: "s", body: "b", messageID: "m@x", date: Date()))
    }

    @Test func aServerWithoutStartTLSGetsNoMail() async throws {
        let server = ScriptedSMTPServer()
        server.start(pipelining: true, refuseRecipient: "-")
        let client = SMTPClient(settings: .init(host: "127.0.0.1", port: server.port, timeoutSeconds: 5, security: .startTLS))
        await #expect { try await send(client) } throws: { error in
            (error as? SMTPError)?.description.contains("does not offer STARTTLS") == true
        }
        #expect(!server.commands.contains { $0.hasPrefix("MAIL") })
    }

    @Test func bytesBeforeTheHandshakeAreRefused() async throws {
        let server = ScriptedSMTPServer()
        server.start(pipelining: false, refuseRecipient: "-", injectAfterStartTLS: true)
        let client = SMTPClient(settings: .init(host: "127.0.0.1", port: server.port, timeoutSeconds: 5, security: .startTLS))
        await #expect { try await send(client) } throws: { error in
            (error as? SMTPError)?.description.contains("sent data before the TLS handshake") == true
        }
        #expect(server.commands.map { String($0.prefix(8)) } == ["EHLO nim", "STARTTLS"])
    }
}

@Suite struct SinkMessageIDTests {
    func id(_ text: String) -> String? { MailboxStore.messageID(Array(text.utf8)) }

    @Test func theHeaderIsFoundInAnyCaseAndTrimmed() {
        #expect(id("Subject: s\r\nMessage-ID: <abc@nimbus.local>\r\n\r\nbody") == "<abc@nimbus.local>")
        #expect(id("message-id:\t <x@y>  \r\nTo: a\r\n\r\n") == "<x@y>")
        #expect(id("MESSAGE-ID: <z>") == "<z>")
    }

    @Test func noneInTheHeadersIsNone() {
        #expect(id("Subject: s\r\n\r\nMessage-ID: <in-the-body>\r\n") == nil)
        #expect(id("Message-ID:   \r\n\r\n") == nil)
        #expect(id("") == nil)
        #expect(id("X-Message-ID: <not-it>\r\n\r\n") == nil)
    }
}

@Suite struct DoorbellTests {
    /// Runs `wait` against a 5-second bound; true when the wait ended first.
    func endsBeforeTheBound(_ wait: @escaping @Sendable () async -> Void) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { await wait(); return true }
            group.addTask { try? await Task.sleep(for: .seconds(5)); return false }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    @Test func aRingBeforeTheWaitEndsItAtOnceAndOnlyOnce() async {
        let bell = Doorbell()
        bell.ring()
        #expect(bell.pending)
        #expect(await endsBeforeTheBound { await bell.wait(upTo: 60) })
        #expect(!bell.pending)
        // A wait that ends by its own limit leaves no ring behind for the next one.
        await bell.wait(upTo: 0.01)
        #expect(!bell.pending)
    }

    @Test func aRingDuringTheWaitEndsIt() async {
        let bell = Doorbell()
        let waiting = Task { await bell.wait(upTo: 60) }
        // The ring either wakes the parked waiter or, if it comes first, is kept for it.
        #expect(await endsBeforeTheBound {
            bell.ring()
            await waiting.value
        })
    }
}

/// PublishBatch requests of strings are read without JSONDecoder; the result must be JSONDecoder's,
/// and anything else must be left to it.
@Suite struct PublishBatchReaderTests {
    @Test func stringBatchesReadAsJSONDecoderReadsThem() throws {
        let text = #"{"TopicArn":"arn:aws:sns:us-east-1:000000000000:POC-Topic","PublishBatchRequestEntries":[{"Id":"r0","Message":"{\"default\":\"x\"}","MessageStructure":"json","MessageDeduplicationId":"e-0"},{"Subject":"s","Id":"r1","Message":"plain ✓"}]}"#
        let fast = try #require(PublishBatchRequest.fast(Data(text.utf8)))
        let slow = try JSONDecoder().decode(PublishBatchRequest.self, from: Data(text.utf8))
        #expect(fast.TopicArn == slow.TopicArn)
        #expect(fast.PublishBatchRequestEntries == slow.PublishBatchRequestEntries)
    }

    @Test(arguments: [
        #"{"TopicArn":"t","PublishBatchRequestEntries":[{"Id":"r0","Message":"m","MessageAttributes":{}}]}"#,
        #"{"TopicArn":"t","PublishBatchRequestEntries":[{"Message":"m"}]}"#,
        #"{"TopicArn":"t","PublishBatchRequestEntries":[{"Id":"r0","Message":1}]}"#,
        #"{"TopicArn":"t"}"#, #"{"TopicArn":"t","PublishBatchRequestEntries":[],"Extra":"x"}"#, "[]",
    ])
    func otherShapesAreLeftToJSONDecoder(text: String) {
        #expect(PublishBatchRequest.fast(Data(text.utf8)) == nil)
    }
}
