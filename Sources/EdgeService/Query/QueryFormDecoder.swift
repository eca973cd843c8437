import Foundation
import NimbusRuntime

/// The query protocol's form parameters as the JSON an input shape takes: botocore's QuerySerializer
/// (serialize.py) read backwards. Members go by their locationName or name, nested with `.`; lists are
/// `Name.member.N` (1-based), or `Name.N` when flattened (the element's locationName then replaces
/// Name); maps are `Name.entry.N.key` / `.value`, or `Name.N.<key>` / `.<value>` when flattened, with
/// the key's and value's locationNames (SQS: `Attribute.N.Name` / `.Value`). Parameters the shape has
/// no member for are ignored, as AWS does (`Action`, `Version`, the presign `X-Amz-*`).
struct QueryFormDecoder {
    let model: ServiceModel

    /// The parameters as a tree of their dotted names (`A.b.1` -> A, b, 1); the first value given for
    /// a name counts.
    struct Node {
        var value: String?
        var children: [String: Node] = [:]

        init(value: String? = nil) { self.value = value }

        /// Names deeper than any model's shapes go (a list of maps of structures is 6 parts) are
        /// ignored, as unknown parameters are: the tree is built recursively, and a name of millions
        /// of dots must not take the stack with it.
        static let maxDepth = 16

        init(parameters: [(String, String)]) {
            for (name, value) in parameters {
                let parts = name.split(separator: ".", maxSplits: Self.maxDepth, omittingEmptySubsequences: false)
                guard parts.count <= Self.maxDepth else { continue }
                insert(parts[...], value: value)
            }
        }

        mutating func insert(_ path: ArraySlice<Substring>, value: String) {
            guard let first = path.first else {
                if self.value == nil { self.value = value }
                return
            }
            children[String(first), default: Node()].insert(path.dropFirst(), value: value)
        }

        /// The children named by 1-based indexes, in order (anything else there is ignored).
        var numbered: [(Int, Node)] {
            children.compactMap { key, node in Int(key).flatMap { $0 >= 1 ? ($0, node) : nil } }.sorted { $0.0 < $1.0 }
        }
    }

    /// The JSON body for `operation`'s input shape.
    func jsonBody(operation: ServiceModel.Operation, parameters: [(String, String)]) throws(EdgeError) -> Data {
        guard let input = operation.input else { return Data("{}".utf8) }
        let root = Node(parameters: parameters)
        return try structure(model.resolve(shapeNamed: input), root, path: "").data
    }

    func value(_ resolved: ServiceModel.Resolved, _ node: Node, path: String) throws(EdgeError) -> JSONValue? {
        switch resolved.shape.type {
        case .structure: return try structure(resolved, node, path: path)
        case .list: return try list(resolved, node, path: path)
        case .map: return try map(resolved, node, path: path)
        default:
            guard let text = node.value else { return nil }
            return try scalar(resolved.shape.type, text, path: path)
        }
    }

    func structure(_ resolved: ServiceModel.Resolved, _ node: Node, path: String) throws(EdgeError) -> JSONValue {
        let required = Set(resolved.shape.required ?? [])
        var members: [(String, JSONValue)] = []
        for member in resolved.shape.members ?? [] {
            let memberShape = try model.resolve(member.ref)
            let name = memberShape.locationName ?? member.name
            var child = node.children[name]
            var childPath = Self.join(path, name)
            // A flattened list's elements go by the element's locationName (`AttributeName.1`); an
            // empty one is sent under the member's own name (`AttributeNames=`).
            if memberShape.shape.type == .list, memberShape.flattened, let element = memberShape.shape.member,
               let elementName = try model.resolve(element).locationName, elementName != name {
                if let elements = node.children[elementName] {
                    child = elements
                    childPath = Self.join(path, elementName)
                }
            }
            if let child, let decoded = try value(memberShape, child, path: childPath) {
                members.append((member.name, decoded))
            } else if required.contains(member.name) {
                throw EdgeError("MissingParameter", "The request must contain the parameter \(childPath).")
            }
        }
        return .object(members)
    }

    func list(_ resolved: ServiceModel.Resolved, _ node: Node, path: String) throws(EdgeError) -> JSONValue {
        guard let elementRef = resolved.shape.member else { return .array([]) }
        let element = try model.resolve(elementRef)
        let itemsName = resolved.flattened ? nil : (element.locationName ?? "member")
        let container = itemsName.map { node.children[$0] ?? Node() } ?? node
        var items: [JSONValue] = []
        for (index, child) in container.numbered {
            let itemPath = [path, itemsName, String(index)].compactMap { $0 }.joined(separator: ".")
            if let item = try value(element, child, path: itemPath) { items.append(item) }
        }
        return .array(items)
    }

