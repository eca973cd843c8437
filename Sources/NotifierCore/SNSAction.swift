/// SNS's action names, as IAM policies spell them.
public enum SNSAction {
    public static let createTopic = "sns:CreateTopic"
    public static let deleteTopic = "sns:DeleteTopic"
    public static let listTopics = "sns:ListTopics"
    public static let getTopicAttributes = "sns:GetTopicAttributes"
    public static let setTopicAttributes = "sns:SetTopicAttributes"
    public static let subscribe = "sns:Subscribe"
    public static let confirmSubscription = "sns:ConfirmSubscription"
    public static let unsubscribe = "sns:Unsubscribe"
    public static let listSubscriptions = "sns:ListSubscriptions"
    public static let listSubscriptionsByTopic = "sns:ListSubscriptionsByTopic"
    public static let publish = "sns:Publish"
    public static let publishBatch = "sns:PublishBatch"
    public static let getSubscriptionAttributes = "sns:GetSubscriptionAttributes"
    public static let setSubscriptionAttributes = "sns:SetSubscriptionAttributes"

    public static let all: Set<String> = [
        createTopic, deleteTopic, listTopics, getTopicAttributes, setTopicAttributes, subscribe, confirmSubscription, unsubscribe,
        listSubscriptions, listSubscriptionsByTopic, publish, publishBatch, getSubscriptionAttributes, setSubscriptionAttributes,
    ]
}
