import Foundation
import NimbusProtocol
import Testing
@testable import EdgeService

/// AWS's JSON 1.0 error bodies: `__type`, `message`, and a node's further members passed through.
@Suite struct JSONProtocolTests {
    static func body(_ response: EdgeResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: response.body) as? [String: Any])
    }

    @Test func aNodeErrorsFieldsBecomeMembersOfTheErrorBody() throws {
        let fields = Data(#"{"CancellationReasons":[{"Code":"None"},{"Code":"ConditionalCheckFailed","Message":"The conditional request failed","Item":{"ok":{"BOOL":true}}}]}"#.utf8)
        let node = WireError(code: "TransactionCanceledException", message: "Transaction cancelled [None, ConditionalCheckFailed]", fields: fields)
        let edge = EdgeError.from(node)
        #expect(edge.status == 400 && edge.fields == fields)
        let object = try Self.body(JSONService.dynamodb.error(edge, requestID: "r-1"))
        #expect(object["__type"] as? String == "com.amazonaws.dynamodb.v20120810#TransactionCanceledException")
        #expect(object["message"] as? String == node.message)
        let reasons = try #require(object["CancellationReasons"] as? [[String: Any]])
        #expect(reasons.map { $0["Code"] as? String } == ["None", "ConditionalCheckFailed"])
        #expect((reasons[1]["Item"] as? [String: Any])?["ok"] as? NSDictionary == ["BOOL": true] as NSDictionary)
    }

    @Test func withoutFieldsTheBodyIsTypeAndMessage() throws {
        for fields in [nil, Data("{}".utf8), Data("{ }".utf8), Data("[1]".utf8)] as [Data?] {
            let edge = EdgeError.from(WireError(code: "ConditionalCheckFailedException", message: "The conditional request failed", fields: fields))
            let object = try Self.body(JSONService.dynamodb.error(edge, requestID: "r-1"))
            #expect(Set(object.keys) == ["__type", "message"])
        }
    }
}
