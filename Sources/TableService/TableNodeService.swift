import Crypto
import Foundation
import Logging
import NimbusRuntime
import NimbusStack
import ServiceLifecycle
import TableCore

/// The table node: DynamoDB's item actions and DynamoDB Streams' read actions over the runtime.
public struct TableNodeService: NodeService {
    let engine: TableEngine
    let configuration: NodeConfiguration
    /// Stream shards per new table (records of one partition key always go to the same shard).
    let shards: Int

    public static let actionNames: Set<String> = [
        "dynamodb:CreateTable", "dynamodb:DescribeTable", "dynamodb:UpdateTable", "dynamodb:DeleteTable", "dynamodb:ListTables",
        "dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:Query", "dynamodb:BatchWriteItem", "dynamodb:BatchGetItem", "dynamodb:ListStreams", "dynamodb:DescribeStream", "dynamodb:GetShardIterator", "dynamodb:GetRecords",
        "dynamodb:TransactWriteItems", "dynamodb:TransactGetItems",
    ]

    /// The table or stream a request acts on: StreamArn, else the stream its ShardIterator reads
    /// (`table/NAME/stream/LABEL`), else TableName.
    public func resourceARN(for request: InboundRequest, runtime: NodeRuntime) -> String? {
        let base = tableARNPrefix
        if let stream = JSONFields.topLevelString("StreamArn", in: request.body) { return stream }
        if let text = JSONFields.topLevelString("ShardIterator", in: request.body) {
            return ShardIterator(text).map { base + $0.table + "/stream/" + ($0.stream ?? "*") }
        }
        return JSONFields.topLevelString("TableName", in: request.body).map { base + $0 }
    }

    /// BatchWriteItem and BatchGetItem are authorized, as in AWS, on each table their RequestItems
    /// name (a policy allowing only table/orders does not let a batch touch another table).
    public func resourceARNs(for request: InboundRequest, runtime: NodeRuntime) -> [String] {
        guard request.header.action == "dynamodb:BatchWriteItem" || request.header.action == "dynamodb:BatchGetItem" else {
            return [resourceARN(for: request, runtime: runtime) ?? "*"]
        }
        // Without a readable RequestItems the service refuses the request anyway.
        guard let tables = JSONFields.topLevelObjectKeys("RequestItems", in: request.body), !tables.isEmpty else { return ["*"] }
        var seen = Set<String>()
        return tables.filter { seen.insert($0).inserted }.map { tableARNPrefix + $0 }
    }

    /// A transaction is authorized, as in AWS, item by item: each Put, Update, Delete, ConditionCheck
    /// or Get as dynamodb:PutItem, UpdateItem, DeleteItem, ConditionCheckItem or GetItem on its table.
    public func authorizationChecks(for request: InboundRequest, runtime: NodeRuntime) -> [(action: String, resource: String)]? {
        guard request.header.action == "dynamodb:TransactWriteItems" || request.header.action == "dynamodb:TransactGetItems" else { return nil }
        // Without readable TransactItems the service refuses the request anyway.
        guard let parsed = try? JSONDecoder().decode(TransactTables.self, from: request.body), !parsed.TransactItems.isEmpty else {
            return [(request.header.action!, "*")]
        }
        var checks: [(action: String, resource: String)] = []
        for entry in parsed.TransactItems {
            let named: [(String, TransactTables.Named?)] = [("dynamodb:PutItem", entry.Put), ("dynamodb:UpdateItem", entry.Update),
                                                             ("dynamodb:DeleteItem", entry.Delete), ("dynamodb:ConditionCheckItem", entry.ConditionCheck),
                                                             ("dynamodb:GetItem", entry.Get)]
            for case let (action, table?) in named where !checks.contains(where: { $0 == (action, tableARNPrefix + table.TableName) }) {
                checks.append((action, tableARNPrefix + table.TableName))
            }
        }
        return checks.isEmpty ? [(request.header.action!, "*")] : checks
    }

    private var tableARNPrefix: String { "arn:aws:dynamodb:\(configuration.cluster.region):\(configuration.cluster.account):table/" }

