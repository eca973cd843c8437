import Foundation
import Logging
import NimbusProtocol
import QueueCore

/// Lambda's SQS poller: long-polls the queue, hands batches to the function, and deletes exactly the
/// messages the function handled. Failed messages are left alone: they become visible again after the
/// queue's visibility timeout, and the queue's redrive policy moves them to the dead-letter queue
/// after maxReceiveCount.
struct SQSEventSource: Sendable {
    let mapping: EventSourceMapping
    let function: any SQSFunction
    let invoker: FunctionInvoker
    let logger: Logger
    /// How long one ReceiveMessage may wait for a message; short enough that a restarted broker is
    /// noticed soon, long enough that an idle poller costs nothing.
    var waitSeconds = 5
    /// Asked when the mapping is disabled or changed: the pollers finish the batch in hand and stop
    /// (cancelling instead would fail it half done).
    var stop = PollerStop()

    func run() async {
        // The URL follows from the ARN, as for Lambda's own poller: no GetQueueUrl call, which the
        // execution role is not granted (the lab's Lambda-Read-SQS has no sqs:GetQueueUrl).
        guard let url = ARN(mapping.eventSourceARN)?.sqsQueueURL else {
            logger.error("event source \(mapping.eventSourceARN) is not an SQS queue ARN")
            return
        }
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<mapping.concurrency { group.addTask { await poll(url: url) } }
        }
    }

    private func poll(url: String) async {
        var failures = 0
        while !Task.isCancelled && !stop.requested {
            do {
                let messages = try await receiveBatch(url: url)
                if messages.isEmpty { continue }
                let event = SQSEvent(Records: messages.map { m in
                    SQSEvent.Record(messageId: m.MessageId, receiptHandle: m.ReceiptHandle, body: m.Body, attributes: m.Attributes ?? [:],
                                    messageAttributes: (m.MessageAttributes ?? [:]).mapValues {
                                        .init(dataType: $0.DataType, stringValue: $0.StringValue, binaryValue: $0.BinaryValue)
                                    },
                                    md5OfBody: m.MD5OfBody, eventSourceARN: mapping.eventSourceARN, awsRegion: invoker.region)
                })
                let handled: [SQSEvent.Record]
                do {
                    let response = try await invoker.invoke(records: event.Records.count) { context in try await function.handle(event, context: context) }
                    let failed = mapping.reportBatchItemFailures ? Set(response.failedIdentifiers) : []
                    handled = event.Records.filter { !failed.contains($0.messageId) }
                } catch {
                    // The whole batch failed: nothing is deleted; it comes back after the visibility timeout.
                    logger.warning("function failed on a batch of \(event.Records.count): \(error)")
                    handled = []
                }
                try await delete(handled, url: url)
                failures = 0
            } catch {
                failures += 1
                logger.warning("event source \(mapping.eventSourceARN): \(error)")
                try? await Task.sleep(for: .milliseconds(min(5_000, 100 << min(failures, 6))))
            }
        }
    }

    /// One batch: up to BatchSize messages, waiting at most the batching window for more once the
    /// first arrived (window 0: whatever one receive returns).
    private func receiveBatch(url: String) async throws -> [ReceivedMessage] {
        var batch: [ReceivedMessage] = []
        let deadline = ContinuousClock.now + .milliseconds(Int(mapping.maximumBatchingWindowSeconds * 1000))
        repeat {
            try Task.checkCancellation()  // the node is stopping: leave the long-poll loop
            let remaining = deadline - ContinuousClock.now
            let wait = batch.isEmpty ? waitSeconds : max(0, min(waitSeconds, Int(remaining.components.seconds)))
            let request = Receive(QueueUrl: url, MaxNumberOfMessages: min(10, mapping.batchSize - batch.count), WaitTimeSeconds: wait)
            let got = try await invoker.services.call("sqs:ReceiveMessage", request, as: ReceiveMessageResponse.self,
                                                      timeout: .seconds(wait + 3)).Messages
            batch += got
            if got.isEmpty && !batch.isEmpty { break }
        } while batch.count < mapping.batchSize && (batch.isEmpty || ContinuousClock.now < deadline) && !(batch.isEmpty && stop.requested)
        return batch
    }

    private func delete(_ records: [SQSEvent.Record], url: String) async throws {
        for start in stride(from: 0, to: records.count, by: 10) {
            let chunk = records[start..<min(start + 10, records.count)]
            let request = HandleBatchRequest(QueueUrl: url, Entries: chunk.enumerated().map {
                BatchHandleEntry(Id: "m\($0.offset)", ReceiptHandle: $0.element.receiptHandle)
            })
            _ = try await invoker.services.call("sqs:DeleteMessageBatch", request)
        }
    }
}

struct Receive: HandWrittenRequest {
    var QueueUrl: String
    var MaxNumberOfMessages: Int
    var WaitTimeSeconds: Int
    var AttributeNames = ["All"]
    var MessageAttributeNames = ["All"]

    var handWrittenJSON: Data? {
        guard AttributeNames == ["All"], MessageAttributeNames == ["All"] else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(160)
        JSONText.append("{\"QueueUrl\":", to: &out)
        JSONText.appendString(QueueUrl, to: &out)
        JSONText.append(",\"MaxNumberOfMessages\":", to: &out)
        JSONText.appendInteger(Int64(MaxNumberOfMessages), to: &out)
        JSONText.append(",\"WaitTimeSeconds\":", to: &out)
        JSONText.appendInteger(Int64(WaitTimeSeconds), to: &out)
        JSONText.append(",\"AttributeNames\":[\"All\"],\"MessageAttributeNames\":[\"All\"]}", to: &out)
        return Data(out)
    }
}
