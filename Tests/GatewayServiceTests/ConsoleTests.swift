import Foundation
import Testing
@testable import GatewayService
import NimbusRuntime

@Suite struct ConsoleTokenTests {
    @Test func tokensAre64HexDigitsAndDiffer() {
        let a = ConsoleToken.generate(), b = ConsoleToken.generate()
        #expect(a.count == 64)
        #expect(a.allSatisfy { "0123456789abcdef".contains($0) })
        #expect(a != b)
    }

    @Test func comparisonNeedsTheWholeToken() {
        let token = ConsoleToken.generate()
        #expect(ConsoleToken.matches(token, token))
        #expect(!ConsoleToken.matches(String(token.dropLast()), token))
        #expect(!ConsoleToken.matches(token + "0", token))
        #expect(!ConsoleToken.matches("", token))
        #expect(!ConsoleToken.matches("", ""))
        var other = Array(token)
        other[10] = other[10] == "a" ? "b" : "a"
        #expect(!ConsoleToken.matches(String(other), token))
    }

    @Test func ensureMakesTheFileOnceWith0600() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("console-token-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = ConsoleToken.file(dataDirectory: folder)
        let made = try ConsoleToken.ensure(file)
        #expect(try ConsoleToken.ensure(file) == made)
        #expect(ConsoleToken.read(file) == made)
        let mode = try FileManager.default.attributesOfItem(atPath: file.path)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
    }
}

@Suite struct ProcessStatsTests {
    @Test func readsUserAndSystemTicksAfterTheCommandName() {
        // A command name with spaces and parentheses: the fields count from the last ")".
        let line = "4711 (nimbus (x) y) S 1 4711 4711 0 -1 4194560 100 0 0 0 250 125 0 0 20 0 5 0 1234 0 0"
        #expect(ProcessStats.cpuTicks(statLine: line) == 375)
        #expect(ProcessStats.cpuTicks(statLine: "garbage") == nil)
    }

    @Test func residentMemoryIsTheSecondStatmField() {
        let page = sysconf(Int32(_SC_PAGESIZE))
        #expect(ProcessStats.residentBytes(statm: "5000 1200 300 10 0 900 0\n") == 1200 * page)
        #expect(ProcessStats.residentBytes(statm: "") == nil)
    }

    @Test func ownProcessHasCPUFromItsSecondSample() {
        var stats = ProcessStats()
        let me = getpid()
        let first = stats.sample([me])
        #expect(first[me]?.cpuPercent == nil)
        #expect((first[me]?.rssBytes ?? 0) > 0)
        var x = 0.0
        let start = ContinuousClock.now
        while ContinuousClock.now - start < .milliseconds(120) { x += 1 }
        let second = stats.sample([me])
        #expect(x > 0)
        #expect((second[me]?.cpuPercent ?? -1) >= 0)
    }
}

@Suite struct PostMeterTests {
    @Test func bucketsAreContinuousAndNarrow() {
        var last = -1
        for micros in [0, 1, 3, 4, 5, 7, 8, 15, 16, 100, 1_000, 1_000_000] {
            let bucket = PostMeter.bucket(micros)
            #expect(bucket >= last)
            last = bucket
            if micros >= 4 {
                let middle = PostMeter.middle(ofBucket: bucket)
                #expect(abs(middle - Double(micros)) / Double(micros) < 0.25, "\(micros) -> \(middle)")
            }
        }
    }

    @Test func medianOfTheRecordsBetweenTwoSnapshots() {
        var before = PostMeter.Counts()
        var after = before
        for micros in [500, 600, 700, 800, 90_000] { after.buckets[PostMeter.bucket(micros)] += 1 }
        let median = PostMeter.median(from: before, to: after)!
        #expect(abs(median - 700) / 700 < 0.15)
        before = after
        #expect(PostMeter.median(from: before, to: after) == nil)
    }
}

@Suite struct MailboxTests {
    static let mbox = """
        From no-reply@nimbus.local Tue Jul  1 12:00:00 2026
        X-Nimbus-Rcpt: you@example.com
        X-Nimbus-Mail-From: no-reply@nimbus.local
        Message-ID: <1@nimbus.local>
        Date: Tue, 01 Jul 2026 12:00:00 +0000
        From: <no-reply@nimbus.local>
        To: <you@example.com>
        Subject: AWS Notification - Subscription Confirmation
        MIME-Version: 1.0

        You have chosen to subscribe to the topic:
        arn:aws:sns:us-east-1:000000000000:POC-Topic
        To confirm the subscription, visit the SubscribeURL included in this email:
        http://127.0.0.1:8080/sns/confirm?TopicArn=arn:aws:sns:us-east-1:000000000000:POC-Topic&Token=abc.
        >From here on, nothing.

        From no-reply@nimbus.local Tue Jul  1 12:00:05 2026
        X-Nimbus-Rcpt: you@example.com
        Date: Tue, 01 Jul 2026 14:00:05 +0200
        Subject: =?UTF-8?B?w6lsw6h2ZQ==?=

        {"orderID":{"S":"abc"}} see <https://example.com/x>

        """

