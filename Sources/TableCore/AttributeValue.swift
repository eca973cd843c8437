import Foundation
import NimbusProtocol

/// A DynamoDB attribute value in DynamoDB JSON: `{"S": "..."}`, `{"N": "12.5"}`, `{"M": {...}}`, ...
/// Decoding validates what DynamoDB validates (numbers, base64, non-empty unique sets), so a bad item
/// is a ValidationException before it reaches the table.
public indirect enum AttributeValue: Equatable, Hashable, Sendable {
    case s(String)
    case n(String)
    case b(Data)
    case bool(Bool)
    case null
    case m([String: AttributeValue])
    case l([AttributeValue])
    case ss([String])
    case ns([String])
    case bs([Data])

    /// The type letter(s) DynamoDB uses.
    public var typeName: String {
        switch self {
        case .s: return "S"
        case .n: return "N"
        case .b: return "B"
        case .bool: return "BOOL"
        case .null: return "NULL"
        case .m: return "M"
        case .l: return "L"
        case .ss: return "SS"
        case .ns: return "NS"
        case .bs: return "BS"
        }
    }

    /// How many maps and lists are nested here (0 for a scalar): DynamoDB takes at most 32.
    public var nesting: Int {
        switch self {
        case .m(let m): return 1 + m.values.reduce(0) { max($0, $1.nesting) }
        case .l(let l): return 1 + l.reduce(0) { max($0, $1.nesting) }
        default: return 0
        }
    }

    public static let maxNesting = 32

    /// DynamoDB's size accounting: name and value bytes (numbers roughly one byte per two digits).
    public var size: Int {
        switch self {
        case .s(let s): return s.utf8.count
        case .n(let n): return (n.filter(\.isNumber).count + 1) / 2 + 1
        case .b(let b): return b.count
        case .bool, .null: return 1
        case .m(let m): return 3 + m.reduce(0) { $0 + $1.key.utf8.count + $1.value.size + 1 }
        case .l(let l): return 3 + l.reduce(0) { $0 + $1.size + 1 }
        case .ss(let v): return v.reduce(0) { $0 + $1.utf8.count }
        case .ns(let v): return v.reduce(0) { $0 + ($1.count + 1) / 2 + 1 }
        case .bs(let v): return v.reduce(0) { $0 + $1.count }
        }
    }
}

public typealias Item = [String: AttributeValue]

/// Why a transaction was cancelled, for one of its actions (DynamoDB's CancellationReason): `None`
/// for an action that was not the cause, `ConditionalCheckFailed` with its message and the item as
/// it was (`item`, which the service keeps only for an action asking for it with
/// ReturnValuesOnConditionCheckFailure ALL_OLD).
public struct CancellationReason: Equatable, Sendable {
    public var code: String
    public var message: String?
    public var item: Item?

    public init(code: String, message: String? = nil, item: Item? = nil) {
        self.code = code
        self.message = message
        self.item = item
    }

    public static let none = CancellationReason(code: "None")
}

