import Synchronization
import Foundation
import Logging
import Testing
import NimbusTestSupport
import NotifierCore
@testable import NotifierService

@Suite struct NotifierEngineTests {
    @Test func aDeliveryIsHandedOutOnlyOnceItsOutboxRowIsDurable() async throws {
        var sns = SNSTopics(region: "us-east-1", account: "000000000000", publicBaseURL: "http://127.0.0.1:8080/")
        var changes: [NotifierChange] = []
        let topicArn = try sns.createTopic(name: "T", now: NotifierEngine.now(), changes: &changes)
        _ = try sns.subscribe(topicArn: topicArn, protocol: "sqs", endpoint: "arn:aws:sqs:us-east-1:000000000000:q",
                              now: NotifierEngine.now(), changes: &changes)
        // The outbox commit stays in flight (suspended, holding no thread) until the test lets it finish.
        let disk = SlowDisk<NotifierChange>(holding: { $0.contains { if case .putDelivery = $0 { true } else { false } } })
        let engine = NotifierEngine(topics: sns, write: { await disk.hold($0) }, logger: Logger(label: "test"))
        let publish = Task {
            try await engine.perform { sns, now, changes in try sns.publish(topicArn: topicArn, PublishInput(message: "m"), now: now, changes: &changes) }
        }
        for await _ in disk.started { break }
        // The publish's delivery is in the core, and due, but its row is not on disk yet.
        #expect(await engine.takeDue(limit: 10, lane: .other).isEmpty)
        #expect(await engine.secondsUntilNextDue(lane: .other) == nil)
        disk.letItFinish()
        _ = try await publish.value
        #expect(engine.doorbells[DeliveryLane.other.rawValue].pending)
        #expect(!engine.doorbells[DeliveryLane.mail.rawValue].pending)
        let due = await engine.takeDue(limit: 10, lane: .other)
        #expect(due.map(\.endpoint) == ["arn:aws:sqs:us-east-1:000000000000:q"])
    }
}
