import Foundation
import NimbusProtocol
import TableCore

// DynamoDB and DynamoDB Streams bodies, in botocore's dynamodb / dynamodbstreams model shapes.

struct KeySchemaElement: Codable, Sendable { var AttributeName: String; var KeyType: String }
struct AttributeDefinition: Codable, Sendable { var AttributeName: String; var AttributeType: String }
/// DynamoDB's API says StreamEnabled; CloudFormation's template names only StreamViewType.
struct StreamSpecification: Codable, Sendable { var StreamEnabled: Bool?; var StreamViewType: String? }

struct CreateTableRequest: Codable, Sendable {
    var TableName: String
    var KeySchema: [KeySchemaElement]
    var AttributeDefinitions: [AttributeDefinition]
    var StreamSpecification: StreamSpecification?
    var BillingMode: String?
}

struct TableNameRequest: Codable, Sendable { var TableName: String }
struct ListTablesRequest: Codable, Sendable { var Limit: Int?; var ExclusiveStartTableName: String? }
struct ListTablesResponse: Codable, Sendable { var TableNames: [String]; var LastEvaluatedTableName: String? }
struct UpdateTableRequest: Codable, Sendable { var TableName: String; var StreamSpecification: StreamSpecification? }

struct TableDescription: Codable, Sendable {
    var TableName: String
    var TableArn: String
    var TableStatus = "ACTIVE"
    var KeySchema: [KeySchemaElement]
    var AttributeDefinitions: [AttributeDefinition]
    var ItemCount: Int
    var TableSizeBytes: Int
    var CreationDateTime: Double
    var StreamSpecification: StreamSpecification?
    var LatestStreamLabel: String?
    var LatestStreamArn: String?
    var BillingModeSummary = ["BillingMode": "PAY_PER_REQUEST"]

    init(_ d: TableSchema, arn: String, itemCount: Int, sizeBytes: Int) {
        TableName = d.name
        TableArn = arn
        KeySchema = [KeySchemaElement(AttributeName: d.partitionKey.name, KeyType: "HASH")]
            + (d.sortKey.map { [KeySchemaElement(AttributeName: $0.name, KeyType: "RANGE")] } ?? [])
        AttributeDefinitions = ([d.partitionKey] + (d.sortKey.map { [$0] } ?? [])).map { AttributeDefinition(AttributeName: $0.name, AttributeType: $0.type) }
        ItemCount = itemCount
        TableSizeBytes = sizeBytes
        CreationDateTime = d.createdAt
        StreamSpecification = d.streamViewType.map { .init(StreamEnabled: true, StreamViewType: $0) }
        LatestStreamLabel = d.streamLabel
        LatestStreamArn = d.streamLabel.map { "\(arn)/stream/\($0)" }
    }
}

struct WriteRequest: Codable, Sendable {
    var TableName: String
    var Item: Item? = nil
    var Key: Item? = nil
    var ConditionExpression: String? = nil
    var UpdateExpression: String? = nil
    var ExpressionAttributeNames: [String: String]? = nil
    var ExpressionAttributeValues: [String: AttributeValue]? = nil
    var ReturnValues: String? = nil
    /// NONE or ALL_OLD: a failed condition's error carries the item as it was (PutItem, UpdateItem,
    /// DeleteItem and a transaction's items).
    var ReturnValuesOnConditionCheckFailure: String? = nil
    /// GetItem's.
    var ProjectionExpression: String? = nil
}

extension WriteRequest {
    static let members: Set<String> = ["TableName", "Item", "Key", "ConditionExpression", "UpdateExpression", "ExpressionAttributeNames",
                                       "ExpressionAttributeValues", "ReturnValues", "ReturnValuesOnConditionCheckFailure", "ProjectionExpression"]

    /// A write request made only of strings, maps and lists (the usual PutItem), read without
    /// JSONDecoder; nil for anything else or anything invalid, which JSONDecoder then reads (and
    /// reports on).
    static func fast(_ data: Data) -> WriteRequest? {
        StringJSON.parse(data).flatMap(fast)
    }

    /// The same, from a request already read (a transaction's item).
    static func fast(_ json: StringJSON) -> WriteRequest? {
        guard let m = json.members(allowed: members), let table = m["TableName"]?.string else { return nil }
        var request = WriteRequest(TableName: table)
        for key in ["ConditionExpression", "UpdateExpression", "ReturnValues", "ReturnValuesOnConditionCheckFailure", "ProjectionExpression"] {
            guard let value = m[key] else { continue }
            guard let text = value.string else { return nil }
            switch key {
            case "ConditionExpression": request.ConditionExpression = text
            case "UpdateExpression": request.UpdateExpression = text
            case "ReturnValuesOnConditionCheckFailure": request.ReturnValuesOnConditionCheckFailure = text
            case "ProjectionExpression": request.ProjectionExpression = text
            default: request.ReturnValues = text
            }
        }
        if let item = m["Item"] {
            guard let value = DynamoJSON.item(item) else { return nil }
            request.Item = value
        }
        if let key = m["Key"] {
            guard let value = DynamoJSON.item(key) else { return nil }
            request.Key = value
        }
        if let names = m["ExpressionAttributeNames"] {
            guard case .object(let pairs) = names else { return nil }
            var out: [String: String] = [:]
            for (name, value) in pairs {
                guard let text = value.string else { return nil }
                out[name] = text
            }
            request.ExpressionAttributeNames = out
        }
        if let values = m["ExpressionAttributeValues"] {
            guard let value = DynamoJSON.item(values) else { return nil }
            request.ExpressionAttributeValues = value
        }
        return request
    }
}

