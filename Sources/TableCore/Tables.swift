import Foundation
import NimbusProtocol

/// A table's definition, as DescribeTable tells it.
public struct TableSchema: Codable, Equatable, Sendable {
    public var name: String
    public var partitionKey: KeyAttribute
    public var sortKey: KeyAttribute?
    public var streamViewType: String?   // nil: stream off; KEYS_ONLY | NEW_IMAGE | OLD_IMAGE | NEW_AND_OLD_IMAGES
    public var streamLabel: String?
    public var shards: Int
    public var createdAt: Double

    public struct KeyAttribute: Codable, Equatable, Sendable {
        public var name: String
        public var type: String  // S | N | B
        public init(name: String, type: String) {
            self.name = name
            self.type = type
        }
    }

    public var keyNames: [String] { [partitionKey.name] + (sortKey.map { [$0.name] } ?? []) }
}

/// One stream record, in DynamoDB Streams' shape.
public struct StreamRecord: Codable, Equatable, Sendable {
    public var eventID: String
    public var eventName: String
    public var eventVersion = "1.1"
    public var eventSource = "aws:dynamodb"
    public var awsRegion: String
    public var dynamodb: Body
    /// The stream's ARN, as Lambda's event source mappings see it.
    public var eventSourceARN: String
    /// Not part of the record's JSON: stored beside it.
    public var shard: Int

    /// The JSON is the record exactly as GetRecords serves it, so the store can hand it out as bytes.
    enum CodingKeys: String, CodingKey {
        case eventID, eventName, eventVersion, eventSource, awsRegion, dynamodb, eventSourceARN
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        eventID = try c.decode(String.self, forKey: .eventID)
        eventName = try c.decode(String.self, forKey: .eventName)
        eventVersion = try c.decode(String.self, forKey: .eventVersion)
        eventSource = try c.decode(String.self, forKey: .eventSource)
        awsRegion = try c.decode(String.self, forKey: .awsRegion)
        dynamodb = try c.decode(Body.self, forKey: .dynamodb)
        eventSourceARN = try c.decode(String.self, forKey: .eventSourceARN)
        shard = 0
    }

    init(eventID: String, eventName: String, awsRegion: String, dynamodb: Body, eventSourceARN: String, shard: Int) {
        self.eventID = eventID
        self.eventName = eventName
        self.awsRegion = awsRegion
        self.dynamodb = dynamodb
        self.eventSourceARN = eventSourceARN
        self.shard = shard
    }

    public struct Body: Codable, Equatable, Sendable {
        public var ApproximateCreationDateTime: Double
        public var Keys: Item
        public var NewImage: Item?
        public var OldImage: Item?
        public var SequenceNumber: String
        public var SizeBytes: Int
        public var StreamViewType: String
    }
}

/// What must become durable, in one transaction per batch: an item change and its stream record
/// travel together (no write without its record, no record without its write).
public enum TableChange: Equatable, Sendable {
    case putTable(TableSchema)
    case deleteTable(String)
    case putItem(table: String, key: String, item: Item)
    case deleteItem(table: String, key: String)
    case appendRecord(table: String, record: StreamRecord)
    /// A transaction's ClientRequestToken, remembered until `expiresAt` (DynamoDB: 10 minutes).
    case putTransactionToken(TransactionToken)
    case deleteTransactionToken(String)
}

/// A ClientRequestToken of a transaction that went through, and what that transaction asked for
/// (a digest of its items): the same token again answers without writing; with other items, it is
/// refused.
public struct TransactionToken: Equatable, Sendable {
    public var token: String
    public var fingerprint: String
    public var expiresAt: Double

    public init(token: String, fingerprint: String, expiresAt: Double) {
        self.token = token
        self.fingerprint = fingerprint
        self.expiresAt = expiresAt
    }
}

