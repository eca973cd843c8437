import Foundation
import Testing
import MailSink
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
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".eml") && !$0.hasPrefix(".") }
        #expect(files.count == 3)
        let texts = try files.map { try String(contentsOf: dir.appendingPathComponent($0), encoding: .utf8) }
        #expect(texts.allSatisfy { $0.hasPrefix("X-Nimbus-Rcpt: me@example.com\r\n") })
        // The lone "." line survived the trip (dot-stuffed by the client, unstuffed by the sink).
        #expect(texts.contains { $0.contains("\r\n\r\nhello 1\r\n.\r\nend\r\n") })
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