struct StreamArnRequest: Codable, Sendable { var StreamArn: String }
struct ListStreamsRequest: Codable, Sendable { var TableName: String? }
struct GetShardIteratorRequest: Codable, Sendable {
    var StreamArn: String
    var ShardId: String
    var ShardIteratorType: String
    var SequenceNumber: String?
}
/// `WaitTimeMilliseconds` is a Nimbus extension (DynamoDB Streams has no long poll): with no record
/// to return, the answer waits up to that long for one to be written (0..20,000; default 0).
struct GetRecordsRequest: Codable, Sendable { var ShardIterator: String; var Limit: Int?; var WaitTimeMilliseconds: Int? }

/// A shard iterator: where to read next, opaque to clients, valid 15 minutes.
struct ShardIterator: Codable, Sendable {
    var table: String
    /// The stream's label: GetRecords is authorized on `table/NAME/stream/LABEL`, as in AWS, and an
    /// iterator of a stream the table no longer has is refused. nil in iterators issued before the
    /// label was recorded (valid 15 minutes; authorized on `stream/*`).
    var stream: String?
    var shard: Int
    var after: UInt64
    var issued: Double

    var encoded: String { (try? JSONEncoder().encode(self))?.base64EncodedString() ?? "" }

    init(table: String, stream: String?, shard: Int, after: UInt64, issued: Double) {
        self.table = table
        self.stream = stream
        self.shard = shard
        self.after = after
        self.issued = issued
    }

    init?(_ text: String) {
        guard let data = Data(base64Encoded: text), let me = try? JSONDecoder().decode(ShardIterator.self, from: data) else { return nil }
        self = me
    }
}

enum StreamNames {
    static func shardID(_ shard: Int) -> String { "shardId-00000000000000000000-" + String(format: "%08d", shard) }
    static func shard(fromID id: String) -> Int? { id.hasPrefix("shardId-") ? Int(id.suffix(8)) : nil }
}

struct ReadManyRequest: Codable, Sendable {
    var TableName: String
    var KeyConditionExpression: String?
    var FilterExpression: String?
    var ProjectionExpression: String?
    /// ALL_ATTRIBUTES (the default without a ProjectionExpression), SPECIFIC_ATTRIBUTES (with one),
    /// COUNT (Count and ScannedCount, no Items); ALL_PROJECTED_ATTRIBUTES needs an index.
    var Select: String?
    /// Query's: false reads the partition in descending sort key order.
    var ScanIndexForward: Bool?
    var ExpressionAttributeNames: [String: String]?
    var ExpressionAttributeValues: [String: AttributeValue]?
    var Limit: Int?
    var ExclusiveStartKey: Item?
}

struct ReadManyResponse: Codable, Sendable {
    /// nil with Select COUNT.
    var Items: [Item]?
    var Count: Int
    var ScannedCount: Int
    var LastEvaluatedKey: Item?
}

struct BatchWriteRequest: Codable, Sendable {
    struct Put: Codable, Sendable { var Item: Item }
    struct Delete: Codable, Sendable { var Key: Item }
    struct Entry: Codable, Sendable { var PutRequest: Put?; var DeleteRequest: Delete? }
    var RequestItems: [String: [Entry]]
}

struct BatchGetRequest: Codable, Sendable {
    struct Keys: Codable, Sendable { var Keys: [Item]; var ProjectionExpression: String?; var ExpressionAttributeNames: [String: String]? }
    var RequestItems: [String: Keys]
}

/// TransactWriteItems: each entry holds exactly one of Put, Update, Delete and ConditionCheck.
struct TransactWriteRequest: Codable, Sendable {
    /// A Put, Update, Delete or ConditionCheck has the members of the single-item requests.
    typealias Operation = WriteRequest
    struct Entry: Codable, Sendable { var Put: Operation?; var Update: Operation?; var Delete: Operation?; var ConditionCheck: Operation? }
    var TransactItems: [Entry]
    var ClientRequestToken: String?

    /// A transaction whose items are `WriteRequest.fast`'s kind (the ingest worker's puts), read
    /// without JSONDecoder; nil for anything else, which JSONDecoder then reads (and reports on).
    static func fast(_ data: Data) -> TransactWriteRequest? {
        guard let m = StringJSON.parse(data)?.members(allowed: ["TransactItems"]), let items = m["TransactItems"]?.array else { return nil }
        var entries: [Entry] = []
        entries.reserveCapacity(items.count)
        for item in items {
            guard let ops = item.members(allowed: ["Put", "Update", "Delete", "ConditionCheck"]), ops.values.count == 1,
                  let op = WriteRequest.fast(ops.values[0]) else { return nil }
            entries.append(Entry(Put: ops["Put"] == nil ? nil : op, Update: ops["Update"] == nil ? nil : op,
                                 Delete: ops["Delete"] == nil ? nil : op, ConditionCheck: ops["ConditionCheck"] == nil ? nil : op))
        }
        return TransactWriteRequest(TransactItems: entries, ClientRequestToken: nil)
    }
}

struct TransactGetRequest: Codable, Sendable {
    struct Get: Codable, Sendable {
        var TableName: String
        var Key: Item
        var ProjectionExpression: String?
        var ExpressionAttributeNames: [String: String]?
    }
    struct Entry: Codable, Sendable { var Get: Get }
    var TransactItems: [Entry]
}

/// What the authorizer needs of a transaction, read without its items' values: each entry's kind
/// and table.
struct TransactTables: Decodable {
    struct Named: Decodable { var TableName: String }
    struct Entry: Decodable { var Put: Named?; var Update: Named?; var Delete: Named?; var ConditionCheck: Named?; var Get: Named? }
    var TransactItems: [Entry]
}
