import Foundation
import Testing
@testable import NimbusStack

@Suite struct StackTemplateTests {
    @Test func theLabStackParsesWithTheDeadLetterQueueFirst() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../stacks/poc-lab.yaml").path
        let stack = try StackTemplate.load(path: file)
        let queues = stack.resources(ofType: "AWS::SQS::Queue").map(\.logicalID)
        #expect(queues == ["POCQueueDLQ", "POCQueue"])
        let queue = stack.resources.first { $0.logicalID == "POCQueue" }!
        guard case .map(let redrive)? = queue.properties["RedrivePolicy"] else { Issue.record("no RedrivePolicy"); return }
        #expect(redrive["deadLetterTargetArn"] == .getAtt("POCQueueDLQ", "Arn"))
    }

    @Test func referencesToOtherServicesResourcesResolveFromTheTemplate() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../stacks/poc-lab.yaml").path
        let stack = try StackTemplate.load(path: file)
        let resolver = StackResolver(template: stack, region: "us-east-1", account: "000000000000")
        #expect(try resolver.string(.getAtt("APIGatewaySQSRole", "Arn")) == "arn:aws:iam::000000000000:role/APIGateway-SQS")
        #expect(try resolver.string(.ref("LambdaReadSQS")) == "arn:aws:iam::000000000000:policy/Lambda-Read-SQS")
        #expect(try resolver.string(.ref("POCQueue")) == "https://sqs.us-east-1.amazonaws.com/000000000000/POC-Queue")
        let policy = stack.resources.first { $0.type == "AWS::SQS::QueuePolicy" }!
        let json = try resolver.jsonText(policy.properties["PolicyDocument"]!)
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        #expect((parsed["Statement"] as! [Any]).count == 3)
        #expect(stack.resources.firstIndex { $0.logicalID == "POCQueue" }! < stack.resources.firstIndex { $0.logicalID == "POCQueuePolicy" }!)
    }

    @Test func intrinsicsResolveInEveryForm() throws {
        let stack = try StackTemplate.parse("""
            Parameters:
              Email: { Type: String, Default: someone@example.com }
            Resources:
              B:
                Type: X::Y
                Properties:
                  Short: !Ref A
                  Long: { Ref: A }
                  Att: !GetAtt A.Arn
                  AttList: { "Fn::GetAtt": [A, Arn] }
                  Sub: !Sub "arn:aws:sns:${AWS::Region}:${AWS::AccountId}:${A}/${Email}"
                  Mail: !Ref Email
              A:
                Type: X::Y
                Properties: { Name: a }
            """)
        #expect(stack.resources.map(\.logicalID) == ["A", "B"])
        let resolver = StackResolver(template: stack, region: "us-east-1", account: "000000000000",
                                     ref: { $0 == "A" ? "a-ref" : nil }, getAtt: { id, att in id == "A" && att == "Arn" ? "a-arn" : nil })
        let p = stack.resources[1].properties
        #expect(try resolver.string(p["Short"]!) == "a-ref")
        #expect(try resolver.string(p["Long"]!) == "a-ref")
        #expect(try resolver.string(p["Att"]!) == "a-arn")
        #expect(try resolver.string(p["AttList"]!) == "a-arn")
        #expect(try resolver.string(p["Sub"]!) == "arn:aws:sns:us-east-1:000000000000:a-ref/someone@example.com")
        #expect(try resolver.string(p["Mail"]!) == "someone@example.com")
        #expect(throws: StackError.self) { try resolver.string(.ref("Nope")) }
    }

    @Test func mistakesAreReported() {
        #expect(throws: StackError.self) { try StackTemplate.parse("Resources: [") }
        #expect(throws: StackError.self) { try StackTemplate.parse("Foo: 1") }
        #expect(throws: StackError.self) { try StackTemplate.parse("Resources:\n  A: { Properties: {} }") }
        #expect(throws: StackError.self) {
            try StackTemplate.parse("Resources:\n  A: { Type: T, Properties: { X: !Ref B } }\n  B: { Type: T, Properties: { X: !Ref A } }")
        }
    }
}
