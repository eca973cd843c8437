import Foundation
import NimbusProtocol

/// A subscription's filter policy on message attributes (SNS's FilterPolicyScope MessageAttributes):
/// a message reaches the subscription only when, for every attribute the policy names, one of its
/// conditions holds. Conditions: exact strings and numbers, `prefix`, `suffix`,
/// `equals-ignore-case`, `anything-but` (values, or `{"prefix": ...}`), `numeric` comparisons and
/// ranges, and `exists`. A `String.Array` attribute matches when one of its elements does. Parsed
/// once when set; matching runs on every publish.
public struct FilterPolicy: Sendable, Equatable {
    enum Condition: Sendable, Equatable {
        case string(String)
        case number(Double)
        case prefix(String)
        case suffix(String)
        case equalsIgnoreCase(String)
        case anythingBut(strings: Set<String>, numbers: Set<Double>)
        case anythingButPrefix(String)
        case numeric([Bound])
        case exists(Bool)
    }

    struct Bound: Sendable, Equatable {
        var op: String
        var value: Double

        func holds(_ x: Double) -> Bool {
            switch op {
            case "=": return x == value
            case "<": return x < value
            case "<=": return x <= value
            case ">": return x > value
            default: return x >= value
            }
        }
    }

    struct Rule: Sendable, Equatable {
        var attribute: String
        var conditions: [Condition]
    }

    let rules: [Rule]

    /// AWS's limits: at most 5 attribute names, and at most 150 combinations of values.
    static let maxKeys = 5
    static let maxCombinations = 150

    /// Parses and validates a policy; throws InvalidParameter naming what is wrong, as SNS does.
    public init(json text: String) throws {
        guard let root = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else {
            throw Self.invalid("failed to parse JSON")
        }
        guard case .object(let members) = root else { throw Self.invalid("the policy must be a JSON object") }
        if members.isEmpty { throw Self.invalid("the policy must name at least one message attribute") }
        if members.count > Self.maxKeys { throw Self.invalid("Filter policy can not have more than \(Self.maxKeys) keys") }
        var rules: [Rule] = []
        var combinations = 1
        for (key, value) in members.sorted(by: { $0.key < $1.key }) {
            if key == "$or" { throw Self.invalid("$or is not supported by Nimbus") }
            guard case .array(let items) = value else {
                if case .object = value {
                    throw Self.invalid("Filter policy scope MessageAttributes does not support nested filter policy")
                }
                throw Self.invalid("\(key): the value must be an array of conditions")
            }
            if items.isEmpty { throw Self.invalid("\(key): empty arrays are not allowed") }
            rules.append(Rule(attribute: key, conditions: try items.map { try Self.condition($0, key: key) }))
            combinations *= items.count
            if combinations > Self.maxCombinations {
                throw Self.invalid("Filter policy is too complex (more than \(Self.maxCombinations) combinations)")
            }
        }
        self.rules = rules
    }

    /// Whether a message with these attributes reaches the subscription.
    public func matches(_ attributes: [String: MessageAttributeValue]) -> Bool {
        rules.allSatisfy { rule in
            guard let attribute = attributes[rule.attribute] else {
                return rule.conditions.contains(.exists(false))
            }
            let values = Self.values(of: attribute)
            return rule.conditions.contains { condition in
                switch condition {
                case .exists(let wanted): return wanted
                default: return values.contains { Self.holds(condition, for: $0) }
                }
            }
        }
    }

    // MARK: Parsing

    static func invalid(_ reason: String) -> SNSError { SNSError.invalid("Attributes Reason: FilterPolicy: \(reason)") }