/// DynamoDB tables and their streams as a pure state machine (time passed in, changes out).
public struct Tables: Sendable {
    public let region: String
    public let account: String
    private(set) var definitions: [String: TableSchema] = [:]
    private(set) var items: [String: [String: Item]] = [:]
    /// Per table, the sum of its items' sizes (DescribeTable's TableSizeBytes), kept as items change.
    private var bytes: [String: Int] = [:]
    /// Per table, per shard: the last sequence number handed out.
    private var sequences: [String: [Int: UInt64]] = [:]
    /// Stream event ids: a random prefix per process and a counter, so they are unique without a
    /// system call per record (128 random bits a record cost two getrandom calls).
    private let eventIDPrefix: String
    private var eventCounter: UInt64 = 0
    private var streamARNs: [String: (label: String?, arn: String)] = [:]
    /// ClientRequestTokens of recent transactions, and the same in the order they expire.
    private(set) var transactionTokens: [String: TransactionToken] = [:]
    private var tokensByExpiry: [TransactionToken] = []
    private var expiredTokens = 0
    /// How long DynamoDB honours a transaction's ClientRequestToken.
    public static let transactionTokenWindow: Double = 600

    public init(region: String, account: String, eventIDPrefix: String = Hex.random(bytes: 8)) {
        self.region = region
        self.account = account
        self.eventIDPrefix = eventIDPrefix
    }

    public mutating func restore(tables: [TableSchema], items stored: [(String, String, Item)], lastSequences: [String: [Int: UInt64]],
                                 transactionTokens tokens: [TransactionToken] = []) {
        for t in tables { definitions[t.name] = t; items[t.name] = [:] }
        for (table, key, item) in stored where items[table] != nil {
            items[table]![key] = item
            bytes[table, default: 0] += Self.size(of: item)
        }
        sequences = lastSequences
        tokensByExpiry = tokens.sorted { $0.expiresAt < $1.expiresAt }
        transactionTokens = Dictionary(tokens.map { ($0.token, $0) }, uniquingKeysWith: { $1 })
    }

    public func arn(_ table: String) -> String { "arn:aws:dynamodb:\(region):\(account):table/\(table)" }

    // MARK: Tables

