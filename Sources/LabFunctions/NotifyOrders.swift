import Foundation
import FunctionRuntime
import NimbusProtocol
import TableCore

/// POC-Lambda-2: every new order (an INSERT record) is published to POC-Topic as the lab's code does
/// it: MessageStructure json with `{"default": <the NewImage as JSON>}`.
///
/// Each publish carries the record's eventID as its deduplication id, so a batch replayed after a
/// crash (published, not yet checkpointed) does not notify twice.
public struct NotifyOrders: StreamFunction {
    public init() {}

    public func handle(_ event: DynamoDBStreamEvent, context: FunctionContext) async throws -> BatchResponse {
        guard let topic = context.environment["TOPIC_ARN"] else {
            throw WireError(.invalidParameterValue, "the function's environment has no TOPIC_ARN")
        }
        let inserts = event.Records.filter { $0.eventName == "INSERT" && $0.dynamodb.NewImage != nil }
        let failed = await withTaskGroup(of: String?.self) { group in
            for record in inserts {
                group.addTask {
                    do {
                        try await Self.publish(record, topic: topic, context: context)
                        return nil
                    } catch {
                        context.logger.warning("record \(record.eventID) not published: \(error)")
                        return record.dynamodb.SequenceNumber ?? record.eventID
                    }
                }
            }
            var failed: Set<String> = []
            for await id in group { if let id { failed.insert(id) } }
            return failed
        }
        // In stream order, so the poller retries from the first failure.
        return BatchResponse(failures: event.Records.compactMap { r in
            let id = r.dynamodb.SequenceNumber ?? r.eventID
            return failed.contains(id) ? id : nil
        })
    }

    static func publish(_ record: DynamoDBStreamEvent.Record, topic: String, context: FunctionContext) async throws {
        struct Publish: Encodable {
            var TopicArn: String
            var Message: String
            var MessageStructure = "json"
            var MessageDeduplicationId: String
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let image = String(decoding: try encoder.encode(record.dynamodb.NewImage), as: UTF8.self)
        let message = String(decoding: try encoder.encode(["default": image]), as: UTF8.self)
        _ = try await context.services.call("sns:Publish", Publish(TopicArn: topic, Message: message, MessageDeduplicationId: record.eventID))
    }
}
