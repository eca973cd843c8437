import Crypto
import Foundation
import FunctionRuntime
import NimbusProtocol
import TableCore

/// POC-Lambda-1: each queued order becomes an item `{orderID, order: body}` in the orders table.
///
/// The lab's version names the order `uuid4()`, so a redelivered message (at-least-once delivery)
/// becomes a second order. Here the orderID is a name-based UUID of the message id and the write is
/// conditional on the id being new: a redelivery finds its order already there and counts as done.
public struct IngestOrders: SQSFunction {
    public init() {}

    public func handle(_ event: SQSEvent, context: FunctionContext) async throws -> BatchResponse {
        let table = context.environment["TABLE_NAME"] ?? "orders"
        // A batch goes to the table in one request: a transaction of conditional puts. It is all or
        // nothing, so when it does not go through (a redelivered order already there, an item too
        // large, a timeout) each record is written on its own below, where a failure stays its own
        // and an order already written counts as done.
        if event.Records.count > 1 {
            do {
                _ = try await context.services.call("dynamodb:TransactWriteItems", Transaction(puts: event.Records.map { Self.put($0, table: table) }))
                return BatchResponse(failures: [])
            } catch {
                context.logger.debug("batch of \(event.Records.count) orders not written as one transaction (\(error)): one by one")
            }
        }
        // Records are independent: write them concurrently, report the ones that failed.
        let failures = await withTaskGroup(of: String?.self) { group in
            for record in event.Records {
                group.addTask {
                    do {
                        try await Self.write(record, table: table, context: context)
                        return nil
                    } catch {
                        context.logger.warning("order from message \(record.messageId) not written: \(error)")
                        return record.messageId
                    }
                }
            }
            var failed: [String] = []
            for await id in group { if let id { failed.append(id) } }
            return failed
        }
        return BatchResponse(failures: failures)
    }

    /// The PutItem request: written by hand (`DynamoJSON`) on its way out, once per order.
    struct Put: HandWrittenRequest {
        var TableName: String
        var Item: Item
        var ConditionExpression = "attribute_not_exists(orderID)"

        var handWrittenJSON: Data? {
            var out: [UInt8] = []
            out.reserveCapacity(192 + Item.reduce(0) { $0 + $1.value.size })
            JSONText.append("{\"TableName\":", to: &out)
            JSONText.appendString(TableName, to: &out)
            JSONText.append(",\"Item\":", to: &out)
            DynamoJSON.append(Item, to: &out)
            JSONText.append(",\"ConditionExpression\":", to: &out)
            JSONText.appendString(ConditionExpression, to: &out)
            out.append(0x7D)
            return Data(out)
        }
    }

    /// TransactWriteItems of the batch's puts, written by hand from theirs.
    struct Transaction: HandWrittenRequest {
        var puts: [Put]

        enum CodingKeys: String, CodingKey { case TransactItems }
        struct Entry: Encodable { var Put: IngestOrders.Put }

        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(puts.map(Entry.init), forKey: .TransactItems)
        }

        var handWrittenJSON: Data? {
            var out = Data("{\"TransactItems\":[".utf8)
            for (index, put) in puts.enumerated() {
                guard let json = put.handWrittenJSON else { return nil }
                out.append(contentsOf: Array((index == 0 ? "{\"Put\":" : ",{\"Put\":").utf8))
                out.append(json)
                out.append(0x7D)
            }
            out.append(contentsOf: Array("]}".utf8))
            return out
        }
    }

    static func put(_ record: SQSEvent.Record, table: String) -> Put {
        Put(TableName: table, Item: ["orderID": .s(orderID(forMessage: record.messageId)), "order": .s(record.body)])
    }

    static func write(_ record: SQSEvent.Record, table: String, context: FunctionContext) async throws {
        let put = put(record, table: table)
        do {
            _ = try await context.services.call("dynamodb:PutItem", put)
        } catch let error as WireError where error.code == "ConditionalCheckFailedException" {
            // Written by an earlier delivery of the same message.
        }
    }

    /// A version-5 (SHA-1, name-based) UUID of the message id in a Nimbus namespace: the same message
    /// always gives the same order id.
    public static func orderID(forMessage messageId: String) -> String {
        var digest = Array(Insecure.SHA1.hash(data: Array(namespace.utf8) + Array(messageId.utf8)).prefix(16))
        digest[6] = (digest[6] & 0x0F) | 0x50
        digest[8] = (digest[8] & 0x3F) | 0x80
        return digest.withUnsafeBytes { Hex.uuid($0) }
    }

    static let namespace = "nimbus:POC-Lambda-1:order:"
}