    @Test func readsMailsWithTheirLinks() {
        let mails = Mailboxes.parse(Array(Self.mbox.utf8), fromStart: true)
        #expect(mails.count == 2)
        #expect(mails[0].to == "you@example.com")
        #expect(mails[0].subject == "AWS Notification - Subscription Confirmation")
        #expect(mails[0].date == 1_782_907_200_000)
        #expect(mails[0].links == ["http://127.0.0.1:8080/sns/confirm?TopicArn=arn:aws:sns:us-east-1:000000000000:POC-Topic&Token=abc"])
        #expect(mails[0].body.hasSuffix("From here on, nothing."))
        #expect(mails[1].subject == "élève")
        #expect(mails[1].date == 1_782_907_205_000)
        #expect(mails[1].links == ["https://example.com/x"])
    }

    @Test func aTailStartsAtTheNextMail() {
        let bytes = Array(Self.mbox.utf8)
        let cut = Array(bytes[40...])
        let mails = Mailboxes.parse(cut, fromStart: false)
        #expect(mails.count == 1)
        #expect(mails.first?.subject == "élève")
    }

    @Test func recentReadsNewestFirst() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("mail-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Self.mbox.write(to: folder.appendingPathComponent("you@example.com.mbox"), atomically: true, encoding: .utf8)
        let mails = Mailboxes.recent(in: folder, limit: 1)
        #expect(mails.map(\.subject) == ["élève"])
    }
}

@Suite struct ConsolePiecesTests {
    @Test func itemKeysRoundTripAsBase64URL() {
        let key: [String: Any] = ["orderID": ["S": "a+b/c?"]]
        let token = Console.encodeKey(key)
        #expect(!token.contains("+") && !token.contains("/") && !token.contains("="))
        let back = Console.decodeKey(token)
        #expect((back?["orderID"] as? [String: Any])?["S"] as? String == "a+b/c?")
        #expect(Console.decodeKey("not base64!") == nil)
        #expect(Console.decodeKey(Data("[1]".utf8).base64EncodedString()) == nil)
    }

    @Test func leasesCountTheRecordsProcessedPerShard() {
        let arn = "arn:aws:dynamodb:us-east-1:000000000000:table/orders/stream/2026"
        func lease(_ key: String, _ checkpoint: String?) -> [String: Any] {
            var item: [String: Any] = ["leaseKey": ["S": key]]
            if let checkpoint { item["checkpoint"] = ["S": checkpoint] }
            return item
        }
        let leases = [
            lease("POC-Lambda-2|\(arn)|shardId-00000000000000000000", "000000000000000000012"),
            lease("POC-Lambda-2|\(arn)|shardId-00000000000000000001", "100000000000000000007"),
            lease("POC-Lambda-2|\(arn)|shardId-00000000000000000002", nil),
            lease("POC-Lambda-2|other-stream|shardId-00000000000000000000", "000000000000000000999"),
        ]
        #expect(FlowSampler.consumed(leases: leases, streamARN: arn) == 19)
    }

    @Test func deadLetterQueueFromTheRedrivePolicy() {
        let policy = #"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:POC-Queue-DLQ","maxReceiveCount":5}"#
        #expect(ConsoleQueues.deadLetterURL(redrivePolicy: policy, cluster: ClusterConfig())
            == "https://sqs.us-east-1.amazonaws.com/000000000000/POC-Queue-DLQ")
        #expect(ConsoleQueues.deadLetterURL(redrivePolicy: nil, cluster: ClusterConfig()) == nil)
    }

    @Test func errorsKeepTheServicesCodes() {
        let timeout = ConsoleError.from(WireError(.requestTimeout, "no answer"), node: "queue", endpoint: "tcp://127.0.0.1:7102")
        #expect(timeout.status == .serviceUnavailable && timeout.code == "ServiceUnavailable" && timeout.message.contains("queue"))
        let missing = ConsoleError.from(WireError(code: "AWS.SimpleQueueService.NonExistentQueue", message: "x"), node: "queue", endpoint: "")
        #expect(missing.status == .notFound && missing.code == "AWS.SimpleQueueService.NonExistentQueue")
        let denied = ConsoleError.from(WireError(.accessDenied, "no"), node: "table", endpoint: "")
        #expect(denied.status == .forbidden)
        let bad = ConsoleError.from(WireError(.validationException, "bad"), node: "table", endpoint: "")
        #expect(bad.status == .badRequest && bad.code == "ValidationException")
    }

    @Test func theLabOrderCarriesItsMarker() throws {
        let text = try LabTraces.orderBody(nil, traceID: "t-1")
        let object = try #require(ConsoleJSON.object(Data(text.utf8)))
        #expect(object["item"] as? String == "latex gloves")
        #expect(object["customerID"] as? String == "12345")
        #expect(object["consoleTraceId"] as? String == "t-1")
        #expect(throws: ConsoleError.self) { try LabTraces.orderBody("not json", traceID: "t") }
        let custom = try LabTraces.orderBody(#"{"item": "masks"}"#, traceID: "t-2")
        #expect(ConsoleJSON.object(Data(custom.utf8))?["item"] as? String == "masks")
    }
}