    public init(configuration: NodeConfiguration) throws {
        self.configuration = configuration
        self.shards = configuration.cluster.table.streamShards
        let store = try TableStore(path: configuration.stateFile("table"))
        let (tables, items, sequences, tokens) = try store.load()
        var core = Tables(region: configuration.cluster.region, account: configuration.cluster.account)
        core.restore(tables: tables, items: items, lastSequences: sequences, transactionTokens: tokens)
        engine = TableEngine(tables: core, store: store, logger: Logger(label: "table"))
    }

    public var actions: Set<String> { Self.actionNames }

    /// Refused while the disk or memory alarm is raised; receives, reads and deletes go on.
    /// Per table, item writes committed since the process started (`itemWrites.<table>`) and, for a
    /// table with a stream, the records it ever appended (`streamRecords.<table>`, durable): what the
    /// console differences into rates and the stream's lag.
    public func healthDetails() async -> [String: String] {
        var details: [String: String] = [:]
        for (table, count) in engine.watch.itemWrites { details["itemWrites.\(table)"] = String(count) }
        for (table, head) in await engine.read({ t in t.streamHeads }) { details["streamRecords.\(table)"] = String(head) }
        return details
    }

    public var growingActions: Set<String> { ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem", "dynamodb:TransactWriteItems"] }

    public func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data {
        do {
            return try await serve(request)
        } catch var error as TableError where error.item != nil {
            // A failed condition's item goes back only to a request asking for it, as in DynamoDB.
            if JSONFields.topLevelString("ReturnValuesOnConditionCheckFailure", in: request.body) != "ALL_OLD" { error.item = nil }
            throw error
        }
    }

    func serve(_ request: InboundRequest) async throws -> Data {
        // Only the rarer actions use it; PutItem and GetItem write their answers by hand.
        var encoder: JSONEncoder {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .withoutEscapingSlashes
            return encoder
        }
        switch request.header.action {
        case "dynamodb:CreateTable":
            let r = try decode(request, CreateTableRequest.self)
            return try encoder.encode(["TableDescription": try await createTable(r)])
        case "dynamodb:DescribeTable":
            let r = try decode(request, TableNameRequest.self)
            let description = try await engine.read { t in
                TableDescription(try t.describe(r.TableName), arn: t.arn(r.TableName), itemCount: t.itemCount(r.TableName),
                                 sizeBytes: t.sizeBytes(r.TableName))
            }
            return try encoder.encode(["Table": description])
        case "dynamodb:UpdateTable":
            let r = try decode(request, UpdateTableRequest.self)
            guard let spec = r.StreamSpecification else {
                throw TableError.validation("UpdateTable needs a StreamSpecification (the only setting a Nimbus table has to change)")
            }
            let enabled = spec.StreamEnabled ?? (spec.StreamViewType != nil)
            let description = try await engine.perform { t, now, changes in
                let d = try t.updateStream(r.TableName, enabled: enabled, viewType: spec.StreamViewType, now: now, changes: &changes)
                return TableDescription(d, arn: t.arn(d.name), itemCount: t.itemCount(d.name), sizeBytes: t.sizeBytes(d.name))
            }
            return try encoder.encode(["TableDescription": description])
        case "dynamodb:DeleteTable":
            let r = try decode(request, TableNameRequest.self)
            var description = try await engine.perform { t, _, changes in
                let count = t.itemCount(r.TableName), size = t.sizeBytes(r.TableName)
                let d = try t.deleteTable(r.TableName, changes: &changes)
                return TableDescription(d, arn: t.arn(d.name), itemCount: count, sizeBytes: size)
            }
            description.TableStatus = "DELETING"
            return try encoder.encode(["TableDescription": description])
        case "dynamodb:UpdateItem":
            let r = try WriteRequest.fast(request.body) ?? decode(request, WriteRequest.self)
            guard let key = r.Key else { throw TableError.validation("The request must contain Key") }
            guard let text = r.UpdateExpression else {
                throw TableError.validation("UpdateItem needs an UpdateExpression (AttributeUpdates is not supported)")
            }
            try Self.checkReturnOnFailure(r.ReturnValuesOnConditionCheckFailure)
            let (update, condition) = try Self.parseUpdate(text, condition: r.ConditionExpression, names: r.ExpressionAttributeNames,
                                                           values: r.ExpressionAttributeValues)
            let (old, new) = try await engine.perform { t, now, changes in
                try t.updateItem(r.TableName, key: key, update: update, condition: condition, now: now, changes: &changes)
            }
            let touched = Set(update.actions.compactMap { action -> String? in
                if case .name(let n)? = action.path.first { return n } else { return nil }
            })
            let attributes: Item?
            switch r.ReturnValues ?? "NONE" {
            case "NONE": attributes = nil
            case "ALL_OLD": attributes = old
            case "ALL_NEW": attributes = new
            case "UPDATED_OLD": attributes = old?.filter { touched.contains($0.key) }
            case "UPDATED_NEW": attributes = new?.filter { touched.contains($0.key) }
            default: throw TableError.validation("ReturnValues must be one of NONE, ALL_OLD, UPDATED_OLD, ALL_NEW, UPDATED_NEW")
            }
            return try encoder.encode(attributes.flatMap { $0.isEmpty ? nil : ["Attributes": $0] } ?? [:])
        case "dynamodb:ListTables":
            let r = try decode(request, ListTablesRequest.self)
            let (names, last) = try await engine.read { t in try t.listTables(limit: r.Limit, exclusiveStart: r.ExclusiveStartTableName) }
            return try encoder.encode(ListTablesResponse(TableNames: names, LastEvaluatedTableName: last))
        case "dynamodb:PutItem":
            let r = try WriteRequest.fast(request.body) ?? decode(request, WriteRequest.self)
            guard let item = r.Item else { throw TableError.validation("1 validation error detected: Value null at 'item' failed to satisfy constraint: Member must not be null") }
            try Self.checkReturnOnFailure(r.ReturnValuesOnConditionCheckFailure)
            let condition = try r.ConditionExpression.map { try ConditionParser.parse($0, names: r.ExpressionAttributeNames, values: r.ExpressionAttributeValues) }
            let old = try await engine.perform { t, now, changes in try t.putItem(r.TableName, item, condition: condition, now: now, changes: &changes) }
            return Self.answer("Attributes", r.ReturnValues == "ALL_OLD" ? old : nil)
        case "dynamodb:GetItem":
            let r = try WriteRequest.fast(request.body) ?? decode(request, WriteRequest.self)
            guard let key = r.Key else { throw TableError.validation("The request must contain Key") }
            let projection = try Self.projection(r.ProjectionExpression, names: r.ExpressionAttributeNames)
            let item = try await engine.readItems { t in try t.getItem(r.TableName, key: key) }
            return Self.answer("Item", projection.flatMap { p in item.map(p.apply) } ?? item)
        case "dynamodb:DeleteItem":
            let r = try WriteRequest.fast(request.body) ?? decode(request, WriteRequest.self)
            guard let key = r.Key else { throw TableError.validation("The request must contain Key") }
            try Self.checkReturnOnFailure(r.ReturnValuesOnConditionCheckFailure)
            let condition = try r.ConditionExpression.map { try ConditionParser.parse($0, names: r.ExpressionAttributeNames, values: r.ExpressionAttributeValues) }
            let old = try await engine.perform { t, now, changes in try t.deleteItem(r.TableName, key: key, condition: condition, now: now, changes: &changes) }
            return Self.answer("Attributes", r.ReturnValues == "ALL_OLD" ? old : nil)
        case "dynamodb:Scan", "dynamodb:Query":
            let r = try decode(request, ReadManyRequest.self)
            func parse(_ text: String?, _ expression: String) throws -> Condition? {
                do {
                    return try text.map { try ConditionParser.parse($0, names: r.ExpressionAttributeNames, values: r.ExpressionAttributeValues, checkUnused: false) }
                } catch let error as TableError {
                    throw error.about(expression)
                }
            }
            let filter = try parse(r.FilterExpression, "FilterExpression")
            let keyCondition = try parse(r.KeyConditionExpression, "KeyConditionExpression")
            let isQuery = request.header.action == "dynamodb:Query"
            if isQuery && keyCondition == nil { throw TableError.validation("Query needs a KeyConditionExpression") }
            let projection = try Self.projection(r.ProjectionExpression, names: r.ExpressionAttributeNames, checkUnused: false)
            let countOnly = try Self.selectsCount(r.Select, projection: r.ProjectionExpression != nil)
            let forward = r.ScanIndexForward ?? true
            let page = try await engine.readItems { t in
                isQuery ? try t.query(r.TableName, keyCondition: keyCondition!, filter: filter, limit: r.Limit, exclusiveStartKey: r.ExclusiveStartKey,
                                      scanIndexForward: forward)
                    : try t.scan(r.TableName, filter: filter, limit: r.Limit, exclusiveStartKey: r.ExclusiveStartKey)
            }
            let items = countOnly ? nil : projection.map { p in page.items.map(p.apply) } ?? page.items
            return try encoder.encode(ReadManyResponse(Items: items, Count: page.items.count, ScannedCount: page.scannedCount,
                                                       LastEvaluatedKey: page.lastEvaluatedKey))
        case "dynamodb:BatchWriteItem":
            let r = try decode(request, BatchWriteRequest.self)
            let writes = r.RequestItems.mapValues { $0.map { (put: $0.PutRequest?.Item, delete: $0.DeleteRequest?.Key) } }
            try await engine.perform { t, now, changes in try t.batchWrite(writes, now: now, changes: &changes) }
            return Data(#"{"UnprocessedItems":{}}"#.utf8)
        case "dynamodb:TransactWriteItems":
            let r = try TransactWriteRequest.fast(request.body) ?? decode(request, TransactWriteRequest.self)
            let actions = try r.TransactItems.map(Self.transactWrite)
            let token = try r.ClientRequestToken.map { token in (token: token, fingerprint: try Self.fingerprint(token, r.TransactItems)) }
            do {
                try await engine.perform { t, now, changes in try t.transactWrite(actions, token: token, now: now, changes: &changes) }
            } catch var error as TableError where error.cancellationReasons != nil {
                // Each failed action's item goes back only when that action asked for it (ALL_OLD).
                for (i, entry) in r.TransactItems.enumerated() where i < error.cancellationReasons!.count {
                    let op = entry.Put ?? entry.Update ?? entry.Delete ?? entry.ConditionCheck
                    if op?.ReturnValuesOnConditionCheckFailure != "ALL_OLD" { error.cancellationReasons![i].item = nil }
                }
                throw error
            }
            return Data("{}".utf8)
        case "dynamodb:TransactGetItems":
            let r = try decode(request, TransactGetRequest.self)
            let projections = try r.TransactItems.map { try Self.projection($0.Get.ProjectionExpression, names: $0.Get.ExpressionAttributeNames) }
            let found = try await engine.readItems { t in try t.transactGet(r.TransactItems.map { ($0.Get.TableName, $0.Get.Key) }) }
            struct Response: Encodable { var Item: Item? }
            return try encoder.encode(["Responses": zip(found, projections).map { item, p in Response(Item: p.flatMap { p in item.map(p.apply) } ?? item) }])
        case "dynamodb:BatchGetItem":
            let r = try decode(request, BatchGetRequest.self)
            let projections = try r.RequestItems.compactMapValues { try Self.projection($0.ProjectionExpression, names: $0.ExpressionAttributeNames) }
            var found = try await engine.readItems { t in try t.batchGet(r.RequestItems.mapValues(\.Keys)) }
            for (table, p) in projections { found[table] = found[table]?.map(p.apply) }
            struct Out: Encodable { var Responses: [String: [Item]]; var UnprocessedKeys: [String: [Item]] = [:] }
            return try encoder.encode(Out(Responses: found))
        case "dynamodb:ListStreams":
            let r = try decode(request, ListStreamsRequest.self)
            let streams = await engine.read { t in
                t.allTables.filter { $0.streamLabel != nil && (r.TableName == nil || $0.name == r.TableName) }
                    .map { d -> [String: String] in ["StreamArn": "\(t.arn(d.name))/stream/\(d.streamLabel!)", "TableName": d.name, "StreamLabel": d.streamLabel!] }
            }
            return try encoder.encode(["Streams": streams])
        case "dynamodb:DescribeStream":
            let r = try decode(request, StreamArnRequest.self)
            let d = try await table(forStream: r.StreamArn)
            struct Shard: Encodable { var ShardId: String; var SequenceNumberRange: [String: String] }
            // Every shard is open while the stream is on, numbered from 1; a disabled stream's shards
            // are closed at their last record.
            let shardList = try (0..<d.shards).map { shard -> Shard in
                var range = ["StartingSequenceNumber": Tables.sequenceNumber(shard: shard, counter: 1)]
                if d.streamViewType == nil {
                    range["EndingSequenceNumber"] = Tables.sequenceNumber(shard: shard, counter: try engine.store.lastSequence(table: d.name, shard: shard))
                }
                return Shard(ShardId: StreamNames.shardID(shard), SequenceNumberRange: range)
            }
            struct Description: Encodable { var StreamDescription: [String: AnyEncodable] }
            var body: [String: AnyEncodable] = [
                "StreamArn": .init(r.StreamArn), "StreamLabel": .init(d.streamLabel ?? ""), "StreamStatus": .init(d.streamViewType == nil ? "DISABLED" : "ENABLED"),
                "StreamViewType": .init(d.streamViewType ?? ""), "TableName": .init(d.name), "Shards": .init(shardList),
                "KeySchema": .init([KeySchemaElement(AttributeName: d.partitionKey.name, KeyType: "HASH")]
                                   + (d.sortKey.map { [KeySchemaElement(AttributeName: $0.name, KeyType: "RANGE")] } ?? [])),
            ]
            if let created = d.streamLabel.flatMap(Tables.labelDate) { body["CreationRequestDateTime"] = .init(created) }
            return try encoder.encode(Description(StreamDescription: body))
        case "dynamodb:GetShardIterator":
            let r = try decode(request, GetShardIteratorRequest.self)
            let d = try await table(forStream: r.StreamArn)
            guard let shard = StreamNames.shard(fromID: r.ShardId), shard < d.shards else {
                throw TableError("ResourceNotFoundException", "Requested resource not found: Shard does not exist")
            }
            let after: UInt64
            switch r.ShardIteratorType {
            case "TRIM_HORIZON": after = try engine.store.trimmedThrough(table: d.name, shard: shard)
            case "LATEST": after = try engine.store.lastSequence(table: d.name, shard: shard)
            case "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER":
                guard let text = r.SequenceNumber, text.count > 20, let n = UInt64(text.suffix(20)) else {
                    throw TableError.validation("SequenceNumber is required and must be a sequence number of this shard")
                }
                after = r.ShardIteratorType == "AT_SEQUENCE_NUMBER" ? max(n, 1) - 1 : n
                let trimmed = try engine.store.trimmedThrough(table: d.name, shard: shard)
                if after < trimmed { throw Self.trimmedError(r.SequenceNumber ?? "") }
            default:
                throw TableError.validation("Member must satisfy enum value set: [TRIM_HORIZON, LATEST, AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER]")
            }
            return try encoder.encode(["ShardIterator": ShardIterator(table: d.name, stream: d.streamLabel, shard: shard, after: after, issued: TableEngine.now()).encoded])
        case "dynamodb:GetRecords":
            let r = try decode(request, GetRecordsRequest.self)
            guard let iterator = ShardIterator(r.ShardIterator) else { throw TableError.validation("Invalid ShardIterator") }
            if TableEngine.now() - iterator.issued > 15 * 60 {
                throw TableError("ExpiredIteratorException", "Iterator expired. The iterator was created at time \(iterator.issued) while right now the time is \(TableEngine.now())")
            }
            // The stream authorized (the iterator's) must be the one read: the table's current stream.
            if let label = iterator.stream { _ = try await table(forStream: tableARNPrefix + iterator.table + "/stream/" + label) }
            let limit = r.Limit ?? 1000
            guard (1...1000).contains(limit) else { throw TableError.validation("Limit must be between 1 and 1000") }
            // Records this iterator would read next were trimmed (older than the retention) since it was issued.
            if iterator.after < (try engine.store.trimmedThrough(table: iterator.table, shard: iterator.shard)) {
                throw Self.trimmedError(String(iterator.after + 1))
            }
            var (records, last) = try engine.store.records(table: iterator.table, shard: iterator.shard, after: iterator.after, limit: limit)
            let wait = r.WaitTimeMilliseconds ?? 0
            guard (0...20_000).contains(wait) else { throw TableError.validation("WaitTimeMilliseconds must be between 0 and 20000") }
            if records.isEmpty && wait > 0 {
                await engine.waitForRecords(table: iterator.table, shard: iterator.shard, after: iterator.after, timeout: .milliseconds(wait))
                (records, last) = try engine.store.records(table: iterator.table, shard: iterator.shard, after: iterator.after, limit: limit)
            }
            let next = ShardIterator(table: iterator.table, stream: iterator.stream, shard: iterator.shard, after: last, issued: TableEngine.now())
            // The stored records are already in GetRecords' shape: spliced in as bytes, not re-encoded.
            var out = Data("{\"Records\":[".utf8)
            for (i, record) in records.enumerated() {
                if i > 0 { out.append(0x2C) }
                out.append(record)
            }
            out.append(contentsOf: Array("],\"NextShardIterator\":\"\(next.encoded)\"}".utf8))
            return out
        default:
            throw WireError(.invalidAction, "\(request.header.action ?? "") is not a DynamoDB action")
        }
    }

    /// PutItem's, UpdateItem's and DeleteItem's ReturnValuesOnConditionCheckFailure: NONE or ALL_OLD.
    static func checkReturnOnFailure(_ mode: String?) throws {
        guard let mode, mode != "NONE", mode != "ALL_OLD" else { return }
        throw TableError.validation("1 validation error detected: Value '\(mode)' at 'returnValuesOnConditionCheckFailure' failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]")
    }

    /// A request's ProjectionExpression (nil without one). With `checkUnused`, every name given
    /// must be used by it (the request's only expression: GetItem, BatchGetItem, TransactGetItems).
    static func projection(_ text: String?, names: [String: String]?, checkUnused: Bool = true) throws -> Projection? {
        guard let text else { return nil }
        let (projection, used) = try ProjectionParser.parse(text, names: names)
        if checkUnused { try ConditionParser.checkAllUsed(names: names, values: nil, usedNames: used, usedValues: []) }
        return projection
    }

    /// Query's and Scan's Select: true for COUNT (Count and ScannedCount only). A ProjectionExpression
    /// means SPECIFIC_ATTRIBUTES; ALL_PROJECTED_ATTRIBUTES needs an index, which Nimbus tables do not have.
    static func selectsCount(_ select: String?, projection: Bool) throws -> Bool {
        switch select ?? (projection ? "SPECIFIC_ATTRIBUTES" : "ALL_ATTRIBUTES") {
        case "ALL_ATTRIBUTES", "COUNT":
            if projection { throw TableError.validation("Cannot specify the ProjectionExpression when choosing to get \(select!)") }
            return select == "COUNT"
        case "SPECIFIC_ATTRIBUTES":
            if !projection { throw TableError.validation("Must specify the AttributesToGet or ProjectionExpression when choosing to get SPECIFIC_ATTRIBUTES") }
            return false
        case "ALL_PROJECTED_ATTRIBUTES":
            throw TableError.validation("ALL_PROJECTED_ATTRIBUTES can be used only when Querying using an IndexName")
        default:
            throw TableError.validation("1 validation error detected: Value '\(select!)' at 'select' failed to satisfy constraint: Member must satisfy enum value set: [SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES]")
        }
    }

    static func trimmedError(_ position: String) -> TableError {
        TableError("TrimmedDataAccessException", "The operation attempted to read past the oldest stream record in a shard (records before \(position) were trimmed: older than the retention period)")
    }

    /// `{"<member>": item}`, or `{}` without an item, in DynamoDB JSON written by hand.
    static func answer(_ member: StaticString, _ item: Item?) -> Data {
        guard let item else { return Data("{}".utf8) }
        var out: [UInt8] = [0x7B, 0x22]
        JSONText.append(member, to: &out)
        JSONText.append("\":", to: &out)
        DynamoJSON.append(item, to: &out)
        out.append(0x7D)
        return Data(out)
    }

    /// One TransactItems entry as the core's action, its expressions parsed and checked as PutItem's,
    /// UpdateItem's and DeleteItem's are.
    static func transactWrite(_ entry: TransactWriteRequest.Entry) throws -> Tables.TransactWrite {
        let given = [entry.Put, entry.Update, entry.Delete, entry.ConditionCheck].compactMap { $0 }
        guard given.count == 1, let op = given.first else {
            throw TableError.validation("Each TransactItems entry needs exactly one of Put, Update, Delete and ConditionCheck")
        }
        try checkReturnOnFailure(op.ReturnValuesOnConditionCheckFailure)
        let names = op.ExpressionAttributeNames, values = op.ExpressionAttributeValues
        func condition() throws -> Condition? { try op.ConditionExpression.map { try ConditionParser.parse($0, names: names, values: values) } }
        if entry.Put != nil {
            guard let item = op.Item else { throw TableError.validation("A Put in TransactItems needs an Item") }
            return .put(table: op.TableName, item: item, condition: try condition())
        }
        guard let key = op.Key else { throw TableError.validation("An Update, Delete or ConditionCheck in TransactItems needs a Key") }
        if entry.Delete != nil { return .delete(table: op.TableName, key: key, condition: try condition()) }
        if entry.ConditionCheck != nil {
            guard let checked = try condition() else { throw TableError.validation("A ConditionCheck in TransactItems needs a ConditionExpression") }
            return .conditionCheck(table: op.TableName, key: key, condition: checked)
        }
        guard let text = op.UpdateExpression else { throw TableError.validation("An Update in TransactItems needs an UpdateExpression") }
        let (update, parsed) = try parseUpdate(text, condition: op.ConditionExpression, names: names, values: values)
        return .update(table: op.TableName, key: key, update: update, condition: parsed)
    }

    /// What a transaction with a ClientRequestToken asks for, to tell a repeat (the same items) from
    /// another request reusing the token: SHA-256 of its items in a canonical JSON (sorted keys), so
    /// the digest is the same after a restart and whatever order the client wrote its members in.
    static func fingerprint(_ token: String, _ items: [TransactWriteRequest.Entry]) throws -> String {
        guard (1...36).contains(token.count) else {
            throw TableError.validation("1 validation error detected: Value at 'clientRequestToken' failed to satisfy constraint: Member must have length less than or equal to 36 and greater than or equal to 1")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return SHA256.hash(data: try encoder.encode(items)).withUnsafeBytes { Hex.encode($0) }
    }

    /// An UpdateExpression and its optional ConditionExpression, which share the placeholders: every
    /// name and value given must be used by one of the two.
    static func parseUpdate(_ text: String, condition: String?, names: [String: String]?, values: [String: AttributeValue]?) throws
        -> (UpdateExpression, Condition?) {
        let update = try UpdateParser.parse(text, names: names, values: values)
        var usedNames = update.usedNames, usedValues = update.usedValues
        var parsed: Condition?
        if let condition {
            let kept = try ConditionParser.parseKeepingPlaceholders(condition, names: names, values: values)
            usedNames.formUnion(kept.usedNames)
            usedValues.formUnion(kept.usedValues)
            parsed = kept.condition
        }
        try ConditionParser.checkAllUsed(names: names, values: values, usedNames: usedNames, usedValues: usedValues)
        return (update.expression, parsed)
    }

    /// Request bodies: an invalid attribute value is a ValidationException, as DynamoDB says it.
    private func decode<T: Decodable>(_ request: InboundRequest, _ type: T.Type) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: request.body)
        } catch let DecodingError.dataCorrupted(context) where context.underlyingError is TableError {
            throw context.underlyingError as! TableError
        } catch let error as TableError {
            throw error
        } catch {
            return try request.decode(T.self)
        }
    }