    func map(_ resolved: ServiceModel.Resolved, _ node: Node, path: String) throws(EdgeError) -> JSONValue {
        guard let keyRef = resolved.shape.key, let valueRef = resolved.shape.value else { return .object([]) }
        let keyShape = try model.resolve(keyRef)
        let valueShape = try model.resolve(valueRef)
        let keyName = keyShape.locationName ?? "key"
        let valueName = valueShape.locationName ?? "value"
        let entriesPath = resolved.flattened ? path : Self.join(path, "entry")
        let entries = resolved.flattened ? node : (node.children["entry"] ?? Node())
        var members: [(String, JSONValue)] = []
        for (index, entry) in entries.numbered {
            let entryPath = Self.join(entriesPath, String(index))
            guard let key = entry.children[keyName]?.value else {
                throw EdgeError("MissingParameter", "The request must contain the parameter \(Self.join(entryPath, keyName)).")
            }
            guard let valueNode = entry.children[valueName], let decoded = try value(valueShape, valueNode, path: Self.join(entryPath, valueName)) else {
                throw EdgeError("MissingParameter", "The request must contain the parameter \(Self.join(entryPath, valueName)).")
            }
            // A key given twice: the first entry counts, as with a parameter given twice.
            if !members.contains(where: { $0.0 == key }) { members.append((key, decoded)) }
        }
        return .object(members)
    }

    func scalar(_ type: ServiceModel.ShapeType, _ text: String, path: String) throws(EdgeError) -> JSONValue {
        switch type {
        case .integer, .long:
            guard let number = Int64(text.trimmingCharacters(in: .whitespaces)) else { throw Self.invalid(text, path, "must be an integer") }
            if type == .integer, Int32(exactly: number) == nil { throw Self.invalid(text, path, "must be a 32-bit integer") }
            return .integer(number)
        case .float, .double:
            guard let number = Double(text.trimmingCharacters(in: .whitespaces)), number.isFinite else {
                throw Self.invalid(text, path, "must be a number")
            }
            return .double(number)
        case .boolean:
            switch text.lowercased() {
            case "true": return .bool(true)
            case "false": return .bool(false)
            default: throw Self.invalid(text, path, "must be true or false")
            }
        case .timestamp:
            // The JSON protocols carry timestamps as epoch seconds.
            guard let seconds = ISOTime.epochSeconds(text) else { throw Self.invalid(text, path, "must be an ISO-8601 timestamp") }
            return seconds.rounded() == seconds ? .integer(Int64(seconds)) : .double(seconds)
        case .blob:
            // Base64 in the form and in the JSON protocols alike: checked, passed on as it came.
            guard Data(base64Encoded: text) != nil else { throw Self.invalid(text, path, "must be base64-encoded") }
            return .string(text)
        case .string, .structure, .list, .map:
            return .string(text)
        }
    }

    static func invalid(_ text: String, _ path: String, _ reason: String) -> EdgeError {
        EdgeError("InvalidParameterValue", "Value (\(text.prefix(256))) for parameter \(path) is invalid. Reason: \(reason).")
    }

    static func join(_ path: String, _ name: String) -> String { path.isEmpty ? name : path + "." + name }
}

/// ISO-8601 timestamps as the query protocol writes them (`2026-12-07T19:00:00Z`), and read.
enum ISOTime {
    /// Whole seconds, UTC.
    static func string(epochSeconds: Int64) -> String { UTCTime.iso8601(wholeSeconds: Int(epochSeconds)) }

    /// A node may give a timestamp as epoch seconds or milliseconds: a value past 1e11 (year 5138 in
    /// seconds, 1973 in milliseconds) is taken for milliseconds.
    static func string(epoch number: Double) -> String? {
        guard number.isFinite else { return nil }
        let seconds = abs(number) >= 1e11 ? number / 1000 : number
        guard abs(seconds) < 1e13 else { return nil }
        return string(epochSeconds: Int64(seconds.rounded(.down)))
    }

    /// Epoch seconds of an ISO-8601 timestamp (with or without fractional seconds) or of a number.
    static func epochSeconds(_ text: String) -> Double? {
        if let number = Double(text), number.isFinite { return number }
        let formatter = ISO8601DateFormatter()
        if let date = formatter.date(from: text) { return date.timeIntervalSince1970 }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)?.timeIntervalSince1970
    }
}