    private static func condition(_ value: JSONValue, key: String) throws -> Condition {
        switch value {
        case .string(let s): return .string(s)
        case .number(let n): return .number(n)
        case .object(let members):
            guard members.count == 1, let (operator_, operand) = members.first else {
                throw invalid("\(key): a condition object must have exactly one match type")
            }
            switch (operator_, operand) {
            case ("prefix", .string(let s)) where !s.isEmpty: return .prefix(s)
            case ("suffix", .string(let s)) where !s.isEmpty: return .suffix(s)
            case ("equals-ignore-case", .string(let s)): return .equalsIgnoreCase(s)
            case ("exists", .bool(let b)): return .exists(b)
            case ("anything-but", .string(let s)): return .anythingBut(strings: [s], numbers: [])
            case ("anything-but", .number(let n)): return .anythingBut(strings: [], numbers: [n])
            case ("anything-but", .array(let items)) where !items.isEmpty:
                var strings: Set<String> = [], numbers: Set<Double> = []
                for item in items {
                    switch item {
                    case .string(let s): strings.insert(s)
                    case .number(let n): numbers.insert(n)
                    default: throw invalid("\(key): anything-but takes strings and numbers")
                    }
                }
                return .anythingBut(strings: strings, numbers: numbers)
            case ("anything-but", .object(let inner)):
                guard inner.count == 1, case .string(let p)? = inner["prefix"], !p.isEmpty else {
                    throw invalid("\(key): anything-but takes a value, a list of values, or {\"prefix\": ...}")
                }
                return .anythingButPrefix(p)
            case ("numeric", .array(let items)):
                return .numeric(try bounds(items, key: key))
            case ("prefix", _), ("suffix", _), ("equals-ignore-case", _), ("exists", _), ("anything-but", _):
                throw invalid("\(key): \(operator_) has a value of the wrong type")
            default:
                throw invalid("\(key): Unrecognized match type \(operator_)")
            }
        case .bool, .null, .array:
            throw invalid("\(key): a condition is a string, a number or an object")
        }
    }

    /// `["=", 5]`, `["<", 10]`, `[">=", 0, "<", 100]`: one comparison, or a lower then an upper bound.
    private static func bounds(_ items: [JSONValue], key: String) throws -> [Bound] {
        var bounds: [Bound] = []
        var rest = items[...]
        while let first = rest.popFirst() {
            guard case .string(let op) = first, ["=", "<", "<=", ">", ">="].contains(op),
                  case .number(let value)? = rest.popFirst() else {
                throw invalid("\(key): numeric takes pairs of an operator (=, <, <=, >, >=) and a number")
            }
            bounds.append(Bound(op: op, value: value))
        }
        let valid: Bool
        switch bounds.count {
        case 1: valid = true
        case 2: valid = [">", ">="].contains(bounds[0].op) && ["<", "<="].contains(bounds[1].op) && bounds[0].value < bounds[1].value
        default: valid = false
        }
        guard valid else { throw invalid("\(key): numeric takes one comparison or a range (a lower bound, then an upper one)") }
        return bounds
    }

    // MARK: Matching

    private enum Value { case string(String), number(Double) }

    /// What a message attribute offers for matching: its string or number, each element of a
    /// String.Array; a Binary attribute offers nothing (only `exists` sees it).
    private static func values(of attribute: MessageAttributeValue) -> [Value] {
        if attribute.DataType == "String.Array" {
            guard let text = attribute.StringValue,
                  case .array(let items)? = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else { return [] }
            return items.compactMap {
                switch $0 {
                case .string(let s): return .string(s)
                case .number(let n): return .number(n)
                default: return nil
                }
            }
        }
        guard let text = attribute.StringValue else { return [] }
        if attribute.DataType.hasPrefix("Number") { return Double(text).map { [.number($0)] } ?? [] }
        if attribute.DataType.hasPrefix("String") { return [.string(text)] }
        return []
    }

    private static func holds(_ condition: Condition, for value: Value) -> Bool {
        switch (condition, value) {
        case (.string(let s), .string(let v)): return v == s
        case (.number(let n), .number(let v)): return v == n
        case (.prefix(let p), .string(let v)): return v.hasPrefix(p)
        case (.suffix(let p), .string(let v)): return v.hasSuffix(p)
        case (.equalsIgnoreCase(let s), .string(let v)): return v.lowercased() == s.lowercased()
        case (.anythingBut(let strings, _), .string(let v)): return !strings.contains(v)
        case (.anythingBut(_, let numbers), .number(let v)): return !numbers.contains(v)
        case (.anythingButPrefix(let p), .string(let v)): return !v.hasPrefix(p)
        case (.numeric(let bounds), .number(let v)): return bounds.allSatisfy { $0.holds(v) }
        default: return false
        }
    }
}

/// Any JSON value, decoded strictly (a number is never taken for a Bool or the other way round).
enum JSONValue: Decodable, Equatable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let b = try? container.decode(Bool.self) { self = .bool(b) }
        else if let n = try? container.decode(Double.self) { self = .number(n) }
        else if let s = try? container.decode(String.self) { self = .string(s) }
        else if let a = try? container.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }
}
