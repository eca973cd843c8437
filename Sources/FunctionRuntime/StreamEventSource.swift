import Foundation
import Logging
import NimbusProtocol

/// Lambda's stream poller: one reader per shard this worker holds the lease of, reading from the
/// shard's checkpoint, invoking the function with batches in order and checkpointing after success.
/// A failing batch blocks its shard (order is kept) and is retried until it succeeds, or, with
/// MaximumRetryAttempts, until its metadata goes to the on-failure destination.
struct StreamEventSource: Sendable {
    let mapping: EventSourceMapping
    let function: any StreamFunction
    let invoker: FunctionInvoker
    let leases: StreamLeases
    let logger: Logger
    /// How long a GetRecords of an idle shard waits for a record (Nimbus's long-poll extension;
    /// DynamoDB Streams itself has none), well inside a lease renewal period.
    var longPollMilliseconds = 1_000
    /// How often a worker without a shard's lease tries to take it (the holder may have died).
    var leaseRetry = Duration.seconds(2)
    /// Asked when the mapping is disabled or changed: each shard's reader finishes the batch in hand,
    /// checkpoints it and gives its lease up.
    var stop = PollerStop()

    private var running: Bool { !Task.isCancelled && !stop.requested }

    func run() async {
        let shards = await discoverShards()
        await withTaskGroup(of: Void.self) { group in
            for shard in shards { group.addTask { await readShard(shard) } }
        }
    }

