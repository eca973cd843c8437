import Foundation
import NimbusProtocol

/// DynamoDB JSON by hand on the write path: every PutItem stores its item and its stream record,
/// and JSONEncoder / JSONDecoder were a quarter of the table node's CPU there.
///
/// Reading goes through the strict reader (`StringJSON`): an item made of strings, maps, lists and
/// sets (no BOOL or NULL, which JSON writes as literals) is read here; anything else, and anything
/// invalid, returns nil and the caller decodes with JSONDecoder, so errors are always JSONDecoder's
/// and `AttributeValue`'s own.
public enum DynamoJSON {
    public static func encode(_ item: Item) -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(128)
        append(item, to: &out)
        return Data(out)
    }

    public static func append(_ item: Item, to out: inout [UInt8]) {
        out.append(0x7B)
        var first = true
        for (name, value) in item {
            if !first { out.append(0x2C) }
            first = false
            JSONText.appendString(name, to: &out)
            out.append(0x3A)
            append(value, to: &out)
        }
        out.append(0x7D)
    }

    public static func append(_ value: AttributeValue, to out: inout [UInt8]) {
        func strings(_ values: [String]) {
            out.append(0x5B)
            for (i, v) in values.enumerated() {
                if i > 0 { out.append(0x2C) }
                JSONText.appendString(v, to: &out)
            }
            out.append(0x5D)
        }
        switch value {
        case .s(let s):
            JSONText.append("{\"S\":", to: &out)
            JSONText.appendString(s, to: &out)
        case .n(let n):
            JSONText.append("{\"N\":", to: &out)
            JSONText.appendString(n, to: &out)
        case .b(let b):
            JSONText.append("{\"B\":", to: &out)
            JSONText.appendString(b.base64EncodedString(), to: &out)
        case .bool(let b):
            JSONText.append(b ? "{\"BOOL\":true" : "{\"BOOL\":false", to: &out)
        case .null:
            JSONText.append("{\"NULL\":true", to: &out)
        case .m(let m):
            JSONText.append("{\"M\":", to: &out)
            append(m, to: &out)
        case .l(let l):
            JSONText.append("{\"L\":[", to: &out)
            for (i, v) in l.enumerated() {
                if i > 0 { out.append(0x2C) }
                append(v, to: &out)
            }
            out.append(0x5D)
        case .ss(let v):
            JSONText.append("{\"SS\":", to: &out)
            strings(v)
        case .ns(let v):
            JSONText.append("{\"NS\":", to: &out)
            strings(v)
        case .bs(let v):
            JSONText.append("{\"BS\":", to: &out)
            strings(v.map { $0.base64EncodedString() })
        }
        out.append(0x7D)
    }

    /// An item from the strict reader's tree; nil when it is not one this path takes.
    public static func item(_ json: StringJSON) -> Item? {
        guard case .object(let pairs) = json else { return nil }
        var item: Item = [:]
        item.reserveCapacity(pairs.count)
        for (name, value) in pairs {
            guard let v = self.value(value) else { return nil }
            item[name] = v
        }
        return item
    }

    /// One attribute value, validated as `AttributeValue`'s decoding validates it; nil when it is
    /// not valid or not one this path takes.
    public static func value(_ json: StringJSON) -> AttributeValue? {
        guard case .object(let pairs) = json, pairs.count == 1 else { return nil }
        let (type, content) = pairs[0]
        func strings() -> [String]? {
            guard case .array(let items) = content else { return nil }
            var out: [String] = []
            out.reserveCapacity(items.count)
            for item in items {
                guard case .string(let s) = item else { return nil }
                out.append(s)
            }
            return out
        }
        switch type {
        case "S": return content.string.map(AttributeValue.s)
        case "N": return content.string.flatMap { try? AttributeValue.number($0) }.map(AttributeValue.n)
        case "B": return content.string.flatMap { try? AttributeValue.base64($0) }.map(AttributeValue.b)
        case "M": return item(content).map(AttributeValue.m)
        case "L":
            guard case .array(let items) = content else { return nil }
            var values: [AttributeValue] = []
            values.reserveCapacity(items.count)
            for item in items {
                guard let v = value(item) else { return nil }
                values.append(v)
            }
            return .l(values)
        case "SS":
            guard let v = strings(), (try? AttributeValue.checkSet(v.count, Set(v).count, "string")) != nil else { return nil }
            return .ss(v)
        case "NS":
            guard let raw = strings() else { return nil }
            let v = raw.compactMap { try? AttributeValue.number($0) }
            guard v.count == raw.count, (try? AttributeValue.checkSet(v.count, Set(v).count, "number")) != nil else { return nil }
            return .ns(v)
        case "BS":
            guard let raw = strings() else { return nil }
            let v = raw.compactMap { try? AttributeValue.base64($0) }
            guard v.count == raw.count, (try? AttributeValue.checkSet(v.count, Set(v).count, "binary")) != nil else { return nil }
            return .bs(v)
        default:
            return nil
        }
    }
}

extension StreamRecord {
    /// The record as GetRecords serves it (what JSONEncoder wrote before, key for key).
    /// `newImageJSON`, when given, is NewImage already encoded (the item the same write stores).
    public func jsonData(newImageJSON: Data? = nil) -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        func field(_ name: StaticString, _ value: String, first: Bool = false) {
            out.append(first ? 0x7B : 0x2C)
            JSONText.append(name, to: &out)
            JSONText.appendString(value, to: &out)
        }
        field("\"eventID\":", eventID, first: true)
        field("\"eventName\":", eventName)
        field("\"eventVersion\":", eventVersion)
        field("\"eventSource\":", eventSource)
        field("\"awsRegion\":", awsRegion)
        JSONText.append(",\"dynamodb\":{\"ApproximateCreationDateTime\":", to: &out)
        // Swift's description of a Double is the shortest text that reads back as the same value.
        out.append(contentsOf: "\(dynamodb.ApproximateCreationDateTime)".utf8)
        JSONText.append(",\"Keys\":", to: &out)
        DynamoJSON.append(dynamodb.Keys, to: &out)
        if let image = dynamodb.NewImage {
            JSONText.append(",\"NewImage\":", to: &out)
            if let newImageJSON { out.append(contentsOf: newImageJSON) } else { DynamoJSON.append(image, to: &out) }
        }
        if let image = dynamodb.OldImage {
            JSONText.append(",\"OldImage\":", to: &out)
            DynamoJSON.append(image, to: &out)
        }
        JSONText.append(",\"SequenceNumber\":", to: &out)
        JSONText.appendString(dynamodb.SequenceNumber, to: &out)
        JSONText.append(",\"SizeBytes\":", to: &out)
        JSONText.appendInteger(Int64(dynamodb.SizeBytes), to: &out)
        JSONText.append(",\"StreamViewType\":", to: &out)
        JSONText.appendString(dynamodb.StreamViewType, to: &out)
        out.append(0x7D)
        field("\"eventSourceARN\":", eventSourceARN)
        out.append(0x7D)
        return Data(out)
    }
}
