import Foundation
import Testing
import NimbusProtocol

@Suite struct FrameCodecTests {
    func frames(_ header: String, body: String = "{}", tag: String = "nimbus/1") -> ArraySlice<Data> {
        [Data(tag.utf8), Data(header.utf8), Data(body.utf8)][...]
    }

    func failure(_ result: Result<Envelope, FrameDecodeFailure>) -> FrameDecodeFailure? {
        if case .failure(let f) = result { return f }
        return nil
    }

    @Test func aRequestRoundTripsWithEveryHeaderField() throws {
        let header = EnvelopeHeader(
            kind: .request, id: "id-\"quoted\"\n\u{1}é", action: "sqs:SendMessage",
            resource: "arn:aws:sqs:us-east-1:000000000000:POC-Queue",
            sender: NodeStamp(name: "gateway", incarnation: "abc"),
            auth: RequestAuth(accessKeyId: "AKIA", sessionToken: "tok", timestamp: 1_700_000_000_000, signature: "ff"))
        let body = Data(#"{"QueueUrl":"q","MessageBody":"a&b+c%d ü"}"#.utf8)
        let encoded = FrameCodec.encode(Envelope(header: header, body: body))
        #expect(encoded.count == 3)
        #expect(encoded[0] == Data("nimbus/1".utf8))
        let decoded = try FrameCodec.decode(encoded[...]).get()
        #expect(decoded.header == header)
        #expect(decoded.body == body)
        // The hand-written header is ordinary JSON.
        #expect(try JSONDecoder().decode(EnvelopeHeader.self, from: encoded[1]) == header)
    }

    @Test func errorsCarryCodeAndMessage() throws {
        let envelope = Envelope.error(to: "7", sender: nil, WireError(.invalidAction, "no \"such\" thing"))
        let decoded = try FrameCodec.decode(FrameCodec.encode(envelope)[...]).get()
        #expect(decoded.header.kind == .error)
        #expect(decoded.wireError == WireError(code: "InvalidAction", message: "no \"such\" thing"))
        #expect(Envelope.reply(to: "7", sender: nil, body: Data("{}".utf8)).wireError == nil)
    }

    @Test func garbageInTheTagFrameIsAMalformedFrame() {
        #expect(failure(FrameCodec.decode([Data([0xde, 0xad, 0xbe, 0xef])][...]))?.error.code == "MalformedFrame")
        #expect(failure(FrameCodec.decode([Data()][...]))?.error.code == "MalformedFrame")
        #expect(failure(FrameCodec.decode([][...]))?.error.code == "MalformedFrame")
    }

    @Test func anotherVersionIsNamedAndTheIDRecovered() {
        let f = failure(FrameCodec.decode(frames(#"{"kind":"request","id":"r9","action":"nimbus:Health"}"#, tag: "nimbus/2")))
        #expect(f?.error.code == "UnsupportedProtocolVersion")
        #expect(f?.error.message.contains("2") == true)
        #expect(f?.replyID == "r9")
    }

    @Test func wrongFrameCountIsAMalformedFrame() {
        let two: ArraySlice<Data> = [Data("nimbus/1".utf8), Data(#"{"kind":"request","id":"x"}"#.utf8)][...]
        let f = failure(FrameCodec.decode(two))
        #expect(f?.error.code == "MalformedFrame")
        #expect(f?.replyID == "x")
    }

    @Test(arguments: [
        (#"{"kind":"request","id":"a","action":"nim"#, "SerializationException", ""),
        (#"[1,2]"#, "SerializationException", ""),
        (#"{"kind":"request","action":"nimbus:Health"}"#, "MissingParameter", ""),
        (#"{"id":"a","action":"nimbus:Health"}"#, "MissingParameter", "a"),
        (#"{"kind":"shout","id":"a"}"#, "InvalidParameterValue", "a"),
        (#"{"kind":"request","id":5}"#, "InvalidParameterValue", ""),
        (#"{"kind":"request","id":""}"#, "MissingParameter", ""),
        (#"{"kind":"request","id":"a"}"#, "MissingParameter", "a"),
        (#"{"kind":"request","id":"a","action":"garbage"}"#, "InvalidAction", "a"),
        (#"{"kind":"request","id":"a","action":"SQS:Send"}"#, "InvalidAction", "a"),
        (#"{"kind":"request","id":"a","action":"sqs:Send Message"}"#, "InvalidAction", "a"),
        (#"{"kind":"request","id":"a","action":"sqs:SendMessage","resource":"queue"}"#, "InvalidParameterValue", "a"),
    ])
    func badHeadersGetTheRightCode(header: String, code: String, id: String) {
        let f = failure(FrameCodec.decode(frames(header)))
        #expect(f?.error.code == code)
        #expect(f?.replyID == id)
        #expect(f?.dropSilently == false)
    }

    @Test func anOverlongIDIsRejectedWithoutEchoingIt() {
        let id = String(repeating: "x", count: 129)
        let f = failure(FrameCodec.decode(frames(#"{"kind":"request","id":"\#(id)","action":"nimbus:Health"}"#)))
        #expect(f?.error.code == "InvalidParameterValue")
        #expect(f?.replyID == "")
    }

    @Test func aBadReplyIsDroppedSilentlyRatherThanAnswered() {
        let f = failure(FrameCodec.decode(frames(#"{"kind":"reply","id":""}"#)))
        #expect(f?.dropSilently == true)
    }

    @Test func unknownHeaderFieldsAreIgnored() throws {
        let e = try FrameCodec.decode(frames(#"{"kind":"heartbeat","id":"h","future":{"x":1}}"#)).get()
        #expect(e.header.kind == .heartbeat)
    }

    @Test func actionsAreServiceColonOperation() {
        #expect(FrameCodec.isWellFormedAction("sqs:SendMessage"))
        #expect(FrameCodec.isWellFormedAction("dynamodb:PutItem"))
        #expect(FrameCodec.isWellFormedAction("nimbus:Health"))
        #expect(!FrameCodec.isWellFormedAction("sqs:"))
        #expect(!FrameCodec.isWellFormedAction(":Send"))
        #expect(!FrameCodec.isWellFormedAction("sqs:Send:More"))
        #expect(!FrameCodec.isWellFormedAction("sqs:Send-Message"))
        #expect(!FrameCodec.isWellFormedAction("SQS:SendMessage"))
        #expect(!FrameCodec.isWellFormedAction(""))
        #expect(!FrameCodec.isWellFormedAction(":"))
        #expect(FrameCodec.isWellFormedAction("states-2:Start2"))
    }

    @Test func wireErrorJSONEscapesAndDecodes() throws {
        let error = WireError(code: "X", message: "line\nbreak \"q\" \\ \u{7}")
        #expect(try JSONDecoder().decode(WireError.self, from: error.jsonData) == error)
    }

    /// An error's further members (DynamoDB's CancellationReasons) travel as `fields`, as raw JSON.
    @Test func wireErrorFieldsTravelAsAnObject() throws {
        let fields = Data(#"{"CancellationReasons":[{"Code":"None"},{"Code":"ConditionalCheckFailed","Item":{"n":{"BOOL":true}}}]}"#.utf8)
        let error = WireError(code: "TransactionCanceledException", message: "m \"fields\": {}", fields: fields)
        let body = error.jsonData
        let object = try #require(try JSONSerialization.jsonObject(with: body) as? [String: Any])
        #expect(object["code"] as? String == "TransactionCanceledException")
        #expect((object["fields"] as? [String: Any])?["CancellationReasons"] != nil)
        #expect(WireError(json: body) == error)
        let envelope = try FrameCodec.decode(FrameCodec.encode(.error(to: "id-1", sender: nil, error))[...]).get()
        #expect(envelope.wireError == error)
        // Without fields the body is as it always was; fields that are not an object are not read.
        #expect(WireError(code: "X", message: "y").jsonData == Data(#"{"code":"X","message":"y"}"#.utf8))
        #expect(WireError(json: Data(#"{"code":"X","message":"y","fields":[1]}"#.utf8)) == WireError(code: "X", message: "y"))
        #expect(JSONFields.topLevelRaw("fields", in: Data(#"{"a":"}","fields": {"b":[1,{"c":"]"}]} }"#.utf8)) == Data(#"{"b":[1,{"c":"]"}]}"#.utf8))
    }

    @Test func arnsParseAndPrint() throws {
        let arn = try #require(ARN("arn:aws:dynamodb:us-east-1:000000000000:table/orders/stream/2026-11-26T00:00:00.000"))
        #expect(arn.service == "dynamodb")
        #expect(arn.resource == "table/orders/stream/2026-11-26T00:00:00.000")
        #expect(arn.description == "arn:aws:dynamodb:us-east-1:000000000000:table/orders/stream/2026-11-26T00:00:00.000")
        #expect(ARN("arn:aws:iam::000000000000:role/APIGateway-SQS")?.region == "")
        #expect(ARN("not-an-arn") == nil)
        #expect(ARN("arn:aws:sqs:us-east-1:000000000000:POC-Queue")?.sqsQueueURL == "https://sqs.us-east-1.amazonaws.com/000000000000/POC-Queue")
        #expect(ARN("arn:aws:sns:us-east-1:000000000000:POC-Topic")?.sqsQueueURL == nil)
        #expect(ARN("arn:aws:sqs") == nil)
    }
}
