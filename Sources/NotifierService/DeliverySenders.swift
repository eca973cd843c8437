import Foundation
import NimbusProtocol
import NimbusRuntime
import NotifierCore
import QueueCore

/// Carries one delivery to its endpoint: email and email-json through SMTP, sqs through the queue
/// node (`sqs:SendMessage`), http/https as a POST. Throws when the endpoint did not take it.
final class DeliverySenders: Sendable {
    /// One client per SMTP connection; a mail goes over the one of its lane.
    let smtp: [SMTPClient]
    let fromAddress: String
    /// http and https deliveries.
    let http: HTTPDeliveryClient

    init(smtp: [SMTPClient], fromAddress: String, http: HTTPDeliveryClient = HTTPDeliveryClient()) {
        self.smtp = smtp
        self.fromAddress = fromAddress
        self.http = http
    }

    func send(_ delivery: Delivery, client: NimbusClient, lane: Int = 0) async throws {
        switch delivery.deliveryProtocol {
        case .email, .emailJSON:
            let domain = fromAddress.split(separator: "@").last.map(String.init) ?? "nimbus.local"
            // The Message-ID is the delivery's: a retry after a lost "250" repeats it, so a mail
            // store that deduplicates by Message-ID keeps one copy.
            try await smtp[lane % smtp.count].send(MailMessage(from: fromAddress, fromName: delivery.senderName, to: delivery.endpoint, subject: delivery.subject,
                                            body: delivery.body, messageID: "\(delivery.id)@\(domain)", date: Date()))
        case .sqs:
            if let failure = await sendToQueue([delivery], client: client)[delivery.id] { throw SenderError(failure) }
        case .http, .https:
            try await post(delivery)
        }
    }

    /// Deliveries to one queue, up to ten at a time in one `sqs:SendMessageBatch` (each still a
    /// message of its own in the queue, as SNS sends them). The URL follows from the ARN: no
    /// GetQueueUrl, which a queue's policy for SNS does not grant (AWS's SNS needs only
    /// sqs:SendMessage on the subscribed queue, and SendMessageBatch is authorized as SendMessage).
    /// Returns the failure of each delivery that did not get in, by delivery id; a failed request
    /// fails them all.
    func sendToQueue(_ deliveries: [Delivery], client: NimbusClient) async -> [String: String] {
        guard let first = deliveries.first else { return [:] }
        guard let url = ARN(first.endpoint)?.sqsQueueURL else {
            return Dictionary(deliveries.map { ($0.id, "not an SQS queue ARN: \($0.endpoint)") }, uniquingKeysWith: { a, _ in a })
        }
        let request = SendMessageBatchRequest(QueueUrl: url, Entries: deliveries.enumerated().map {
            SendMessageBatchEntry(Id: String($0.offset), MessageBody: $0.element.body, MessageAttributes: $0.element.messageAttributes)
        })
        let answer: SendMessageBatchResponse
        do {
            let body = try SQSFastJSON.encode(request) ?? JSONEncoder().encode(request)
            let reply = try await client.request("sqs:SendMessageBatch", to: .queue, body: body)
            answer = try SQSFastJSON.decodeSendMessageBatchResponse(reply) ?? JSONDecoder().decode(SendMessageBatchResponse.self, from: reply)
        } catch {
            return Dictionary(deliveries.map { ($0.id, "\(error)") }, uniquingKeysWith: { a, _ in a })
        }
        let sent = Set(answer.Successful.map(\.Id))
        let refused = Dictionary(answer.Failed.map { ($0.Id, "\($0.Code): \($0.Message)") }, uniquingKeysWith: { a, _ in a })
        var failures: [String: String] = [:]
        for (index, delivery) in deliveries.enumerated() where !sent.contains(String(index)) {
            failures[delivery.id] = refused[String(index)] ?? "the queue node did not report this entry"
        }
        return failures
    }

    /// Splits one queue's deliveries into SendMessageBatch requests: ten entries, and under SQS's
    /// 1 MiB a batch (a larger body goes alone, and the queue node says what is wrong with it).
    static func queueBatches(_ deliveries: [Delivery], maxBytes: Int = 1_048_576) -> [[Delivery]] {
        var batches: [[Delivery]] = []
        var current: [Delivery] = []
        var bytes = 0
        for delivery in deliveries {
            let size = delivery.body.utf8.count
            if !current.isEmpty, current.count == 10 || bytes + size > maxBytes {
                batches.append(current)
                current = []
                bytes = 0
            }
            current.append(delivery)
            bytes += size
        }
        if !current.isEmpty { batches.append(current) }
        return batches
    }

    private func post(_ delivery: Delivery) async throws {
        var headers = [("Content-Type", "text/plain; charset=UTF-8"),
                       ("x-amz-sns-message-type", delivery.kind.rawValue),
                       ("x-amz-sns-message-id", delivery.messageId),
                       ("x-amz-sns-topic-arn", delivery.topicArn)]
        if delivery.kind != .subscriptionConfirmation { headers.append(("x-amz-sns-subscription-arn", delivery.subscriptionArn)) }
        if delivery.raw == true { headers.append(("x-amz-sns-rawdelivery", "true")) }
        headers.append(("User-Agent", "Amazon Simple Notification Service Agent"))
        let status = try await http.post(delivery.endpoint, headers: headers, body: Array(delivery.body.utf8))
        guard (200..<300).contains(status) else { throw SenderError("\(delivery.endpoint) answered HTTP \(status)") }
    }
}

struct SenderError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
