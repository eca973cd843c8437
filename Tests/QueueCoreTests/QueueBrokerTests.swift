import Foundation
import Testing
@testable import QueueCore
import NimbusProtocol

/// A broker with a hand-moved clock and the changes it asks to persist.
struct BrokerHarness {
    var broker = QueueBroker(region: "us-east-1", account: "000000000000")
    var now: Int64 = 1_800_000_000_000
    var changes: [StoreChange] = []
    var nonce: UInt64 = 0

    mutating func create(_ name: String, _ attributes: [String: String] = [:]) throws -> String {
        try broker.createQueue(name, attributes: attributes, tags: [:], now: now, changes: &changes)
    }

    mutating func send(_ url: String, _ body: String, delay: Int? = nil) throws -> SendMessageResponse {
        try broker.sendMessage(url, .init(body: body, delaySeconds: delay), senderId: "tester", now: now, changes: &changes)
    }

    mutating func send(_ url: String, _ body: String, key: String) throws -> SendMessageResponse {
        try broker.sendMessage(url, .init(body: body, idempotencyKey: key), senderId: "tester", now: now, changes: &changes)
    }

    mutating func receive(_ url: String, max: Int = 10, visibility: Int? = nil, attributes: [String] = ["All"]) throws -> [ReceivedMessage] {
        var options = QueueBroker.ReceiveOptions()
        options.maxMessages = max
        options.visibilityTimeout = visibility
        options.attributeNames = attributes
        let (name, _) = try broker.validateReceive(url, options, waitSeconds: nil)
        return broker.receive(name, options, now: now, nonce: { nonce += 1; return nonce }, changes: &changes)
    }

    mutating func advance(seconds: Double) { now += Int64(seconds * 1000) }
}

@Suite struct QueueBrokerTests {
    @Test func aSentMessageIsReceivedWithItsMD5AndSystemAttributes() throws {
        var h = BrokerHarness()
        let url = try h.create("q")
        #expect(url == "https://sqs.us-east-1.amazonaws.com/000000000000/q")
        let body = #"{"item": "latex gloves & more + 100% ✓"}"#
        let sent = try h.send(url, body)
        #expect(sent.MD5OfMessageBody == Digests.md5Hex(Data(body.utf8)))
        h.advance(seconds: 1)
        let got = try h.receive(url)
        #expect(got.count == 1)
        #expect(got[0].Body == body)
        #expect(got[0].MessageId == sent.MessageId)
        #expect(got[0].MD5OfBody == sent.MD5OfMessageBody)
        #expect(got[0].Attributes?["ApproximateReceiveCount"] == "1")
        #expect(got[0].Attributes?["SentTimestamp"] == "\(h.now - 1000)")
        #expect(got[0].Attributes?["ApproximateFirstReceiveTimestamp"] == "\(h.now)")
        #expect(got[0].Attributes?["SenderId"] == "tester")
    }

    /// The store writes a receive as an UPDATE of four columns, so the core must say which changes
    /// are receives: a dead-lettering receive moves the message instead (a delete and a put).
    @Test func aReceiveIsRecordedAsAReceiveAndADeadLetterAsAMove() throws {
        var h = BrokerHarness()
        let url = try h.create("q", ["VisibilityTimeout": "0"])
        _ = try h.create("dlq")
        _ = try h.send(url, "one")
        h.changes = []
        _ = try h.receive(url)
        guard h.changes.count == 1, case .receiveMessage(let m) = h.changes[0] else {
            Issue.record("a receive records the message's new state: \(h.changes)"); return
        }
        #expect(m.receiveCount == 1 && m.receipt != nil && m.firstReceiveTimestamp == h.now)
        let redrive = #"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"1"}"#
        try h.broker.setQueueAttributes(url, ["RedrivePolicy": redrive], now: h.now, changes: &h.changes)
        h.changes = []
        #expect(try h.receive(url).isEmpty)
        guard h.changes.count == 2, case .deleteMessage(m.seq) = h.changes[0], case .putMessage(let moved) = h.changes[1] else {
            Issue.record("dead-lettering deletes and puts: \(h.changes)"); return
        }
        #expect(moved.queue == "dlq" && moved.body == "one")
    }

    @Test func aReceivedMessageIsHiddenForTheVisibilityTimeoutThenReturnsWithANewHandle() throws {
        var h = BrokerHarness()
        let url = try h.create("q", ["VisibilityTimeout": "5"])
        _ = try h.send(url, "one")
        let first = try h.receive(url)
        #expect(try h.receive(url).isEmpty)
        h.advance(seconds: 4.9)
        #expect(try h.receive(url).isEmpty)
        h.advance(seconds: 0.2)
        let second = try h.receive(url)
        #expect(second.count == 1)
        #expect(second[0].ReceiptHandle != first[0].ReceiptHandle)
        #expect(second[0].Attributes?["ApproximateReceiveCount"] == "2")
        // The old handle deletes nothing (SQS: the call succeeds, the message stays).
        try h.broker.deleteMessage(url, receiptHandle: first[0].ReceiptHandle, changes: &h.changes)
        h.advance(seconds: 6)
        #expect(try h.receive(url).count == 1)
    }

