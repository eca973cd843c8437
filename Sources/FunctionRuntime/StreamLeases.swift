import Foundation
import NimbusProtocol
import TableCore

/// Shard leases and checkpoints in a Nimbus table, the way the Kinesis Client Library keeps them in a
/// DynamoDB lease table: one item per (function, shard) holding the owner, an expiry and the last
/// sequence number processed. Every change is a conditional write, so two workers never both hold a
/// shard, and a checkpoint from a worker that lost its lease is refused.
public struct StreamLeases: Sendable {
    /// The lease table the stack declares for the stream workers.
    public static let defaultTable = "nimbus-stream-leases"

    public let table: String
    public let owner: String
    public let duration: Double
    let services: any ServiceCalling
    let clock: @Sendable () -> Double

    public init(table: String, owner: String, duration: Double = 10, services: any ServiceCalling,
                clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.table = table
        self.owner = owner
        self.duration = duration
        self.services = services
        self.clock = clock
    }

    public struct Lease: Sendable, Equatable {
        public var key: String
        /// The last sequence number processed; nil: start at the mapping's StartingPosition.
        public var checkpoint: String?
        public var counter: Int
    }

    public static func key(function: String, streamARN: String, shard: String) -> String { "\(function)|\(streamARN)|\(shard)" }

    /// Takes the lease when it is free, expired or already ours; nil when another worker holds it.
    public func acquire(_ key: String) async throws -> Lease? {
        let now = clock()
        let body = Update(
            TableName: table, Key: ["leaseKey": .s(key)],
            UpdateExpression: "SET #owner = :me, expiresAt = :expires, leaseCounter = if_not_exists(leaseCounter, :zero) + :one",
            ConditionExpression: "attribute_not_exists(leaseKey) OR #owner = :me OR expiresAt < :now",
            ExpressionAttributeNames: ["#owner": "owner"],
            ExpressionAttributeValues: [":me": .s(owner), ":expires": .n(String(now + duration)), ":zero": .n("0"), ":one": .n("1"),
                                        ":now": .n(String(now))],
            ReturnValues: "ALL_NEW")
        do {
            let answer = try await services.call("dynamodb:UpdateItem", body, as: UpdateAnswer.self)
            let item = answer.Attributes ?? [:]
            var checkpoint: String?
            if case .s(let c)? = item["checkpoint"] { checkpoint = c }
            var counter = 0
            if case .n(let n)? = item["leaseCounter"] { counter = Int(n) ?? 0 }
            return Lease(key: key, checkpoint: checkpoint, counter: counter)
        } catch let error as WireError where error.code == "ConditionalCheckFailedException" {
            return nil
        }
    }

    /// Records progress and extends the lease; false when the lease is no longer ours (stop reading).
    public func checkpoint(_ key: String, sequence: String?) async throws -> Bool {
        let now = clock()
        var values: [String: AttributeValue] = [":me": .s(owner), ":expires": .n(String(now + duration))]
        var expression = "SET expiresAt = :expires"
        if let sequence {
            values[":seq"] = .s(sequence)
            expression += ", checkpoint = :seq"
        }
        let body = Update(TableName: table, Key: ["leaseKey": .s(key)], UpdateExpression: expression,
                          ConditionExpression: "#owner = :me", ExpressionAttributeNames: ["#owner": "owner"],
                          ExpressionAttributeValues: values, ReturnValues: "NONE")
        do {
            _ = try await services.call("dynamodb:UpdateItem", body)
            return true
        } catch let error as WireError where error.code == "ConditionalCheckFailedException" {
            return false
        }
    }

    /// Gives the lease up (graceful shutdown), so another worker need not wait for it to expire.
    public func release(_ key: String) async {
        let body = Update(TableName: table, Key: ["leaseKey": .s(key)], UpdateExpression: "SET expiresAt = :zero",
                          ConditionExpression: "#owner = :me", ExpressionAttributeNames: ["#owner": "owner"],
                          ExpressionAttributeValues: [":me": .s(owner), ":zero": .n("0")], ReturnValues: "NONE")
        _ = try? await services.call("dynamodb:UpdateItem", body)
    }

    private struct Update: Encodable {
        var TableName: String
        var Key: Item
        var UpdateExpression: String
        var ConditionExpression: String
        var ExpressionAttributeNames: [String: String]
        var ExpressionAttributeValues: [String: AttributeValue]
        var ReturnValues: String
    }

    private struct UpdateAnswer: Decodable { var Attributes: Item? }
}
