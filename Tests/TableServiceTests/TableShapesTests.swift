import Foundation
import Testing
@testable import TableService

@Suite struct TableShapesTests {
    /// The hand reader of a transaction reads what JSONDecoder reads, and leaves to it what it does not take.
    @Test func aTransactionIsReadByHandAsJSONDecoderReadsIt() throws {
        let body = Data(#"""
            {"TransactItems":[
              {"Put":{"TableName":"orders","Item":{"orderID":{"S":"a"},"order":{"S":"{\"item\": \"gloves\"}"}},"ConditionExpression":"attribute_not_exists(orderID)"}},
              {"Update":{"TableName":"orders","Key":{"orderID":{"S":"b"}},"UpdateExpression":"SET #s = :s","ExpressionAttributeNames":{"#s":"status"},
                         "ExpressionAttributeValues":{":s":{"S":"paid"}}}},
              {"ConditionCheck":{"TableName":"orders","Key":{"orderID":{"S":"c"}},"ConditionExpression":"attribute_exists(orderID)"}},
              {"Delete":{"TableName":"orders","Key":{"orderID":{"S":"d"}}}}]}
            """#.utf8)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let fast = try #require(TransactWriteRequest.fast(body))
        #expect(try encoder.encode(fast) == encoder.encode(JSONDecoder().decode(TransactWriteRequest.self, from: body)))
        // Two operations in one entry, a member it does not know, a number: JSONDecoder's to read (and refuse).
        for other in [#"{"TransactItems":[{"Put":{"TableName":"t","Item":{}},"Delete":{"TableName":"t","Key":{}}}]}"#,
                      #"{"TransactItems":[],"ClientRequestToken":"x"}"#, #"{"TransactItems":[{"Put":{"TableName":"t","Item":{"n":{"N":1}}}}]}"#] {
            #expect(TransactWriteRequest.fast(Data(other.utf8)) == nil, "\(other)")
        }
    }
}