    @Test func deleteWithTheCurrentHandleRemovesTheMessage() throws {
        var h = BrokerHarness()
        let url = try h.create("q", ["VisibilityTimeout": "1"])
        _ = try h.send(url, "one")
        let got = try h.receive(url)
        try h.broker.deleteMessage(url, receiptHandle: got[0].ReceiptHandle, changes: &h.changes)
        h.advance(seconds: 5)
        #expect(try h.receive(url).isEmpty)
        #expect(h.changes.last == .deleteMessage(1))
        #expect(throws: QueueError.self) { try h.broker.deleteMessage(url, receiptHandle: "garbage!", changes: &h.changes) }
    }

    @Test func changeMessageVisibilityCountsFromTheCall() throws {
        var h = BrokerHarness()
        let url = try h.create("q", ["VisibilityTimeout": "30"])
        _ = try h.send(url, "one")
        let got = try h.receive(url)
        h.advance(seconds: 10)
        try h.broker.changeMessageVisibility(url, receiptHandle: got[0].ReceiptHandle, timeout: 0, now: h.now, changes: &h.changes)
        #expect(try h.receive(url).count == 1)
        let again = try h.receive(url)
        #expect(again.isEmpty)
        do {
            try h.broker.changeMessageVisibility(url, receiptHandle: got[0].ReceiptHandle, timeout: 5, now: h.now, changes: &h.changes)
            Issue.record("a stale handle changed visibility")
        } catch {
            #expect(error.code == "AWS.SimpleQueueService.MessageNotInflight")
        }
    }

    @Test func delayedMessagesWaitAndAreCountedAsDelayed() throws {
        var h = BrokerHarness()
        let url = try h.create("q", ["DelaySeconds": "3"])
        _ = try h.send(url, "queue delay")
        _ = try h.send(url, "no delay", delay: 0)
        var attributes = try h.broker.getQueueAttributes(url, names: ["All"], now: h.now)
        #expect(attributes["ApproximateNumberOfMessagesDelayed"] == "1")
        #expect(attributes["ApproximateNumberOfMessages"] == "1")
        #expect(try h.receive(url).map(\.Body) == ["no delay"])
        attributes = try h.broker.getQueueAttributes(url, names: ["ApproximateNumberOfMessagesNotVisible"], now: h.now)
        #expect(attributes == ["ApproximateNumberOfMessagesNotVisible": "1"])
        h.advance(seconds: 3)
        #expect(try h.receive(url).map(\.Body) == ["queue delay"])
        #expect(h.broker.nextVisibleAt("q") != nil)
    }