public struct TableError: ServiceError, Equatable, Sendable, CustomStringConvertible {
    public var code: String
    public var message: String
    /// A ConditionalCheckFailedException's item as it was when the condition failed (nil: there
    /// was none). The service keeps it only when the request asked for it
    /// (ReturnValuesOnConditionCheckFailure ALL_OLD); then it travels as the error's `Item`.
    public var item: Item?
    /// A TransactionCanceledException's reasons, one per action of the transaction, in order.
    public var cancellationReasons: [CancellationReason]?

    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }

    /// A ConditionalCheckFailedException about `item` (the item as it is; nil when there is none).
    public static func conditionalCheckFailed(_ item: Item?) -> TableError {
        var error = TableError("ConditionalCheckFailedException", "The conditional request failed")
        error.item = item
        return error
    }

    /// DynamoDB's further members of the error: `Item` (a ConditionalCheckFailedException's, when
    /// kept), `CancellationReasons` (a TransactionCanceledException's).
    public var fields: Data? {
        guard item != nil || cancellationReasons != nil else { return nil }
        var out: [UInt8] = [0x7B]
        if let item {
            JSONText.append("\"Item\":", to: &out)
            DynamoJSON.append(item, to: &out)
        }
        if let reasons = cancellationReasons {
            if out.count > 1 { out.append(0x2C) }
            JSONText.append("\"CancellationReasons\":[", to: &out)
            for (i, reason) in reasons.enumerated() {
                if i > 0 { out.append(0x2C) }
                JSONText.append("{\"Code\":", to: &out)
                JSONText.appendString(reason.code, to: &out)
                if let message = reason.message {
                    JSONText.append(",\"Message\":", to: &out)
                    JSONText.appendString(message, to: &out)
                }
                if let item = reason.item {
                    JSONText.append(",\"Item\":", to: &out)
                    DynamoJSON.append(item, to: &out)
                }
                out.append(0x7D)
            }
            out.append(0x5D)
        }
        out.append(0x7D)
        return Data(out)
    }

    /// The same error naming the expression it is about: the condition grammar is shared by
    /// ConditionExpression, FilterExpression, KeyConditionExpression and the values of an
    /// UpdateExpression, and its messages say "ConditionExpression".
    public func about(_ expression: String) -> TableError {
        let prefix = "Invalid ConditionExpression:"
        guard expression != "ConditionExpression", message.hasPrefix(prefix) else { return self }
        return TableError(code, "Invalid \(expression):" + message.dropFirst(prefix.count))
    }
    public static func validation(_ message: String) -> TableError { TableError("ValidationException", message) }
    public var description: String { "\(code): \(message)" }
}

extension AttributeValue: Codable {
    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        guard c.allKeys.count == 1, let key = c.allKeys.first else {
            throw TableError.validation("Supplied AttributeValue has \(c.allKeys.isEmpty ? "no" : "more than one") datatypes set, must contain exactly one of the supported datatypes")
        }
        switch key.stringValue {
        case "S": self = .s(try c.decode(String.self, forKey: key))
        case "N": self = .n(try Self.number(try c.decode(String.self, forKey: key)))
        case "B": self = .b(try Self.base64(try c.decode(String.self, forKey: key)))
        case "BOOL": self = .bool(try c.decode(Bool.self, forKey: key))
        case "NULL":
            guard try c.decode(Bool.self, forKey: key) else { throw TableError.validation("One or more parameter values were invalid: Null attribute value types must have the value of true") }
            self = .null
        case "M": self = .m(try c.decode([String: AttributeValue].self, forKey: key))
        case "L": self = .l(try c.decode([AttributeValue].self, forKey: key))
        case "SS":
            let v = try c.decode([String].self, forKey: key)
            try Self.checkSet(v.count, Set(v).count, "string")
            self = .ss(v)
        case "NS":
            let v = try c.decode([String].self, forKey: key).map(Self.number)
            try Self.checkSet(v.count, Set(v).count, "number")
            self = .ns(v)
        case "BS":
            let v = try c.decode([String].self, forKey: key).map(Self.base64)
            try Self.checkSet(v.count, Set(v).count, "binary")
            self = .bs(v)
        default:
            throw TableError.validation("Supplied AttributeValue has an unknown datatype \(key.stringValue)")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        switch self {
        case .s(let v): try c.encode(v, forKey: Key("S"))
        case .n(let v): try c.encode(v, forKey: Key("N"))
        case .b(let v): try c.encode(v.base64EncodedString(), forKey: Key("B"))
        case .bool(let v): try c.encode(v, forKey: Key("BOOL"))
        case .null: try c.encode(true, forKey: Key("NULL"))
        case .m(let v): try c.encode(v, forKey: Key("M"))
        case .l(let v): try c.encode(v, forKey: Key("L"))
        case .ss(let v): try c.encode(v, forKey: Key("SS"))
        case .ns(let v): try c.encode(v, forKey: Key("NS"))
        case .bs(let v): try c.encode(v.map { $0.base64EncodedString() }, forKey: Key("BS"))
        }
    }

