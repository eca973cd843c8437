import Foundation
import Testing
@testable import NimbusProtocol

/// The fast header reader must agree with JSONDecoder wherever it answers, and step aside otherwise.
@Suite struct HeaderReaderTests {
    func slow(_ text: String) -> EnvelopeHeader? { try? JSONDecoder().decode(EnvelopeHeader.self, from: Data(text.utf8)) }
    func fast(_ text: String) -> EnvelopeHeader? { HeaderReader.read(Data(text.utf8)) }

    @Test func whatTheEncoderWritesIsReadBackByTheFastPath() throws {
        var generator = SystemRandomNumberGenerator()
        var alphabet = Array("abcXYZ019-_:/.é✓🚀 \"\\\n\t\u{1}")
        func randomString() -> String {
            String((0..<Int.random(in: 1...24, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
        }
        var fastCount = 0
        func roundTrip() throws {
            let header = EnvelopeHeader(
                kind: [.request, .reply, .error, .heartbeat].randomElement()!, id: randomString(),
                action: Bool.random() ? randomString() : nil, resource: Bool.random() ? randomString() : nil,
                sender: Bool.random() ? NodeStamp(name: randomString(), incarnation: randomString()) : nil,
                auth: Bool.random() ? RequestAuth(accessKeyId: randomString(), sessionToken: Bool.random() ? randomString() : nil,
                                                  timestamp: Int64.random(in: -5...Int64.max), signature: randomString()) : nil)
            let encoded = FrameCodec.encodeHeader(header)
            #expect(try JSONDecoder().decode(EnvelopeHeader.self, from: encoded) == header)
            if let read = HeaderReader.read(encoded) {
                #expect(read == header)
                fastCount += 1
            }
        }
        for _ in 0..<1000 { try roundTrip() }
        // Without characters that need escaping, every header takes the fast path.
        alphabet = Array("abcXYZ019-_:/.é✓🚀 ")
        fastCount = 0
        for _ in 0..<1000 { try roundTrip() }
        #expect(fastCount == 1000)
        let plain = EnvelopeHeader(kind: .request, id: "a-1", action: "sqs:SendMessage", resource: "arn:aws:sqs:us-east-1:000000000000:POC-Queue",
                                   sender: NodeStamp(name: "gateway", incarnation: "4f1c"), auth: RequestAuth(accessKeyId: "AKIA", timestamp: 17, signature: "ab"))
        #expect(HeaderReader.read(FrameCodec.encodeHeader(plain)) == plain)
    }

    @Test(arguments: [
        #"{"kind":"request","id":"a","action":"nimbus:Health"}"#,
        #" { "kind" : "request" , "id" : "a" } "#,
        #"{"kind":"reply","id":"a","sender":{"name":"n","incarnation":"i"}}"#,
        #"{"kind":"request","id":"a","auth":{"accessKeyId":"k","timestamp":-0,"signature":"s"}}"#,
        #"{"kind":"request","id":"a","auth":{"accessKeyId":"k","timestamp":012,"signature":"s"}}"#,
        #"{"kind":"request","id":"a","auth":{"accessKeyId":"k","timestamp":1.5,"signature":"s"}}"#,
        #"{"kind":"request","id":"a","auth":{"accessKeyId":"k","timestamp":1e3,"signature":"s"}}"#,
        #"{"kind":"request","id":"a","auth":{"accessKeyId":"k","timestamp":99999999999999999999,"signature":"s"}}"#,
        #"{"kind":"request","id":"a","action":null}"#,
        #"{"kind":"request","id":"a","action":5}"#,
        #"{"kind":"request","id":"a\u0041"}"#,
        #"{"kind":"request","id":"a","id":"b"}"#,
        #"{"kind":"request","id":"a"} x"#,
        #"{"kind":"request","id":"a",}"#,
        #"{"kind":"request","id":"a""#,
        #"{"kind":"request","id":"a","extra":[1,{"x":null}]}"#,
        #"{"kind":"request","id":"a","sender":{"name":"n"}}"#,
        #"{"kind":"bogus","id":"a"}"#,
        #"{"id":"a"}"#,
        #"{}"#,
        #"[]"#,
        #""#,
    ])
    func theFastPathNeverDisagreesWithJSONDecoder(text: String) {
        if let read = fast(text) {
            #expect(read == slow(text), "fast path read \(text) differently")
        }
    }

    @Test func invalidUTF8IsLeftToJSONDecoder() {
        var bytes = Array(#"{"kind":"request","id":""#.utf8)
        bytes += [0xFF, 0xFE]
        bytes += Array(#""}"#.utf8)
        #expect(HeaderReader.read(Data(bytes)) == nil)
    }
}