    public mutating func createTable(name: String, partitionKey: TableSchema.KeyAttribute, sortKey: TableSchema.KeyAttribute?,
                                     streamViewType: String?, shards: Int, now: Double, changes: inout [TableChange]) throws(TableError) -> TableSchema {
        guard (3...255).contains(name.count), name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }) else {
            throw TableError.validation("1 validation error detected: Value '\(name)' at 'tableName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length 3..255")
        }
        for key in [partitionKey] + (sortKey.map { [$0] } ?? []) where !["S", "N", "B"].contains(key.type) {
            throw TableError.validation("Member must satisfy enum value set: [B, N, S] (key \(key.name))")
        }
        if let view = streamViewType, !["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"].contains(view) {
            throw TableError.validation("Member must satisfy enum value set: [NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES, KEYS_ONLY] (StreamViewType \(view))")
        }
        guard (1...64).contains(shards) else { throw TableError.validation("The number of stream shards must be 1..64") }
        if definitions[name] != nil { throw TableError("ResourceInUseException", "Table already exists: \(name)") }
        let label = streamViewType.map { _ in Self.label(now) }
        let definition = TableSchema(name: name, partitionKey: partitionKey, sortKey: sortKey, streamViewType: streamViewType,
                                         streamLabel: label, shards: shards, createdAt: now)
        definitions[name] = definition
        items[name] = [:]
        bytes[name] = 0
        changes.append(.putTable(definition))
        return definition
    }

    static func label(_ now: Double) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: Date(timeIntervalSince1970: now)).replacingOccurrences(of: "Z", with: "")
    }

    /// The time a stream label (`label(_:)`'s text) stands for: when the stream was created.
    public static func labelDate(_ label: String) -> Double? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: label + "Z")?.timeIntervalSince1970
    }

    public func describe(_ name: String) throws(TableError) -> TableSchema {
        guard let d = definitions[name] else { throw TableError("ResourceNotFoundException", "Requested resource not found: Table: \(name) not found") }
        return d
    }

    public func itemCount(_ name: String) -> Int { items[name]?.count ?? 0 }

    /// The table's size in bytes (DynamoDB's item size accounting summed over its items): exact
    /// here, where DynamoDB updates it about every six hours.
    public func sizeBytes(_ name: String) -> Int { bytes[name] ?? 0 }

    /// ListTables: the names in order, at most `limit` (1...100, default 100) after
    /// `exclusiveStart`, and the last one given when more follow (LastEvaluatedTableName).
    public func listTables(limit: Int?, exclusiveStart: String?) throws(TableError) -> (names: [String], lastEvaluated: String?) {
        let limit = limit ?? 100
        guard (1...100).contains(limit) else {
            throw TableError.validation("1 validation error detected: Value '\(limit)' at 'limit' failed to satisfy constraint: Member must have value \(limit < 1 ? "greater than or equal to 1" : "less than or equal to 100")")
        }
        let names = definitions.keys.sorted().filter { exclusiveStart == nil || $0 > exclusiveStart! }
        let page = Array(names.prefix(limit))
        return (page, names.count > page.count ? page.last : nil)
    }

    public var allTables: [TableSchema] { definitions.values.sorted { $0.name < $1.name } }

    // MARK: Items

    /// The canonical key of an item: the key attributes' types and values, validated against the schema.
    func key(_ definition: TableSchema, _ item: Item, exact: Bool) throws(TableError) -> String {
        if exact && item.count != (definition.sortKey == nil ? 1 : 2) {
            throw TableError.validation("The provided key element does not match the schema")
        }
        let partition = try keyPart(definition.partitionKey, item)
        guard let sortKey = definition.sortKey else { return partition }  // the common case: no array, no join
        return partition + "\u{0}" + (try keyPart(sortKey, item))
    }

    /// One key attribute's part of the item key: its type letter and its canonical value.
    private func keyPart(_ attribute: TableSchema.KeyAttribute, _ item: Item) throws(TableError) -> String {
        guard let value = item[attribute.name] else {
            throw TableError.validation("One or more parameter values were invalid: Missing the key \(attribute.name) in the item")
        }
        guard value.typeName == attribute.type else {
            throw TableError.validation("One or more parameter values were invalid: Type mismatch for key \(attribute.name) expected: \(attribute.type) actual: \(value.typeName)")
        }
        switch value {
        case .s(let s):
            if s.isEmpty { throw TableError.validation("One or more parameter values are not valid. The AttributeValue for a key attribute cannot contain an empty string value. Key: \(attribute.name)") }
            return "S" + s
        case .n(let n):
            return "N" + (Decimal(string: n).map { "\($0)" } ?? n)
        case .b(let b):
            if b.isEmpty { throw TableError.validation("The AttributeValue for a key attribute cannot contain an empty binary value. Key: \(attribute.name)") }
            return "B" + b.base64EncodedString()
        default:
            return ""  // key attributes are S, N or B (the schema says so, and the type was checked)
        }
    }

    /// The key attributes of an item (a stream record's Keys), without building the list of key names.
    static func keyAttributes(_ definition: TableSchema, of item: Item) -> Item {
        var keys: Item = [:]
        keys.reserveCapacity(2)
        if let value = item[definition.partitionKey.name] { keys[definition.partitionKey.name] = value }
        if let sortKey = definition.sortKey, let value = item[sortKey.name] { keys[sortKey.name] = value }
        return keys
    }

    public mutating func putItem(_ table: String, _ item: Item, condition: Condition?, now: Double,
                                 changes: inout [TableChange]) throws(TableError) -> Item? {
        let definition = try describe(table)
        let itemKey = try key(definition, item, exact: false)
        let size = try Self.checkSize(item)
        let old = items[table]?[itemKey]
        if let condition, !ConditionEvaluator.holds(condition, on: old) {
            throw TableError.conditionalCheckFailed(old)
        }
        if let old, old == item { return old }  // a no-op write appends no stream record
        items[table]![itemKey] = item
        bytes[table, default: 0] += size - (old.map(Self.size(of:)) ?? 0)
        changes.append(.putItem(table: table, key: itemKey, item: item))
        record(definition, old == nil ? "INSERT" : "MODIFY", itemKey: itemKey, keys: Self.keyAttributes(definition, of: item),
               new: item, old: old, now: now, changes: &changes)
        return old
    }

    /// DynamoDB's limits on one item: 400 KB, and 32 levels of nesting.
    /// An item's size as DynamoDB counts it: its attributes' names and values.
    static func size(of item: Item) -> Int { item.reduce(0) { $0 + $1.key.utf8.count + $1.value.size } }

    /// Checks DynamoDB's limits on one item and returns its size.
    @discardableResult
    static func checkSize(_ item: Item) throws(TableError) -> Int {
        let total = Self.size(of: item)
        if total > 400 * 1024 { throw TableError.validation("Item size has exceeded the maximum allowed size") }
        if item.values.contains(where: { $0.nesting > AttributeValue.maxNesting }) {
            throw TableError.validation("Nesting Levels have exceeded supported limits")
        }
        return total
    }

    /// UpdateItem: applies `update` to the item with `key` (or to a new item holding just the key), after
    /// `condition` holds on the old item. Returns the item before and after.
    public mutating func updateItem(_ table: String, key itemKey: Item, update: UpdateExpression, condition: Condition?, now: Double,
                                    changes: inout [TableChange]) throws(TableError) -> (old: Item?, new: Item?) {
        let definition = try describe(table)
        let k = try key(definition, itemKey, exact: true)
        let old = items[table]?[k]
        if let condition, !ConditionEvaluator.holds(condition, on: old) {
            throw TableError.conditionalCheckFailed(old)
        }
        guard let new = try Self.updated(definition, key: itemKey, old: old, by: update) else { return (nil, nil) }
        _ = try putItem(table, new, condition: nil, now: now, changes: &changes)
        return (old, new)
    }

    /// What `update` makes of `old` (or of a new item holding just `key`); nil when it writes
    /// nothing: removing from an item that does not exist creates nothing, as in DynamoDB.
    static func updated(_ definition: TableSchema, key itemKey: Item, old: Item?, by update: UpdateExpression) throws(TableError) -> Item? {
        for action in update.actions {
            if case .name(let first)? = action.path.first, definition.keyNames.contains(first) {
                throw TableError.validation("One or more parameter values were invalid: Cannot update attribute \(first). This attribute is part of the key")
            }
        }
        let new = try UpdateEvaluator.apply(update, to: old ?? itemKey)
        if old == nil && new == itemKey && !update.actions.contains(where: { if case .set = $0 { return true }; if case .add = $0 { return true }; return false }) {
            return nil
        }
        try checkSize(new)
        return new
    }

    /// UpdateTable's stream settings: enable with a view type (a new stream, new label), or disable.
    public mutating func updateStream(_ table: String, enabled: Bool, viewType: String?, now: Double,
                                      changes: inout [TableChange]) throws(TableError) -> TableSchema {
        var d = try describe(table)
        if enabled {
            guard let viewType, ["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"].contains(viewType) else {
                throw TableError.validation("StreamViewType must be one of NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES, KEYS_ONLY when the stream is enabled")
            }
            if d.streamViewType != nil { throw TableError.validation("Table already has an enabled stream: \(table)") }
            d.streamViewType = viewType
            d.streamLabel = Self.label(now)
        } else {
            if d.streamViewType == nil { throw TableError.validation("Table already has no enabled stream: \(table)") }
            d.streamViewType = nil
        }
        definitions[table] = d
        changes.append(.putTable(d))
        return d
    }

    /// DeleteTable: the table, its items and its stream records go.
    public mutating func deleteTable(_ table: String, changes: inout [TableChange]) throws(TableError) -> TableSchema {
        let d = try describe(table)
        definitions[table] = nil
        items[table] = nil
        bytes[table] = nil
        sequences[table] = nil
        changes.append(.deleteTable(table))
        return d
    }

    public func getItem(_ table: String, key itemKey: Item) throws(TableError) -> Item? {
        let definition = try describe(table)
        return items[table]?[try key(definition, itemKey, exact: true)]
    }

    public mutating func deleteItem(_ table: String, key itemKey: Item, condition: Condition?, now: Double,
                                    changes: inout [TableChange]) throws(TableError) -> Item? {
        let definition = try describe(table)
        let k = try key(definition, itemKey, exact: true)
        let old = items[table]?[k]
        if let condition, !ConditionEvaluator.holds(condition, on: old) {
            throw TableError.conditionalCheckFailed(old)
        }
        guard let old else { return nil }
        items[table]![k] = nil
        bytes[table, default: 0] -= Self.size(of: old)
        changes.append(.deleteItem(table: table, key: k))
        record(definition, "REMOVE", itemKey: k, keys: itemKey, new: nil, old: old, now: now, changes: &changes)
        return old
    }

    // MARK: Streams

    /// The shard a partition key's records go to: a stable hash (FNV-1a), so one item's records stay in order.
    public static func shard(of key: String, shards: Int) -> Int {
        var hash: UInt64 = 0xcbf29ce484222325
        for byte in key.utf8.prefix(while: { $0 != 0 }) { hash = (hash ^ UInt64(byte)) &* 0x100000001b3 }
        return Int(hash % UInt64(max(1, shards)))
    }

    /// Per table with its stream on, the records it has ever appended: the sum of its shards' last
    /// sequence counters (each shard counts from 1). Durable across restarts, as the counters are.
    public var streamHeads: [String: UInt64] {
        var heads: [String: UInt64] = [:]
        for (name, table) in definitions where table.streamViewType != nil {
            heads[name] = sequences[name]?.values.reduce(0, +) ?? 0
        }
        return heads
    }

    /// The shard's number, then its counter in 20 digits: ordered as text and as numbers within a shard.
    public static func sequenceNumber(shard: Int, counter: UInt64) -> String {
        var out = Array(String(shard).utf8)
        var digits = [UInt8](repeating: 0x30, count: 20)
        var rest = counter
        var at = 19
        while rest > 0 && at >= 0 {
            digits[at] = 0x30 + UInt8(rest % 10)
            rest /= 10
            at -= 1
        }
        out += digits
        return String(decoding: out, as: UTF8.self)
    }

    /// The stream's ARN as records carry it, built once per table and stream label.
    private mutating func streamARN(_ d: TableSchema) -> String {
        if let cached = streamARNs[d.name], cached.label == d.streamLabel { return cached.arn }
        let arn = "\(arn(d.name))/stream/\(d.streamLabel ?? "")"
        streamARNs[d.name] = (d.streamLabel, arn)
        return arn
    }

    /// 32 lower-case hex digits, like DynamoDB Streams' event ids: the process's random prefix, then the counter.
    private mutating func newEventID() -> String {
        eventCounter &+= 1
        var out = Array(eventIDPrefix.utf8)
        out.reserveCapacity(32)
        for shift in stride(from: 60, through: 0, by: -4) {
            out.append(Hex.digits[Int((eventCounter >> UInt64(shift)) & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the stream record of a write to the item `itemKey` (`key(_:_:exact:)`'s string: the
    /// shard hashes its partition part).
    private mutating func record(_ d: TableSchema, _ event: String, itemKey: String, keys: Item, new: Item?, old: Item?, now: Double,
                                 changes: inout [TableChange]) {
        guard let view = d.streamViewType else { return }
        let shard = Self.shard(of: itemKey, shards: d.shards)
        let next = (sequences[d.name]?[shard] ?? 0) + 1
        sequences[d.name, default: [:]][shard] = next
        let newImage = (view == "NEW_IMAGE" || view == "NEW_AND_OLD_IMAGES") ? new : nil
        let oldImage = (view == "OLD_IMAGE" || view == "NEW_AND_OLD_IMAGES") ? old : nil
        let size = [keys, newImage ?? [:], oldImage ?? [:]].reduce(0) { sum, image in sum + image.reduce(0) { $0 + $1.key.utf8.count + $1.value.size } }
        let record = StreamRecord(
            eventID: newEventID(), eventName: event, awsRegion: region,
            dynamodb: .init(ApproximateCreationDateTime: now.rounded(.down), Keys: keys, NewImage: newImage, OldImage: oldImage,
                            SequenceNumber: Self.sequenceNumber(shard: shard, counter: next), SizeBytes: size, StreamViewType: view),
            eventSourceARN: streamARN(d), shard: shard)
        changes.append(.appendRecord(table: d.name, record: record))
    }
}

// MARK: Reading many items

extension Tables {
    /// A page of a Scan or Query: items in key order, and the key to continue after when there are more.
    public struct Page: Sendable {
        public var items: [Item]
        public var scannedCount: Int
        public var lastEvaluatedKey: Item?
    }

    /// Scan: every item in key order, `limit` evaluated per page (DynamoDB's Limit counts items read,
    /// before the filter), continuing after `exclusiveStartKey`.
    public func scan(_ table: String, filter: Condition?, limit: Int?, exclusiveStartKey: Item?) throws(TableError) -> Page {
        try page(table, where: { _ in true }, filter: filter, limit: limit, exclusiveStartKey: exclusiveStartKey)
    }

    /// Query: the items of one partition key, in sort key order (numbers by value, strings and
    /// binaries by their bytes), descending when `scanIndexForward` is false. The key condition
    /// must be `partitionKey = :value` (optionally AND a condition on the sort key).
    public func query(_ table: String, keyCondition: Condition, filter: Condition?, limit: Int?, exclusiveStartKey: Item?,
                      scanIndexForward: Bool = true) throws(TableError) -> Page {
        let d = try describe(table)
        func mentionsPartitionEquality(_ c: Condition) -> Bool {
            switch c {
            case .compare(let l, "=", let r):
                for case .path(let p) in [l, r] where p == [.name(d.partitionKey.name)] { return true }
                return false
            case .and(let a, let b): return mentionsPartitionEquality(a) || mentionsPartitionEquality(b)
            default: return false
            }
        }
        guard mentionsPartitionEquality(keyCondition) else {
            throw TableError.validation("Query condition missed key schema element: \(d.partitionKey.name)")
        }
        if let limit, limit < 1 { throw TableError.validation("Limit must be at least 1") }
        if let exclusiveStartKey { _ = try key(d, exclusiveStartKey, exact: true) }
        var matched = (items[table] ?? [:]).values.filter { ConditionEvaluator.holds(keyCondition, on: $0) }
        if let sortKey = d.sortKey {
            matched.sort { Self.precedes($0[sortKey.name], $1[sortKey.name]) }
            if !scanIndexForward { matched.reverse() }
            // Continue after the start key's place in this order (the item itself may be gone).
            if let start = exclusiveStartKey?[sortKey.name] {
                matched = matched.filter { item in
                    guard let value = item[sortKey.name] else { return false }
                    return scanIndexForward ? Self.precedes(start, value) : Self.precedes(value, start)
                }
            }
        } else if exclusiveStartKey != nil {
            matched = []  // without a sort key a partition holds one item: the one the page ended on
        }
        var out: [Item] = []
        var scanned = 0
        var last: Item?
        for (i, item) in matched.enumerated() {
            scanned += 1
            if filter.map({ ConditionEvaluator.holds($0, on: item) }) ?? true { out.append(item) }
            if let limit, scanned == limit {
                if i < matched.count - 1 { last = Self.keyAttributes(d, of: item) }
                break
            }
        }
        return Page(items: out, scannedCount: scanned, lastEvaluatedKey: last)
    }

    /// Sort key order: numbers by value, strings and binaries by their bytes (a missing value first).
    static func precedes(_ a: AttributeValue?, _ b: AttributeValue?) -> Bool {
        guard let a, let b else { return a == nil && b != nil }
        if let order = AttributeValue.compare(a, b) { return order == .orderedAscending }
        // Numbers beyond Decimal's range: their canonical text, which is at least stable.
        if case .n(let x) = a, case .n(let y) = b { return x < y }
        return false
    }

    private func page(_ table: String, where match: (Item) -> Bool, filter: Condition?, limit: Int?,
                      exclusiveStartKey: Item?) throws(TableError) -> Page {
        let d = try describe(table)
        if let limit, limit < 1 { throw TableError.validation("Limit must be at least 1") }
        let start = try exclusiveStartKey.map { (k: Item) throws(TableError) -> String in try key(d, k, exact: true) }
        let keys = (items[table] ?? [:]).keys.sorted().filter { start == nil || $0 > start! }
        var out: [Item] = []
        var scanned = 0
        var last: Item?
        for k in keys {
            let item = items[table]![k]!
            guard match(item) else { continue }
            scanned += 1
            if filter.map({ ConditionEvaluator.holds($0, on: item) }) ?? true { out.append(item) }
            if let limit, scanned == limit {
                if k != keys.last { last = Self.keyAttributes(d, of: item) }
                break
            }
        }
        return Page(items: out, scannedCount: scanned, lastEvaluatedKey: last)
    }

    /// BatchWriteItem: up to 25 puts and deletes, each applied like PutItem / DeleteItem without conditions.
    public mutating func batchWrite(_ requests: [String: [(put: Item?, delete: Item?)]], now: Double,
                                    changes: inout [TableChange]) throws(TableError) {
        let total = requests.values.reduce(0) { $0 + $1.count }
        guard (1...25).contains(total) else {
            throw TableError.validation("Too many items requested for the BatchWriteItem call (1 to 25 write requests)")
        }
        // Validate everything first: a batch with one bad request writes nothing.
        for (table, list) in requests {
            let d = try describe(table)
            var seen = Set<String>()
            for r in list {
                guard (r.put == nil) != (r.delete == nil) else { throw TableError.validation("Each WriteRequest needs exactly one of PutRequest and DeleteRequest") }
                let itemKey: String
                if let item = r.put { itemKey = try key(d, item, exact: false) } else { itemKey = try key(d, r.delete!, exact: true) }
                // One item twice in a batch (two puts, or a put and a delete) is refused, as in DynamoDB.
                guard seen.insert(itemKey).inserted else { throw Self.duplicateKeys }
            }
        }
        for (table, list) in requests {
            for r in list {
                if let item = r.put { _ = try putItem(table, item, condition: nil, now: now, changes: &changes) }
                if let k = r.delete { _ = try deleteItem(table, key: k, condition: nil, now: now, changes: &changes) }
            }
        }
    }

    /// BatchWriteItem's and BatchGetItem's answer to one key given twice.
    static let duplicateKeys = TableError.validation("Provided list of item keys contains duplicates")

    /// BatchGetItem: up to 100 keys.
    public func batchGet(_ requests: [String: [Item]]) throws(TableError) -> [String: [Item]] {
        let total = requests.values.reduce(0) { $0 + $1.count }
        guard (1...100).contains(total) else { throw TableError.validation("Too many items requested for the BatchGetItem call (1 to 100 keys)") }
        var out: [String: [Item]] = [:]
        for (table, keys) in requests {
            let d = try describe(table)
            var seen = Set<String>()
            for k in keys {
                guard seen.insert(try key(d, k, exact: true)).inserted else { throw Self.duplicateKeys }
            }
        }
        for (table, keys) in requests {
            var found: [Item] = []
            for k in keys { if let item = try getItem(table, key: k) { found.append(item) } }
            out[table] = found
        }
        return out
    }

    // MARK: Transactions

    /// One action of a TransactWriteItems.
    public enum TransactWrite: Sendable {
        case put(table: String, item: Item, condition: Condition?)
        case update(table: String, key: Item, update: UpdateExpression, condition: Condition?)
        case delete(table: String, key: Item, condition: Condition?)
        case conditionCheck(table: String, key: Item, condition: Condition)
    }

    /// TransactWriteItems: up to 100 actions on distinct items, all or none. Every check (keys, sizes,
    /// the updates' results, every condition) is made before anything is written, so a transaction
    /// that fails changes nothing. Failed conditions cancel it with a reason per action, in order.
    ///
    /// With a ClientRequestToken (`token`, and `fingerprint`, a digest of what the request asks for),
    /// a transaction that went through is not applied again for 10 minutes: the same token with the
    /// same items answers as the first time did, with other items IdempotentParameterMismatchException.
    public mutating func transactWrite(_ actions: [TransactWrite], token: (token: String, fingerprint: String)? = nil, now: Double,
                                       changes: inout [TableChange]) throws(TableError) {
        guard (1...100).contains(actions.count) else {
            throw TableError.validation("1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to 100 and greater than or equal to 1")
        }
        forgetTokens(before: now, changes: &changes)
        if let token, let seen = transactionTokens[token.token] {
            guard seen.fingerprint == token.fingerprint else {
                throw TableError("IdempotentParameterMismatchException",
                                 "The request uses the same client token as a previous, but non-identical request.")
            }
            return
        }
        enum Write { case put(Item), delete(key: Item), none }
        var writes: [(table: String, write: Write)] = []
        var seen = Set<String>()
        var reasons: [CancellationReason] = []
        for action in actions {
            let table: String, itemKey: Item, condition: Condition?
            switch action {
            case .put(let t, let item, let c): (table, itemKey, condition) = (t, item, c)
            case .update(let t, let k, _, let c), .delete(let t, let k, let c): (table, itemKey, condition) = (t, k, c)
            case .conditionCheck(let t, let k, let c): (table, itemKey, condition) = (t, k, c)
            }
            let definition = try describe(table)
            // A Put names its item by the key attributes among the others; the rest give just the key.
            let canonical: String
            if case .put = action { canonical = try key(definition, itemKey, exact: false) } else { canonical = try key(definition, itemKey, exact: true) }
            guard seen.insert(table + "\u{0}" + canonical).inserted else {
                throw TableError.validation("Transaction request cannot include multiple operations on one item")
            }
            let old = items[table]?[canonical]
            let write: Write
            switch action {
            case .put(_, let item, _):
                try Self.checkSize(item)
                write = .put(item)
            case .update(_, _, let update, _): write = try Self.updated(definition, key: itemKey, old: old, by: update).map(Write.put) ?? .none
            case .delete: write = .delete(key: itemKey)
            case .conditionCheck: write = .none
            }
            if let condition, !ConditionEvaluator.holds(condition, on: old) {
                reasons.append(CancellationReason(code: "ConditionalCheckFailed", message: "The conditional request failed", item: old))
            } else {
                reasons.append(.none)
            }
            writes.append((table, write))
        }
        if reasons.contains(where: { $0.code != "None" }) {
            var error = TableError("TransactionCanceledException",
                                   "Transaction cancelled, please refer cancellation reasons for specific reasons [\(reasons.map(\.code).joined(separator: ", "))]")
            error.cancellationReasons = reasons
            throw error
        }
        for (table, write) in writes {
            switch write {
            case .put(let item): _ = try putItem(table, item, condition: nil, now: now, changes: &changes)
            case .delete(let key): _ = try deleteItem(table, key: key, condition: nil, now: now, changes: &changes)
            case .none: break
            }
        }
        if let token {
            let kept = TransactionToken(token: token.token, fingerprint: token.fingerprint, expiresAt: now + Self.transactionTokenWindow)
            transactionTokens[kept.token] = kept
            tokensByExpiry.append(kept)
            changes.append(.putTransactionToken(kept))
        }
    }

    /// Drops the tokens whose window has passed, oldest first (they were kept in that order).
    private mutating func forgetTokens(before now: Double, changes: inout [TableChange]) {
        while expiredTokens < tokensByExpiry.count, tokensByExpiry[expiredTokens].expiresAt <= now {
            let old = tokensByExpiry[expiredTokens]
            if transactionTokens[old.token] == old {
                transactionTokens[old.token] = nil
                changes.append(.deleteTransactionToken(old.token))
            }
            expiredTokens += 1
        }
        if expiredTokens > 1024 && expiredTokens * 2 > tokensByExpiry.count {
            tokensByExpiry.removeFirst(expiredTokens)
            expiredTokens = 0
        }
    }

    /// TransactGetItems: up to 100 items, read together (the node answers from one state). A
    /// missing item answers an empty response, in order.
    public func transactGet(_ gets: [(table: String, key: Item)]) throws(TableError) -> [Item?] {
        guard (1...100).contains(gets.count) else {
            throw TableError.validation("1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to 100 and greater than or equal to 1")
        }
        var seen = Set<String>()
        var found: [Item?] = []
        for get in gets {
            let definition = try describe(get.table)
            let canonical = try key(definition, get.key, exact: true)
            guard seen.insert(get.table + "\u{0}" + canonical).inserted else {
                throw TableError.validation("Transaction request cannot include multiple operations on one item")
            }
            found.append(items[get.table]?[canonical])
        }
        return found
    }
}