    /// DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 to 9.99E+125. Returned in
    /// the canonical form DynamoDB stores ("Supported data types": numbers are variable length,
    /// leading and trailing zeroes are trimmed): plain decimal notation, an exponent expanded
    /// (`1.5E2` is `150`), no `+`, and zero is `0` whatever its sign.
    static func number(_ text: String) throws -> String {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, trimmed.range(of: #"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"#, options: .regularExpression) != nil else {
            throw TableError.validation("A value provided cannot be converted into a number")
        }
        let parts = trimmed.lowercased().split(separator: "e", maxSplits: 1)
        let negative = parts[0].hasPrefix("-")
        let mantissa = parts[0].filter { $0 != "+" && $0 != "-" }
        guard let exponent = parts.count == 2 ? Int(parts[1]) : 0 else {
            if Array(mantissa.filter(\.isNumber)).allSatisfy({ $0 == "0" }) { return "0" }  // zero, whatever its exponent
            throw TableError.validation("Number overflow. Attempting to store a number with magnitude larger than supported range")
        }
        let integerDigits = mantissa.split(separator: ".", omittingEmptySubsequences: false)[0].count
        var digits = Array(mantissa.filter(\.isNumber))
        guard let firstNonZero = digits.firstIndex(where: { $0 != "0" }) else { return "0" }
        let lastNonZero = digits.lastIndex(where: { $0 != "0" })!
        if lastNonZero - firstNonZero + 1 > 38 {
            throw TableError.validation("Attempting to store more than 38 significant digits in a Number")
        }
        // The power of ten of the leading digit.
        let order = exponent + integerDigits - 1 - firstNonZero
        if order > 125 { throw TableError.validation("Number overflow. Attempting to store a number with magnitude larger than supported range") }
        if order < -130 { throw TableError.validation("Number underflow. Attempting to store a number with magnitude smaller than supported range") }
        // The significant digits, and how many of them stand before the decimal point (order + 1,
        // which may be more than there are digits, or zero or less).
        digits = Array(digits[firstNonZero...lastNonZero])
        let point = order + 1
        var out = negative ? "-" : ""
        if point <= 0 {
            out += "0." + String(repeating: "0", count: -point) + String(digits)
        } else if point >= digits.count {
            out += String(digits) + String(repeating: "0", count: point - digits.count)
        } else {
            out += String(digits[..<point]) + "." + String(digits[point...])
        }
        return out
    }

    static func base64(_ text: String) throws -> Data {
        guard let data = Data(base64Encoded: text) else { throw TableError.validation("Invalid Base64 value in a binary attribute") }
        return data
    }

    static func checkSet(_ count: Int, _ distinct: Int, _ kind: String) throws {
        if count == 0 { throw TableError.validation("One or more parameter values were invalid: An \(kind) set  may not be empty") }
        if distinct != count { throw TableError.validation("One or more parameter values were invalid: Input collection contains duplicates") }
    }
}

extension AttributeValue {
    /// Comparison for conditions: numbers numerically, strings and binaries bytewise; nil when the
    /// types cannot be ordered.
    static func compare(_ a: AttributeValue, _ b: AttributeValue) -> ComparisonResult? {
        switch (a, b) {
        case (.n(let x), .n(let y)):
            guard let dx = Decimal(string: x), let dy = Decimal(string: y) else { return nil }
            return dx == dy ? .orderedSame : (dx < dy ? .orderedAscending : .orderedDescending)
        case (.s(let x), .s(let y)):
            let l = Array(x.utf8), r = Array(y.utf8)
            return l == r ? .orderedSame : (l.lexicographicallyPrecedes(r) ? .orderedAscending : .orderedDescending)
        case (.b(let x), .b(let y)):
            return x == y ? .orderedSame : (x.lexicographicallyPrecedes(y) ? .orderedAscending : .orderedDescending)
        default:
            return nil
        }
    }

    /// Equality as DynamoDB sees it: numbers by value, sets regardless of order.
    static func same(_ a: AttributeValue, _ b: AttributeValue) -> Bool {
        switch (a, b) {
        case (.n, .n): return compare(a, b) == .orderedSame
        case (.ss(let x), .ss(let y)): return Set(x) == Set(y)
        case (.ns(let x), .ns(let y)): return Set(x.compactMap { Decimal(string: $0) }) == Set(y.compactMap { Decimal(string: $0) })
        case (.bs(let x), .bs(let y)): return Set(x) == Set(y)
        default: return a == b
        }
    }
}