    @Test func redriveMovesAMessageToTheDeadLetterQueueAfterMaxReceiveCount() throws {
        var h = BrokerHarness()
        let dlq = try h.create("dlq")
        let url = try h.create("q", ["VisibilityTimeout": "1", "RedrivePolicy": #"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"2"}"#])
        let sent = try h.send(url, "poison")
        for _ in 0..<2 {
            #expect(try h.receive(url).count == 1)
            h.advance(seconds: 1.5)
        }
        #expect(try h.receive(url).isEmpty, "the third receive moves it instead")
        let dead = try h.receive(dlq)
        #expect(dead.map(\.MessageId) == [sent.MessageId])
        #expect(dead[0].Body == "poison")
    }

    @Test func invalidInputIsRefusedWithSQSCodes() throws {
        var h = BrokerHarness()
        let url = try h.create("q", ["MaximumMessageSize": "1024"])
        func code(_ body: () throws -> Void) -> String? {
            do { try body(); return nil } catch let e as QueueError { return e.code } catch { return "?" }
        }
        #expect(code { _ = try h.send(url, "bad \u{0}") } == "InvalidMessageContents")
        #expect(code { _ = try h.send(url, "bad \u{FFFF}") } == "InvalidMessageContents")
        #expect(code { _ = try h.send(url, "") } == "MissingParameter")
        #expect(code { _ = try h.send(url, String(repeating: "x", count: 1025)) } == "InvalidParameterValue")
        #expect(code { _ = try h.send(url, "ok", delay: 901) } == "InvalidParameterValue")
        #expect(code { _ = try h.send("https://sqs.us-east-1.amazonaws.com/000000000000/missing", "x") } == "AWS.SimpleQueueService.NonExistentQueue")
        #expect(code { _ = try h.send("https://sqs.us-east-1.amazonaws.com/999999999999/q", "x") } == "AWS.SimpleQueueService.NonExistentQueue")
        #expect(code { _ = try h.create("bad name!") } == "InvalidParameterValue")
        #expect(code { _ = try h.create("q.fifo") } == "InvalidParameterValue")
        #expect(code { _ = try h.create("q2", ["VisibilityTimeout": "43201"]) } == "InvalidParameterValue")
        #expect(code { _ = try h.create("q2", ["Colour": "blue"]) } == "InvalidAttributeName")
        #expect(code { _ = try h.create("q", ["VisibilityTimeout": "99"]) } == "QueueAlreadyExists")
        #expect(try h.create("q", ["MaximumMessageSize": "1024"]) == url, "CreateQueue is idempotent")
        #expect(code { _ = try h.receive(url, max: 11) } == "InvalidParameterValue")
        #expect(code { _ = try h.broker.getQueueAttributes(url, names: ["Nope"], now: h.now) } == "InvalidAttributeName")
        #expect(code { try h.broker.setQueueAttributes(url, ["RedrivePolicy": "{}"], now: h.now, changes: &h.changes) } == "InvalidParameterValue")
    }

    @Test func batchesCheckTheirEntriesAndFailEntriesAlone() throws {
        var h = BrokerHarness()
        let url = try h.create("q")
        func entries(_ n: Int) -> [SendMessageBatchEntry] { (0..<n).map { SendMessageBatchEntry(Id: "e\($0)", MessageBody: "m\($0)") } }
        let ok = try h.broker.sendMessageBatch(url, entries(10), senderId: "t", now: h.now, changes: &h.changes)
        #expect(ok.Successful.count == 10 && ok.Failed.isEmpty)
        #expect(throws: QueueError(.tooManyEntriesInBatchRequest, "Maximum number of entries per request are 10. You have sent 11.")) {
            _ = try h.broker.sendMessageBatch(url, entries(11), senderId: "t", now: h.now, changes: &h.changes)
        }
        #expect(throws: QueueError.self) { _ = try h.broker.sendMessageBatch(url, [], senderId: "t", now: h.now, changes: &h.changes) }
        let dup = [SendMessageBatchEntry(Id: "a", MessageBody: "x"), SendMessageBatchEntry(Id: "a", MessageBody: "y")]
        #expect(throws: QueueError.self) { _ = try h.broker.sendMessageBatch(url, dup, senderId: "t", now: h.now, changes: &h.changes) }
        let mixed = [SendMessageBatchEntry(Id: "good", MessageBody: "x"), SendMessageBatchEntry(Id: "bad", MessageBody: "\u{1}")]
        let result = try h.broker.sendMessageBatch(url, mixed, senderId: "t", now: h.now, changes: &h.changes)
        #expect(result.Successful.map(\.Id) == ["good"])
        #expect(result.Failed.map(\.Code) == ["InvalidMessageContents"])
        let got = try h.receive(url)
        #expect(got.count == 10)
        let deleted = try h.broker.deleteMessageBatch(
            url, got.enumerated().map { BatchHandleEntry(Id: "d\($0.offset)", ReceiptHandle: $0.element.ReceiptHandle) }, changes: &h.changes)
        #expect(deleted.Successful.count == 10)
    }

    @Test func receiveHonoursMaxNumberAndDeliversInSendOrder() throws {
        var h = BrokerHarness()
        let url = try h.create("q")
        for i in 0..<25 { _ = try h.send(url, "m\(i)") }
        let first = try h.receive(url, max: 10)
        let second = try h.receive(url, max: 10)
        let third = try h.receive(url, max: 10)
        #expect((first + second + third).map(\.Body) == (0..<25).map { "m\($0)" })
        #expect(try h.receive(url).isEmpty)
    }

    @Test func aZeroVisibilityReceiveReturnsEachMessageOnce() throws {
        var h = BrokerHarness()
        let url = try h.create("q")
        _ = try h.send(url, "only")
        let got = try h.receive(url, max: 10, visibility: 0)
        #expect(got.map(\.Body) == ["only"])
        #expect(try h.receive(url, max: 10, visibility: 0).first?.Attributes?["ApproximateReceiveCount"] == "2")
    }

    @Test func aRedrivePolicyMustNameAnExistingQueue() throws {
        var h = BrokerHarness()
        let policy = #"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:missing","maxReceiveCount":3}"#
        #expect(throws: QueueError.self) { _ = try h.create("q", ["RedrivePolicy": policy]) }
        let url = try h.create("q")
        #expect(throws: QueueError.self) { try h.broker.setQueueAttributes(url, ["RedrivePolicy": policy], now: h.now, changes: &h.changes) }
    }

    @Test func purgeDeletesEverythingOncePerMinute() throws {
        var h = BrokerHarness()
        let url = try h.create("q")
        for i in 0..<5 { _ = try h.send(url, "m\(i)") }
        try h.broker.purgeQueue(url, now: h.now, changes: &h.changes)
        #expect(try h.receive(url).isEmpty)
        #expect(throws: QueueError.self) { try h.broker.purgeQueue(url, now: h.now + 1000, changes: &h.changes) }
        try h.broker.purgeQueue(url, now: h.now + 61_000, changes: &h.changes)
    }

    @Test func retentionDropsOldMessages() throws {
        var h = BrokerHarness()
        let url = try h.create("q", ["MessageRetentionPeriod": "60"])
        _ = try h.send(url, "old")
        h.advance(seconds: 61)
        h.broker.expire(now: h.now, changes: &h.changes)
        #expect(try h.receive(url).isEmpty)
        #expect(h.changes.last == .deleteMessage(1))
    }

    @Test func restoringFromTheStoredChangesGivesTheSameQueues() throws {
        var h = BrokerHarness()
        let url = try h.create("q", ["VisibilityTimeout": "10"])
        for i in 0..<3 { _ = try h.send(url, "m\(i)") }
        let inFlight = try h.receive(url, max: 1)
        // Replay the changes as the store would hold them.
        var queues: [String: StoredQueue] = [:]
        var messages: [Int64: StoredMessage] = [:]
        for change in h.changes {
            switch change {
            case .putQueue(let q): queues[q.name] = q
            case .deleteQueue(let n): queues[n] = nil
            case .putMessage(let m), .receiveMessage(let m): messages[m.seq] = m
            case .deleteMessage(let s): messages[s] = nil
            case .putIdempotentSend, .deleteIdempotentSend: break
            }
        }
        var restored = BrokerHarness()
        restored.now = h.now
        restored.broker.restore(queues: Array(queues.values), messages: Array(messages.values), now: h.now)
        #expect(try restored.receive(url).map(\.Body) == ["m1", "m2"], "the in-flight message stays hidden")
        restored.advance(seconds: 10)
        let back = try restored.receive(url)
        #expect(back.count == 3)
        #expect(back.first?.MessageId == inFlight.first?.MessageId)
        #expect(back[0].Attributes?["ApproximateReceiveCount"] == "2")
        let fresh = try restored.send(url, "new")
        #expect(!h.changes.contains { if case .putMessage(let m) = $0 { return m.messageId == fresh.MessageId } else { return false } })
        #expect(restored.changes.contains { if case .putMessage(let m) = $0 { return m.seq == 4 } else { return false } }, "sequence numbers continue")
    }

    @Test func messageAttributesRoundTripWithSQSsDigest() throws {
        var h = BrokerHarness()
        let url = try h.create("q")
        let attributes = ["b": MessageAttributeValue(DataType: "Number", StringValue: "42"),
                          "a": MessageAttributeValue(DataType: "String", StringValue: "x")]
        let sent = try h.broker.sendMessage(url, .init(body: "m", attributes: attributes), senderId: "t", now: h.now, changes: &h.changes)
        #expect(sent.MD5OfMessageAttributes == Digests.md5OfAttributes(attributes))
        var options = QueueBroker.ReceiveOptions()
        options.messageAttributeNames = ["All"]
        let got = h.broker.receive("q", options, now: h.now, nonce: { 7 }, changes: &h.changes)
        #expect(got[0].MessageAttributes == attributes)
        #expect(got[0].MD5OfMessageAttributes == sent.MD5OfMessageAttributes)
        #expect(throws: QueueError.self) {
            _ = try h.broker.sendMessage(url, .init(body: "m", attributes: ["n": .init(DataType: "Number", StringValue: "abc")]),
                                         senderId: "t", now: h.now, changes: &h.changes)
        }
    }