    private func table(forStream arn: String) async throws -> TableSchema {
        try await engine.read { t in
            guard let d = t.allTables.first(where: { $0.streamLabel != nil && "\(t.arn($0.name))/stream/\($0.streamLabel!)" == arn }) else {
                throw TableError("ResourceNotFoundException", "Requested resource not found: Stream: \(arn) not found")
            }
            return d
        }
    }

    private func createTable(_ r: CreateTableRequest) async throws -> TableDescription {
        func key(_ type: String) throws -> TableSchema.KeyAttribute? {
            guard let element = r.KeySchema.first(where: { $0.KeyType == type }) else { return nil }
            guard let definition = r.AttributeDefinitions.first(where: { $0.AttributeName == element.AttributeName }) else {
                throw TableError.validation("One or more parameter values were invalid: Some index key attributes are not defined in AttributeDefinitions. Keys: [\(element.AttributeName)]")
            }
            return .init(name: element.AttributeName, type: definition.AttributeType)
        }
        guard let partition = try key("HASH"), r.KeySchema.count <= 2 else {
            throw TableError.validation("1 validation error detected: KeySchema must have one HASH key and at most one RANGE key")
        }
        let sort = try key("RANGE")
        if r.AttributeDefinitions.count != r.KeySchema.count {
            throw TableError.validation("One or more parameter values were invalid: Number of attributes in KeySchema does not exactly match number of attributes defined in AttributeDefinitions")
        }
        let enabled = r.StreamSpecification.map { $0.StreamEnabled ?? ($0.StreamViewType != nil) } ?? false
        if enabled && r.StreamSpecification?.StreamViewType == nil {
            throw TableError.validation("StreamViewType is required when the stream is enabled")
        }
        let view = enabled ? r.StreamSpecification?.StreamViewType : nil
        let shards = self.shards
        return try await engine.perform { t, now, changes in
            let d = try t.createTable(name: r.TableName, partitionKey: partition, sortKey: sort, streamViewType: view, shards: shards, now: now, changes: &changes)
            return TableDescription(d, arn: t.arn(d.name), itemCount: 0, sizeBytes: 0)
        }
    }

