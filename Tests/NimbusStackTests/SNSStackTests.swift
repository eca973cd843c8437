import Foundation
import Testing
@testable import NimbusStack

@Suite struct SNSStackTests {
    @Test func topicReferencesResolveToTheTopicArn() throws {
        let stack = try StackTemplate.parse("""
            Parameters:
              NotificationEmail: {Type: String, Default: "orders@example.com"}
            Resources:
              Sub:
                Type: AWS::SNS::Subscription
                Properties: {TopicArn: !Ref Topic, Protocol: email, Endpoint: !Ref NotificationEmail}
              Topic:
                Type: AWS::SNS::Topic
                Properties: {TopicName: POC-Topic}
            """)
        #expect(stack.resources.map(\.logicalID) == ["Topic", "Sub"])
        let resolver = StackResolver(template: stack, region: "us-east-1", account: "000000000000")
        let sub = stack.resources[1]
        #expect(try resolver.string(sub.properties["TopicArn"]!) == "arn:aws:sns:us-east-1:000000000000:POC-Topic")
        #expect(try resolver.string(sub.properties["Endpoint"]!) == "orders@example.com")
        #expect(try resolver.string(.getAtt("Topic", "TopicName")) == "POC-Topic")
        #expect(try resolver.string(.getAtt("Topic", "TopicArn")) == "arn:aws:sns:us-east-1:000000000000:POC-Topic")
        let overridden = StackResolver(template: stack, overrides: ["NotificationEmail": "me@example.com"], region: "us-east-1", account: "000000000000")
        #expect(try overridden.string(sub.properties["Endpoint"]!) == "me@example.com")
    }

    @Test func theLabStackHasPOCTopicAndAnOptionalEmailSubscription() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../stacks/poc-lab.yaml").path
        let stack = try StackTemplate.load(path: file)
        #expect(stack.resources(ofType: "AWS::SNS::Topic").map(\.logicalID) == ["POCTopic"])
        #expect(stack.parameters["NotificationEmail"] == "")
        let resolver = StackResolver(template: stack, region: "us-east-1", account: "000000000000")
        #expect(try resolver.string(.ref("POCTopic")) == "arn:aws:sns:us-east-1:000000000000:POC-Topic")
    }
}