    private func discoverShards() async -> [String] {
        var delay = Duration.milliseconds(200)
        while running {
            do {
                struct Answer: Decodable {
                    var StreamDescription: Description
                    struct Description: Decodable { var Shards: [Shard] }
                    struct Shard: Decodable { var ShardId: String }
                }
                let answer = try await invoker.services.call("dynamodb:DescribeStream", ["StreamArn": mapping.eventSourceARN], as: Answer.self)
                return answer.StreamDescription.Shards.map(\.ShardId)
            } catch {
                logger.warning("event source \(mapping.eventSourceARN): stream not readable yet (\(error)); retrying")
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
        return []
    }

    private func readShard(_ shard: String) async {
        let key = StreamLeases.key(function: invoker.definition.name, streamARN: mapping.eventSourceARN, shard: shard)
        while running {
            do {
                guard let lease = try await leases.acquire(key) else {
                    try await Task.sleep(for: leaseRetry)
                    continue
                }
                logger.info("reading \(shard) from \(lease.checkpoint.map { "after \($0)" } ?? mapping.startingPosition ?? "TRIM_HORIZON")")
                try await process(shard, key: key, from: lease.checkpoint)
            } catch is CancellationError {
                break
            } catch {
                logger.warning("shard \(shard): \(error)")
                try? await Task.sleep(for: .seconds(1))
            }
        }
        await leases.release(key)
    }

    /// Reads while the lease is ours. Returns when it is lost.
    private func process(_ shard: String, key: String, from checkpoint: String?) async throws {
        var iterator = try await shardIterator(shard, after: checkpoint)
        var lastRenewal = ContinuousClock.now
        var attempts = 0
        while running {
            let page = try await invoker.services.call(
                "dynamodb:GetRecords",
                GetRecords(ShardIterator: iterator, Limit: min(1000, mapping.batchSize), WaitTimeMilliseconds: longPollMilliseconds),
                as: RecordsPage.self, timeout: .milliseconds(longPollMilliseconds + 3_000))
            if page.Records.isEmpty {
                iterator = page.NextShardIterator
                if ContinuousClock.now - lastRenewal > .seconds(leases.duration / 3) {
                    guard try await leases.checkpoint(key, sequence: nil) else { return }
                    lastRenewal = .now
                }
                continue
            }
            let event = DynamoDBStreamEvent(Records: page.Records)
            let outcome: BatchResponse?
            do {
                outcome = try await invoker.invoke(records: event.Records.count) { context in try await function.handle(event, context: context) }
            } catch {
                logger.warning("function failed on \(event.Records.count) records of \(shard): \(error)")
                outcome = nil
            }
            let failed = mapping.reportBatchItemFailures ? Set(outcome?.failedIdentifiers ?? []) : []
            if outcome != nil && failed.isEmpty {
                guard try await leases.checkpoint(key, sequence: page.Records.last?.dynamodb.SequenceNumber) else { return }
                lastRenewal = .now
                attempts = 0
                iterator = page.NextShardIterator
                continue
            }
            // Partial or total failure: keep what succeeded before the first failure, retry from there.
            let firstFailed = outcome == nil ? 0 : (page.Records.firstIndex { failed.contains($0.dynamodb.SequenceNumber ?? "") } ?? 0)
            let done = page.Records[..<firstFailed].last?.dynamodb.SequenceNumber
            attempts += 1
            if mapping.maximumRetryAttempts >= 0 && attempts > mapping.maximumRetryAttempts {
                await sendToOnFailureDestination(shard: shard, records: Array(page.Records[firstFailed...]))
                guard try await leases.checkpoint(key, sequence: page.Records.last?.dynamodb.SequenceNumber) else { return }
                attempts = 0
                iterator = page.NextShardIterator
                continue
            }
            let progress = done ?? checkpointBefore(page.Records[firstFailed])
            if let done { guard try await leases.checkpoint(key, sequence: done) else { return } }
            lastRenewal = .now
            try await Task.sleep(for: .milliseconds(min(10_000, 100 << min(attempts, 7))))
            iterator = try await shardIterator(shard, after: progress)
        }
    }

    /// Where to resume so that `record` is read again.
    private func checkpointBefore(_ record: DynamoDBStreamEvent.Record) -> String? {
        record.dynamodb.SequenceNumber.map { "AT:" + $0 }
    }

    private func shardIterator(_ shard: String, after checkpoint: String?) async throws -> String {
        var request = ["StreamArn": mapping.eventSourceARN, "ShardId": shard]
        if let checkpoint, checkpoint.hasPrefix("AT:") {
            request["ShardIteratorType"] = "AT_SEQUENCE_NUMBER"
            request["SequenceNumber"] = String(checkpoint.dropFirst(3))
        } else if let checkpoint {
            request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            request["SequenceNumber"] = checkpoint
        } else {
            request["ShardIteratorType"] = mapping.startingPosition ?? "TRIM_HORIZON"
        }
        struct Answer: Decodable { var ShardIterator: String }
        do {
            return try await invoker.services.call("dynamodb:GetShardIterator", request, as: Answer.self).ShardIterator
        } catch let error as WireError where error.code == "TrimmedDataAccessException" {
            // The checkpoint is older than the stream's retention: what is left starts at the trim horizon.
            logger.error("shard \(shard): records after checkpoint \(checkpoint ?? "") expired unprocessed; continuing at TRIM_HORIZON")
            request["ShardIteratorType"] = "TRIM_HORIZON"
            request["SequenceNumber"] = nil
            return try await invoker.services.call("dynamodb:GetShardIterator", request, as: Answer.self).ShardIterator
        }
    }

    /// Lambda's OnFailure destination for streams: the batch's metadata, not its records.
    private func sendToOnFailureDestination(shard: String, records: [DynamoDBStreamEvent.Record]) async {
        guard let destination = mapping.onFailureDestination else {
            logger.error("dropping \(records.count) records of \(shard) after \(mapping.maximumRetryAttempts) retries (no on-failure destination)")
            return
        }
        let metadata: [String: String] = [
            "requestContext.functionArn": invoker.functionARN, "condition": "RetryAttemptsExhausted",
            "DDBStreamBatchInfo.shardId": shard, "DDBStreamBatchInfo.streamArn": mapping.eventSourceARN,
            "DDBStreamBatchInfo.startSequenceNumber": records.first?.dynamodb.SequenceNumber ?? "",
            "DDBStreamBatchInfo.endSequenceNumber": records.last?.dynamodb.SequenceNumber ?? "",
            "DDBStreamBatchInfo.batchSize": String(records.count),
        ]
        do {
            let queueName = String(destination.split(separator: ":").last ?? "")
            struct URLAnswer: Decodable { var QueueUrl: String }
            let url = try await invoker.services.call("sqs:GetQueueUrl", ["QueueName": queueName], as: URLAnswer.self).QueueUrl
            let body = String(decoding: try JSONEncoder().encode(metadata), as: UTF8.self)
            _ = try await invoker.services.call("sqs:SendMessage", ["QueueUrl": url, "MessageBody": body])
        } catch {
            logger.error("on-failure destination \(destination): \(error); dropping \(records.count) records of \(shard)")
        }
    }
}

private struct GetRecords: Encodable {
    var ShardIterator: String
    var Limit: Int
    var WaitTimeMilliseconds: Int
}

private struct RecordsPage: Decodable {
    var Records: [DynamoDBStreamEvent.Record]
    var NextShardIterator: String
}