    public func run(runtime: NodeRuntime) async throws {
        do { try await applyStack() } catch { runtime.logger.error("stack: \(error)") }
        // Trim the streams' expired records now and then (a quarter of the retention, at most a minute).
        let retention = configuration.cluster.table.streamRetentionHours * 3600
        let interval = min(60, retention / 4)
        while !Task.isCancelled {
            do {
                let trimmed = try engine.store.trim(before: TableEngine.now() - retention)
                if trimmed > 0 { runtime.logger.info("trimmed \(trimmed) stream records older than \(retention) s") }
            } catch { runtime.logger.error("trim: \(error)") }
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(interval)) }
            } catch { break }
        }
    }

    /// Creates the stack's AWS::DynamoDB::Table resources through CreateTable, when missing.
    func applyStack() async throws {
        guard let file = configuration.stackFile, FileManager.default.fileExists(atPath: file.path) else { return }
        let template = try StackTemplate.load(path: file.path)
        let resolver = StackResolver(template: template, region: configuration.cluster.region, account: configuration.cluster.account)
        for resource in template.resources(ofType: "AWS::DynamoDB::Table") {
            let json = try resolver.jsonText(.map(resource.properties))
            let create = try JSONDecoder().decode(CreateTableRequest.self, from: Data(json.utf8))
            let exists = await engine.read { t in (try? t.describe(create.TableName)) != nil }
            if !exists { _ = try await createTable(create) }
        }
    }
}

/// A type-erased Encodable for the few mixed-type bodies.
struct AnyEncodable: Encodable {
    let value: any Encodable
    init(_ value: any Encodable) { self.value = value }
    func encode(to encoder: Encoder) throws { try value.encode(to: encoder) }
}