    @Test func listQueuesFiltersByPrefixAndPages() throws {
        var h = BrokerHarness()
        for name in ["a1", "a2", "a3", "b1"] { _ = try h.create(name) }
        #expect(try h.broker.listQueues(prefix: "a", maxResults: nil, nextToken: nil).QueueUrls.count == 3)
        let page = try h.broker.listQueues(prefix: nil, maxResults: 2, nextToken: nil)
        #expect(page.QueueUrls.count == 2)
        let next = try h.broker.listQueues(prefix: nil, maxResults: 2, nextToken: page.NextToken)
        #expect(next.QueueUrls.count == 2)
        #expect(next.NextToken == nil)
    }
}

@Suite struct BodyAndURLTests {
    /// The byte scan must refuse exactly what a scalar-by-scalar check refuses.
    @Test(arguments: ["ok", "tab\there\nline\r", "\u{FFFD} \u{E000} \u{D7FF} \u{10FFFF} ✓ 🚀", "\u{FFFC}\u{EFBF}"])
    func validBodiesPass(body: String) throws {
        try QueueBroker.validateBody(body)
    }

    @Test(arguments: ["\u{0}", "a\u{1}b", "\u{1F}", "x\u{FFFE}", "\u{FFFF}y", "\u{7}"])
    func invalidCharactersAreRefused(body: String) {
        #expect(throws: QueueError.self) { try QueueBroker.validateBody(body) }
    }

    @Test func queueURLsNameTheirQueueAfterTheAccount() throws {
        var h = BrokerHarness()
        _ = try h.create("orders-q")
        for url in ["https://sqs.us-east-1.amazonaws.com/000000000000/orders-q", "http://127.0.0.1:7102/000000000000/orders-q/",
                    "000000000000/orders-q", "/000000000000//orders-q"] {
            #expect(try h.broker.name(fromURL: url) == "orders-q")
        }
        for url in ["https://sqs.us-east-1.amazonaws.com/111111111111/orders-q", "orders-q", "", "/", "https://x/000000000000/nope",
                    "https://x/0000000000001/orders-q"] {
            #expect(throws: QueueError.self) { try h.broker.name(fromURL: url) }
        }
    }
}

@Suite struct DigestTests {
    @Test func md5HexMatchesKnownDigests() {
        #expect(Digests.md5Hex(Data()) == "d41d8cd98f00b204e9800998ecf8427e")
        #expect(Digests.md5Hex(Data("The quick brown fox jumps over the lazy dog".utf8)) == "9e107d9d372bb6826bd81d3542a419d6")
    }

    @Test func md5OfTextHashesItsUTF8() {
        for text in ["", "x", #"{"item": "latex gloves & more + 100% ✓ 🚀"}"#] {
            #expect(Digests.md5Hex(of: text) == Digests.md5Hex(Data(text.utf8)))
        }
    }

    @Test func messageIDsAreVersion4UUIDsAndDistinct() {
        let ids = (0..<1000).map { _ in Digests.messageID() }
        #expect(Set(ids).count == 1000)
        for id in ids.prefix(50) {
            let parsed = UUID(uuidString: id)
            #expect(parsed != nil)
            #expect(id == id.lowercased())
            #expect(Array(id)[14] == "4")
            #expect("89ab".contains(Array(id)[19]))
        }
    }
}

