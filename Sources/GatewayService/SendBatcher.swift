import Foundation
import NimbusRuntime
import QueueCore

/// Coalesces concurrent SendMessage calls into SendMessageBatch requests (up to 10 entries), with a
/// few batches in flight at once. No timer: a batch leaves as soon as a slot is free, so a lone POST
/// is not delayed, and under load batches fill while the slots are busy.
actor SendBatcher {
    private let client: NimbusClient
    private let endpoint: String
    private let queueURL: String
    private let timeout: Duration
    private let maxInFlight: Int
    private var waiting: [Waiting] = []
    private var inFlight = 0

    init(client: NimbusClient, endpoint: String, queueURL: String, timeout: Duration, maxInFlight: Int = 8) {
        self.client = client
        self.endpoint = endpoint
        self.queueURL = queueURL
        self.timeout = timeout
        self.maxInFlight = maxInFlight
    }

    private typealias Waiting = (body: String, idempotencyKey: String?, continuation: CheckedContinuation<SendMessageResponse, Error>)

    /// Sends one message; returns once the broker has it on disk. With an idempotency key (the
    /// `Idempotency-Key` header, already checked), the broker enqueues it only when the key was not
    /// used on the queue within 5 minutes, and otherwise answers what the first send answered.
    func send(_ body: String, idempotencyKey: String? = nil) async throws -> SendMessageResponse {
        try await withCheckedThrowingContinuation { continuation in
            waiting.append((body, idempotencyKey, continuation))
            pump()
        }
    }

    private func pump() {
        while inFlight < maxInFlight, !waiting.isEmpty {
            // Up to 10 entries and SQS's 1 MiB per batch (a large body may travel alone).
            var count = 0
            var bytes = 0
            while count < min(10, waiting.count) {
                let size = waiting[count].body.utf8.count
                if count > 0 && bytes + size > QueueBroker.maxBatchBytes { break }
                bytes += size
                count += 1
            }
            let batch = Array(waiting.prefix(count))
            waiting.removeFirst(count)
            inFlight += 1
            Task { await self.deliver(batch) }
        }
    }

    private func deliver(_ batch: [Waiting]) async {
        defer {
            inFlight -= 1
            pump()
        }
        let request = SendMessageBatchRequest(
            QueueUrl: queueURL, Entries: batch.enumerated().map {
                SendMessageBatchEntry(Id: "m\($0.offset)", MessageBody: $0.element.body, NimbusIdempotencyKey: $0.element.idempotencyKey)
            })
        do {
            let reply = try await client.request(
                SQSAction.sendMessageBatch, to: endpoint, body: try SQSFastJSON.encode(request) ?? JSONEncoder().encode(request),
                timeout: timeout, attempts: 1)
            let response = try SQSFastJSON.decodeSendMessageBatchResponse(reply) ?? JSONDecoder().decode(SendMessageBatchResponse.self, from: reply)
            var successes: [String: SendMessageBatchResultEntry] = [:]
            for s in response.Successful { successes[s.Id] = s }
            var failures: [String: BatchResultErrorEntry] = [:]
            for f in response.Failed { failures[f.Id] = f }
            for (index, item) in batch.enumerated() {
                if let s = successes["m\(index)"] {
                    item.continuation.resume(returning: SendMessageResponse(MessageId: s.MessageId, MD5OfMessageBody: s.MD5OfMessageBody,
                                                                            MD5OfMessageAttributes: s.MD5OfMessageAttributes))
                } else {
                    let f = failures["m\(index)"]
                    item.continuation.resume(throwing: WireError(code: f?.Code ?? "InternalFailure", message: f?.Message ?? "no result for the message"))
                }
            }
        } catch {
            for item in batch { item.continuation.resume(throwing: error) }
        }
    }
}
