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
        // PublishBatch, ten records a call (the lab publishes one by one; same messages, a tenth of
        // the round trips), the chunks concurrently.
        let failed = await withTaskGroup(of: [String].self) { group in
            for start in stride(from: 0, to: inserts.count, by: 10) {
                let chunk = Array(inserts[start..<min(start + 10, inserts.count)])
                group.addTask {
                    do {
                        return try await Self.publish(chunk, topic: topic, context: context)
                    } catch {
                        context.logger.warning("\(chunk.count) records not published: \(error)")
                        return chunk.map(Self.identifier)
                    }
                }
            }
            var failed: Set<String> = []
            for await ids in group { failed.formUnion(ids) }
            return failed
        }
        // In stream order, so the poller retries from the first failure.
        return BatchResponse(failures: event.Records.map(Self.identifier).filter { failed.contains($0) })
    }

    /// `{"default": image}` byte for byte as JSONEncoder writes it (MessageStructure json), without
    /// a JSONEncoder per record.
    static func defaultMessage(_ image: String) -> String {
        var message: [UInt8] = []
        message.reserveCapacity(image.utf8.count + 16)
        JSONText.append("{\"default\":", to: &message)
        JSONText.appendString(image, to: &message)
        message.append(0x7D)
        return String(decoding: message, as: UTF8.self)
    }

    static func identifier(_ record: DynamoDBStreamEvent.Record) -> String { record.dynamodb.SequenceNumber ?? record.eventID }

    /// Publishes the records' new images; returns the identifiers of those the topic refused.
    static func publish(_ records: [DynamoDBStreamEvent.Record], topic: String, context: FunctionContext) async throws -> [String] {
        struct Answer: Decodable {
            struct Failure: Decodable { var Id: String; var Code: String?; var Message: String? }
            var Failed: [Failure]?
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let entries = try records.enumerated().map { index, record in
            let image = String(decoding: try encoder.encode(record.dynamodb.NewImage), as: UTF8.self)
            return PublishEntry(Id: "r\(index)", Message: defaultMessage(image), MessageDeduplicationId: record.eventID)
        }
        let answer = try await context.services.call("sns:PublishBatch", PublishBatch(TopicArn: topic, PublishBatchRequestEntries: entries),
                                                     as: Answer.self)
        return (answer.Failed ?? []).compactMap { failure in
            context.logger.warning("record not published: \(failure.Code ?? "") \(failure.Message ?? "")")
            guard failure.Id.hasPrefix("r"), let index = Int(failure.Id.dropFirst()), records.indices.contains(index) else { return nil }
            return identifier(records[index])
        }
    }
}

struct PublishEntry: Encodable {
    var Id: String
    var Message: String
    var MessageStructure = "json"
    var MessageDeduplicationId: String
}

/// The PublishBatch request, written by hand (it leaves the stream worker for every few orders).
struct PublishBatch: HandWrittenRequest {
    var TopicArn: String
    var PublishBatchRequestEntries: [PublishEntry]

    var handWrittenJSON: Data? {
        var out: [UInt8] = []
        out.reserveCapacity(64 + PublishBatchRequestEntries.reduce(0) { $0 + $1.Message.utf8.count + 128 })
        JSONText.append("{\"TopicArn\":", to: &out)
        JSONText.appendString(TopicArn, to: &out)
        JSONText.append(",\"PublishBatchRequestEntries\":[", to: &out)
        for (i, entry) in PublishBatchRequestEntries.enumerated() {
            if i > 0 { out.append(0x2C) }
            JSONText.append("{\"Id\":", to: &out)
            JSONText.appendString(entry.Id, to: &out)
            JSONText.append(",\"Message\":", to: &out)
            JSONText.appendString(entry.Message, to: &out)
            JSONText.append(",\"MessageStructure\":", to: &out)
            JSONText.appendString(entry.MessageStructure, to: &out)
            JSONText.append(",\"MessageDeduplicationId\":", to: &out)
            JSONText.appendString(entry.MessageDeduplicationId, to: &out)
            out.append(0x7D)
        }
        JSONText.append("]}", to: &out)
        return Data(out)
    }
}