@Suite struct SQSFastJSONTests {
    @Test func theHandWrittenShapesReadBackAsJSONDecoderSeesThem() throws {
        let bodies = [#"{"item": "latex gloves", "customerID": "12345"}"#, "a&b+c%d", "ünïcødé ✓ 🚀 \u{1}\t\n\"\\"]
        let request = SendMessageBatchRequest(QueueUrl: "https://sqs.us-east-1.amazonaws.com/000000000000/POC-Queue",
                                              Entries: bodies.enumerated().map { SendMessageBatchEntry(Id: "m\($0.offset)", MessageBody: $0.element) })
        let decoded = try JSONDecoder().decode(SendMessageBatchRequest.self, from: try #require(SQSFastJSON.encode(request)))
        #expect(decoded.QueueUrl == request.QueueUrl)
        #expect(decoded.Entries.map(\.MessageBody) == bodies)
        #expect(decoded.Entries.map(\.Id) == ["m0", "m1", "m2"])
        let withAttributes = SendMessageBatchRequest(QueueUrl: "q", Entries: [.init(Id: "a", MessageBody: "b", MessageAttributes: ["k": .init(DataType: "String", StringValue: "v")])])
        #expect(SQSFastJSON.encode(withAttributes) == nil)

        let one = SendMessageResponse(MessageId: "id", MD5OfMessageBody: "md5", MD5OfMessageAttributes: nil)
        #expect(try JSONDecoder().decode(SendMessageResponse.self, from: SQSFastJSON.encode(one)) == one)
        let batch = SendMessageBatchResponse(Successful: [.init(Id: "m0", MessageId: "x", MD5OfMessageBody: "y", MD5OfMessageAttributes: "z"),
                                                          .init(Id: "m1", MessageId: "x1", MD5OfMessageBody: "y1", MD5OfMessageAttributes: nil)], Failed: [])
        let encoded = try #require(SQSFastJSON.encode(batch))
        let back = try JSONDecoder().decode(SendMessageBatchResponse.self, from: encoded)
        #expect(back.Successful == batch.Successful)
        #expect(back.Failed.isEmpty)
        // ... and the hand-written reader gives the same; an answer with failures is JSONDecoder's.
        #expect(SQSFastJSON.decodeSendMessageBatchResponse(encoded)?.Successful == batch.Successful)
        let failed = Data(#"{"Successful":[],"Failed":[{"Id":"m0","SenderFault":true,"Code":"InvalidParameterValue","Message":"no"}]}"#.utf8)
        #expect(SQSFastJSON.decodeSendMessageBatchResponse(failed) == nil)
    }
}

@Suite struct SQSFastDecodeTests {
    @Test func sendShapesReadLikeJSONDecoder() throws {
        let single = Data(#"{"QueueUrl":"https:\/\/sqs.us-east-1.amazonaws.com\/000000000000\/POC-Queue","MessageBody":"{\"item\": \"latex gloves\"}"}"#.utf8)
        let fast = try #require(SQSFastJSON.decodeSendMessage(single))
        let slow = try JSONDecoder().decode(SendMessageRequest.self, from: single)
        #expect(fast.QueueUrl == slow.QueueUrl)
        #expect(fast.MessageBody == slow.MessageBody)

        let batch = Data(#"{"QueueUrl":"q","Entries":[{"Id":"a","MessageBody":"x"},{"MessageBody":"y","Id":"b"}]}"#.utf8)
        let fastBatch = try #require(SQSFastJSON.decodeSendMessageBatch(batch))
        #expect(fastBatch.Entries.map(\.Id) == ["a", "b"])
        #expect(fastBatch.Entries.map(\.MessageBody) == ["x", "y"])
    }

    @Test(arguments: [
        #"{"QueueUrl":"q","MessageBody":"x","DelaySeconds":5}"#,   // a number: JSONDecoder's
        #"{"QueueUrl":"q"}"#,                                       // missing body: JSONDecoder's error
        #"{"QueueUrl":"q","MessageBody":"x","Extra":"y"}"#,         // unknown member
        #"{"QueueUrl":"q","MessageBody":["x"]}"#,                   // wrong type
    ])
    func anythingElseFallsBack(text: String) {
        #expect(SQSFastJSON.decodeSendMessage(Data(text.utf8)) == nil)
    }

    @Test func batchEntriesWithMoreThanIdAndBodyFallBack() {
        #expect(SQSFastJSON.decodeSendMessageBatch(Data(#"{"QueueUrl":"q","Entries":[{"Id":"a","MessageBody":"x","DelaySeconds":1}]}"#.utf8)) == nil)
        #expect(SQSFastJSON.decodeSendMessageBatch(Data(#"{"QueueUrl":"q","Entries":"x"}"#.utf8)) == nil)
    }
}

@Suite struct SQSFastReceivePathTests {
    @Test func aReceiveAnswerReadsBackAsJSONDecoderSeesIt() throws {
        let messages = [
            ReceivedMessage(MessageId: "m1", ReceiptHandle: "r1", MD5OfBody: "x", Body: "{\"item\": \"latex gloves\"} ünï 🚀\n",
                            Attributes: ["SentTimestamp": "1", "ApproximateReceiveCount": "2"], MD5OfMessageAttributes: nil, MessageAttributes: nil),
            ReceivedMessage(MessageId: "m2", ReceiptHandle: "r2", MD5OfBody: "y", Body: "", Attributes: nil, MD5OfMessageAttributes: "z",
                            MessageAttributes: nil),
        ]
        let data = try #require(SQSFastJSON.encode(ReceiveMessageResponse(Messages: messages)))
        #expect(try JSONDecoder().decode(ReceiveMessageResponse.self, from: data).Messages == messages)
        // The poller's side reads it back the same way without JSONDecoder.
        #expect(SQSFastJSON.decodeReceiveMessageResponse(data)?.Messages == messages)
        #expect(SQSFastJSON.decodeReceiveMessageResponse(Data(#"{"Messages":[]}"#.utf8))?.Messages == [])
        // Outside the strict reader's subset: JSONDecoder's turn.
        for other in [#"{"Messages":[{"MessageId":"m","ReceiptHandle":"r","MD5OfBody":"x","Body":"b","MessageAttributes":{}}]}"#,
                      #"{"Messages":[{"MessageId":"m","ReceiptHandle":"r","MD5OfBody":"x"}]}"#, #"{"Messages":[{"MessageId":1}]}"#, "{}"] {
            #expect(SQSFastJSON.decodeReceiveMessageResponse(Data(other.utf8)) == nil)
        }
        var withAttributes = messages[0]
        withAttributes.MessageAttributes = ["k": .init(DataType: "String", StringValue: "v")]
        #expect(SQSFastJSON.encode(ReceiveMessageResponse(Messages: [withAttributes])) == nil)
    }

    @Test func deleteBatchesReadLikeJSONDecoder() throws {
        let body = Data(#"{"QueueUrl":"q","Entries":[{"Id":"0","ReceiptHandle":"abc"},{"ReceiptHandle":"def","Id":"1"}]}"#.utf8)
        let fast = try #require(SQSFastJSON.decodeDeleteMessageBatch(body))
        #expect(fast.QueueUrl == "q" && fast.Entries.map(\.Id) == ["0", "1"] && fast.Entries.map(\.ReceiptHandle) == ["abc", "def"])
        #expect(SQSFastJSON.decodeDeleteMessageBatch(Data(#"{"QueueUrl":"q","Entries":[{"Id":"0","ReceiptHandle":"a","VisibilityTimeout":5}]}"#.utf8)) == nil)
        // What a poller writes is what the broker reads.
        let request = HandleBatchRequest(QueueUrl: "https://x/000000000000/q", Entries: [.init(Id: "m0", ReceiptHandle: "r \"0\""), .init(Id: "m1", ReceiptHandle: "r1")])
        let written = try #require(SQSFastJSON.encode(request))
        #expect(try JSONDecoder().decode(HandleBatchRequest.self, from: written) == request)
        #expect(SQSFastJSON.decodeDeleteMessageBatch(written).map { $0.Entries.map(\.ReceiptHandle) } == ["r \"0\"", "r1"])
        #expect(SQSFastJSON.encode(HandleBatchRequest(QueueUrl: "q", Entries: [.init(Id: "0", ReceiptHandle: "r", VisibilityTimeout: 3)])) == nil)
    }

    @Test func aBatchAnswerWithoutFailuresIsWrittenByHand() throws {
        let ok = HandleBatchResponse(Successful: [IdOnly(Id: "m0"), IdOnly(Id: "m \"1\"")], Failed: [])
        let written = try #require(SQSFastJSON.encode(ok))
        let read = try JSONDecoder().decode(HandleBatchResponse.self, from: written)
        #expect(read.Successful == ok.Successful && read.Failed.isEmpty)
        #expect(SQSFastJSON.encode(HandleBatchResponse(Successful: [], Failed: [])).map { String(decoding: $0, as: UTF8.self) }
            == #"{"Successful":[],"Failed":[]}"#)
        let failed = HandleBatchResponse(Successful: [], Failed: [BatchResultErrorEntry(Id: "m0", SenderFault: true, Code: "ReceiptHandleIsInvalid", Message: "x")])
        #expect(SQSFastJSON.encode(failed) == nil)
    }
}

/// The `NimbusIdempotencyKey` extension (the gateway's Idempotency-Key): a key sent again on the same
/// queue within 5 minutes enqueues nothing and answers the first send's answer.
@Suite struct IdempotencyKeyTests {
    /// The messages and keys the store would hold after `changes`.
    static func replay(_ changes: [StoreChange]) -> (queues: [StoredQueue], messages: [StoredMessage], sends: [IdempotentSend]) {
        var queues: [String: StoredQueue] = [:]
        var messages: [Int64: StoredMessage] = [:]
        var sends: [String: IdempotentSend] = [:]
        for change in changes {
            switch change {
            case .putQueue(let q): queues[q.name] = q
            case .deleteQueue(let n):
                queues[n] = nil
                messages = messages.filter { $0.value.queue != n }
                sends = sends.filter { $0.value.queue != n }
            case .putMessage(let m), .receiveMessage(let m): messages[m.seq] = m
            case .deleteMessage(let s): messages[s] = nil
            case .putIdempotentSend(let k): sends[k.queue + "\u{0}" + k.key] = k
            case .deleteIdempotentSend(let queue, let key): sends[queue + "\u{0}" + key] = nil
            }
        }
        return (Array(queues.values), Array(messages.values), Array(sends.values))
    }

    @Test func theSameKeyTwiceEnqueuesOnceAndAnswersTheFirstAnswer() throws {
        var h = BrokerHarness()
        let url = try h.create("q")
        let first = try h.send(url, "order", key: "key-1")
        guard h.changes.count == 3, case .putMessage(let m) = h.changes[1], case .putIdempotentSend(let k) = h.changes[2] else {
            Issue.record("the key is written with its message: \(h.changes)"); return
        }
        #expect(m.messageId == first.MessageId && k.messageId == first.MessageId && k.queue == "q" && k.key == "key-1")
        #expect(k.md5OfBody == first.MD5OfMessageBody && k.sentTimestamp == h.now)
        h.changes = []
        h.advance(seconds: 299.999)
        let again = try h.send(url, "order", key: "key-1")
        #expect(again == first)
        #expect(h.changes.isEmpty, "a repeat writes nothing")
        // Even with another body: the key decides (as SQS FIFO's deduplication id does).
        #expect(try h.send(url, "other", key: "key-1") == first)
        #expect(try h.receive(url).map(\.MessageId) == [first.MessageId])
    }

    @Test func afterFiveMinutesTheKeyEnqueuesAgain() throws {
        var h = BrokerHarness()
        let url = try h.create("q")
        let first = try h.send(url, "order", key: "k")
        h.advance(seconds: 300)
        h.changes = []
        let second = try h.send(url, "order", key: "k")
        #expect(second.MessageId != first.MessageId)
        #expect(second.MD5OfMessageBody == first.MD5OfMessageBody)
        guard h.changes.count == 3, case .deleteIdempotentSend("q", "k") = h.changes[0], case .putMessage = h.changes[1],
              case .putIdempotentSend(let k) = h.changes[2] else {
            Issue.record("the expired key is forgotten, the new send remembered: \(h.changes)"); return
        }
        #expect(k.messageId == second.MessageId)
        // ... and the new send holds the key for its own five minutes.
        h.advance(seconds: 200)
        #expect(try h.send(url, "order", key: "k") == second)
        #expect(try h.receive(url).count == 2)
    }

    @Test func keysArePerQueue() throws {
        var h = BrokerHarness()
        let a = try h.create("a")
        let b = try h.create("b")
        let inA = try h.send(a, "x", key: "same")
        let inB = try h.send(b, "x", key: "same")
        #expect(inA.MessageId != inB.MessageId)
        #expect(try h.send(a, "x", key: "same") == inA)
        #expect(try h.send(b, "x", key: "same") == inB)
        #expect(try h.receive(a).count == 1)
        #expect(try h.receive(b).count == 1)
    }

    @Test func twoEntriesOfABatchWithTheSameKeyEnqueueOnce() throws {
        var h = BrokerHarness()
        let url = try h.create("q")
        let before = try h.send(url, "earlier", key: "old")
        let entries = [SendMessageBatchEntry(Id: "a", MessageBody: "x", NimbusIdempotencyKey: "k"),
                       SendMessageBatchEntry(Id: "b", MessageBody: "x", NimbusIdempotencyKey: "k"),
                       SendMessageBatchEntry(Id: "c", MessageBody: "y"),
                       SendMessageBatchEntry(Id: "d", MessageBody: "z", NimbusIdempotencyKey: "old")]
        let result = try h.broker.sendMessageBatch(url, entries, senderId: "t", now: h.now, changes: &h.changes)
        #expect(result.Failed.isEmpty)
        let ids = Dictionary(uniqueKeysWithValues: result.Successful.map { ($0.Id, $0.MessageId) })
        #expect(ids["a"] == ids["b"])
        #expect(ids["c"] != ids["a"])
        #expect(ids["d"] == before.MessageId)
        #expect(Set(try h.receive(url).map(\.MessageId)) == [before.MessageId, ids["a"]!, ids["c"]!])
    }

    @Test func invalidKeysAndDeduplicationIdsAreRefused() throws {
        var h = BrokerHarness()
        let url = try h.create("q")
        for key in ["", String(repeating: "k", count: 129), "with space", "tab\t", "ünï", "\u{7F}"] {
            #expect(throws: QueueError.self, "\(key.debugDescription)") { _ = try h.send(url, "m", key: key) }
        }
        _ = try h.send(url, "m", key: String(repeating: "k", count: 128))
        _ = try h.send(url, "m", key: ##"!"#$%&'()*+,-./0-9:;<=>?@A-Z[\]^_`a-z{|}~"##)
        do {
            _ = try h.broker.sendMessage(url, .init(body: "m", deduplicationId: "d"), senderId: "t", now: h.now, changes: &h.changes)
            Issue.record("a standard queue takes no MessageDeduplicationId")
        } catch {
            #expect(error.code == "InvalidParameterValue" && error.message.contains("MessageDeduplicationId"))
        }
        // In a batch, the entry fails alone.
        var dedupe = SendMessageBatchEntry(Id: "b", MessageBody: "m")
        dedupe.MessageDeduplicationId = "d"
        let result = try h.broker.sendMessageBatch(url, [.init(Id: "a", MessageBody: "m", NimbusIdempotencyKey: " "), dedupe,
                                                          .init(Id: "c", MessageBody: "m")], senderId: "t", now: h.now, changes: &h.changes)
        #expect(result.Failed.map(\.Id) == ["a", "b"] && result.Failed.allSatisfy { $0.Code == "InvalidParameterValue" })
        #expect(result.Successful.map(\.Id) == ["c"])
        // A refused send remembers nothing: the key is free for a valid one.
        #expect(throws: QueueError.self) { _ = try h.send(url, "bad \u{0}", key: "free") }
        let good = try h.send(url, "good", key: "free")
        #expect(try h.send(url, "good", key: "free") == good)
    }

    @Test func beyondTheLimitTheOldestKeysAreForgotten() throws {
        var h = BrokerHarness()
        h.broker = QueueBroker(region: "us-east-1", account: "000000000000", idempotencyKeyLimit: 3)
        let url = try h.create("q")
        var sent: [SendMessageResponse] = []
        for i in 0..<3 {
            sent.append(try h.send(url, "m\(i)", key: "k\(i)"))
            h.advance(seconds: 1)
        }
        h.changes = []
        _ = try h.send(url, "m3", key: "k3")
        #expect(h.broker.idempotentSends.count == 3)
        #expect(h.changes.contains(.deleteIdempotentSend(queue: "q", key: "k0")))
        #expect(try h.send(url, "m1", key: "k1") == sent[1], "the newer keys stay")
        #expect(try h.send(url, "m0", key: "k0").MessageId != sent[0].MessageId, "the oldest was forgotten")
    }

    @Test func keysSurviveARestartWithinTheirWindow() throws {
        var h = BrokerHarness()
        let url = try h.create("q")
        let old = try h.send(url, "old", key: "old")
        h.advance(seconds: 200)
        let recent = try h.send(url, "recent", key: "recent")
        // A deleted queue's keys go with it.
        let other = try h.create("other")
        let gone = try h.send(other, "gone", key: "gone")
        try h.broker.deleteQueue(other, changes: &h.changes)
        _ = try h.create("other")
        #expect(try h.send(other, "gone", key: "gone").MessageId != gone.MessageId)
        try h.broker.deleteQueue(other, changes: &h.changes)
        let stored = Self.replay(h.changes)
        #expect(stored.sends.count == 2)

        var restored = BrokerHarness()
        restored.now = h.now + 150_000  // "old" is 350 s old: past its window
        restored.broker.restore(queues: stored.queues, messages: stored.messages, idempotentSends: stored.sends, now: restored.now)
        #expect(restored.broker.idempotentSends.count == 1)
        #expect(try restored.send(url, "recent", key: "recent") == recent)
        #expect(try restored.send(url, "old", key: "old").MessageId != old.MessageId)
        _ = try restored.create("other")
        _ = try restored.send(other, "gone", key: "gone")
        #expect(restored.broker.idempotentSends.count == 3)

        // The minutely retention pass forgets what has expired even without sends.
        restored.changes = []
        restored.advance(seconds: 300)
        restored.broker.expire(now: restored.now, changes: &restored.changes)
        #expect(restored.broker.idempotentSends.isEmpty)
        #expect(restored.changes.filter { if case .deleteIdempotentSend = $0 { true } else { false } }.count == 3)
    }

    @Test func theKeyTravelsInTheHandWrittenShapes() throws {
        let request = SendMessageBatchRequest(QueueUrl: "https://sqs.us-east-1.amazonaws.com/000000000000/POC-Queue", Entries: [
            .init(Id: "m0", MessageBody: "a"), .init(Id: "m1", MessageBody: "b", NimbusIdempotencyKey: #"k"\1"#)])
        let written = try #require(SQSFastJSON.encode(request))
        #expect(String(decoding: written, as: UTF8.self).contains(#"{"Id":"m0","MessageBody":"a"}"#), "no key, no member")
        let slow = try JSONDecoder().decode(SendMessageBatchRequest.self, from: written)
        #expect(slow.Entries.map(\.NimbusIdempotencyKey) == [nil, #"k"\1"#])
        let fast = try #require(SQSFastJSON.decodeSendMessageBatch(written))
        #expect(fast.Entries.map(\.NimbusIdempotencyKey) == [nil, #"k"\1"#])
        #expect(fast.Entries.map(\.MessageBody) == ["a", "b"])

        let single = Data(#"{"QueueUrl":"q","MessageBody":"x","NimbusIdempotencyKey":"k-1"}"#.utf8)
        #expect(SQSFastJSON.decodeSendMessage(single)?.NimbusIdempotencyKey == "k-1")
        #expect(try JSONDecoder().decode(SendMessageRequest.self, from: single).NimbusIdempotencyKey == "k-1")
        // Not a string, or a MessageDeduplicationId: JSONDecoder's turn (its error, or the broker's refusal).
        #expect(SQSFastJSON.decodeSendMessage(Data(#"{"QueueUrl":"q","MessageBody":"x","NimbusIdempotencyKey":1}"#.utf8)) == nil)
        #expect(SQSFastJSON.decodeSendMessageBatch(Data(#"{"QueueUrl":"q","Entries":[{"Id":"a","MessageBody":"x","NimbusIdempotencyKey":["k"]}]}"#.utf8)) == nil)
        #expect(SQSFastJSON.decodeSendMessage(Data(#"{"QueueUrl":"q","MessageBody":"x","MessageDeduplicationId":"d"}"#.utf8)) == nil)
        var dedupe = SendMessageBatchEntry(Id: "a", MessageBody: "x")
        dedupe.MessageDeduplicationId = "d"
        #expect(SQSFastJSON.encode(SendMessageBatchRequest(QueueUrl: "q", Entries: [dedupe])) == nil)
    }
}
