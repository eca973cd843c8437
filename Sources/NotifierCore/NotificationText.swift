import Foundation
import NimbusProtocol

/// The texts SNS sends: the JSON documents HTTP/S, SQS and email-json endpoints get, and the
/// plain-text mails email endpoints get. Field order follows AWS's, so they read the same.
public enum NotificationText {
    static let signingCertURL = ""

    /// A notification for one subscription.
    public static func notification(protocol deliveryProtocol: DeliveryProtocol, messageId: String, topicArn: String, subject: String?,
                                    message: String, attributes: [String: MessageAttributeValue], timestamp: Double,
                                    unsubscribeURL: String) -> String {
        if deliveryProtocol == .email {
            return """
                \(message)

                --
                If you wish to stop receiving notifications from this topic, please click or visit the link below to unsubscribe:
                \(unsubscribeURL)

                Please do not reply directly to this email. This message was sent by Nimbus, a self-hosted SNS.
                """
        }
        var fields: [(String, String)] = [
            ("Type", quoted("Notification")),
            ("MessageId", quoted(messageId)),
            ("TopicArn", quoted(topicArn)),
        ]
        if let subject { fields.append(("Subject", quoted(subject))) }
        fields += [
            ("Message", quoted(message)),
            ("Timestamp", quoted(iso8601(timestamp))),
            ("SignatureVersion", quoted("1")),
            // Nimbus does not sign: there is no certificate to check a signature against.
            ("Signature", quoted("")),
            ("SigningCertURL", quoted(signingCertURL)),
            ("UnsubscribeURL", quoted(unsubscribeURL)),
        ]
        if !attributes.isEmpty {
            let inner = attributes.keys.sorted().map { name -> String in
                let value = attributes[name]!
                let base = value.DataType.split(separator: ".", maxSplits: 1).first.map(String.init) ?? value.DataType
                let text = value.StringValue ?? value.BinaryValue ?? ""
                return quoted(name) + ":{\"Type\":" + quoted(base) + ",\"Value\":" + quoted(text) + "}"
            }
            fields.append(("MessageAttributes", "{" + inner.joined(separator: ",") + "}"))
        }
        return object(fields)
    }

    /// The confirmation request for a new subscription.
    public static func confirmation(protocol deliveryProtocol: DeliveryProtocol, messageId: String, topicArn: String, token: String,
                                    subscribeURL: String, timestamp: Double) -> String {
        if deliveryProtocol == .email {
            return """
                You have chosen to subscribe to the topic:
                \(topicArn)

                To confirm the subscription, visit the SubscribeURL below (if this was in error no action is necessary):
                \(subscribeURL)

                Token: \(token)

                The link and the token are valid for 2 days.

                Please do not reply directly to this email. This message was sent by Nimbus, a self-hosted SNS.
                """
        }
        return tokenDocument(type: "SubscriptionConfirmation", messageId: messageId, token: token, topicArn: topicArn,
                             message: "You have chosen to subscribe to the topic \(topicArn).\nTo confirm the subscription, visit the SubscribeURL included in this message.",
                             subscribeURL: subscribeURL, timestamp: timestamp)
    }

    /// What an http/https endpoint is sent after it was unsubscribed: visiting SubscribeURL (or
    /// ConfirmSubscription with the token) restores the subscription.
    public static func unsubscribeConfirmation(messageId: String, topicArn: String, subscriptionArn: String, token: String,
                                               subscribeURL: String, timestamp: Double) -> String {
        tokenDocument(type: "UnsubscribeConfirmation", messageId: messageId, token: token, topicArn: topicArn,
                      message: "You have chosen to deactivate subscription \(subscriptionArn).\nTo cancel this operation and restore the subscription, visit the SubscribeURL included in this message.",
                      subscribeURL: subscribeURL, timestamp: timestamp)
    }

    /// The JSON document of the two messages that carry a token and a SubscribeURL.
    private static func tokenDocument(type: String, messageId: String, token: String, topicArn: String, message: String,
                                      subscribeURL: String, timestamp: Double) -> String {
        object([
            ("Type", quoted(type)),
            ("MessageId", quoted(messageId)),
            ("Token", quoted(token)),
            ("TopicArn", quoted(topicArn)),
            ("Message", quoted(message)),
            ("SubscribeURL", quoted(subscribeURL)),
            ("Timestamp", quoted(iso8601(timestamp))),
            ("SignatureVersion", quoted("1")),
            ("Signature", quoted("")),
            ("SigningCertURL", quoted(signingCertURL)),
        ])
    }

    /// `2026-07-01T12:00:00.123Z`, as SNS writes timestamps.
    public static func iso8601(_ seconds: Double) -> String { UTCTime.iso8601(seconds: seconds) }

    static func quoted(_ text: String) -> String {
        var out = ""
        JSONText.appendString(text, to: &out)
        return out
    }

    static func object(_ fields: [(String, String)]) -> String {
        "{" + fields.map { quoted($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }
}
