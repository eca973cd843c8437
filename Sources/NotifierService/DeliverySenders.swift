import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import NimbusProtocol
import NimbusRuntime
import NotifierCore

/// Carries one delivery to its endpoint: email and email-json through SMTP, sqs through the queue
/// node (`sqs:SendMessage`), http/https as a POST. Throws when the endpoint did not take it.
final class DeliverySenders: Sendable {
    /// One client per SMTP connection; a mail goes over the one of its lane.
    let smtp: [SMTPClient]
    let fromAddress: String

    init(smtp: [SMTPClient], fromAddress: String) {
        self.smtp = smtp
        self.fromAddress = fromAddress
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
            try await sendToQueue(delivery, client: client)
        case .http, .https:
            try await post(delivery)
        }
    }

    private func sendToQueue(_ delivery: Delivery, client: NimbusClient) async throws {
        // The URL follows from the ARN: no GetQueueUrl, which a queue's policy for SNS does not grant
        // (AWS's SNS needs only sqs:SendMessage on the subscribed queue).
        guard let url = ARN(delivery.endpoint)?.sqsQueueURL else { throw SenderError("not an SQS queue ARN: \(delivery.endpoint)") }
        _ = try await client.request("sqs:SendMessage", to: .queue,
                                     body: try JSONEncoder().encode(["QueueUrl": url, "MessageBody": delivery.body]))
    }

    private func post(_ delivery: Delivery) async throws {
        guard let url = URL(string: delivery.endpoint) else { throw SenderError("not a URL: \(delivery.endpoint)") }
        var request = URLRequest(url: url, timeoutInterval: 15)
        request.httpMethod = "POST"
        request.httpBody = Data(delivery.body.utf8)
        request.setValue("text/plain; charset=UTF-8", forHTTPHeaderField: "Content-Type")
        request.setValue(delivery.kind.rawValue, forHTTPHeaderField: "x-amz-sns-message-type")
        request.setValue(delivery.messageId, forHTTPHeaderField: "x-amz-sns-message-id")
        request.setValue(delivery.topicArn, forHTTPHeaderField: "x-amz-sns-topic-arn")
        if delivery.kind == .notification { request.setValue(delivery.subscriptionArn, forHTTPHeaderField: "x-amz-sns-subscription-arn") }
        request.setValue("Amazon Simple Notification Service Agent", forHTTPHeaderField: "User-Agent")
        let (_, response) = try await URLSession.shared.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw SenderError("no HTTP response from \(delivery.endpoint)") }
        guard (200..<300).contains(http.statusCode) else { throw SenderError("\(delivery.endpoint) answered HTTP \(http.statusCode)") }
    }
}

struct SenderError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
