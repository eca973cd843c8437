import Foundation

/// IAM condition operators. Within a block: operators AND-ed, keys AND-ed, a key's values OR-ed.
/// A key missing from the request fails the condition, except for negated operators and `...IfExists`,
/// and `Null`, which tests for exactly that. `ForAnyValue:` / `ForAllValues:` set prefixes apply to
/// multi-valued keys.
enum ConditionEvaluator {
    static func all(_ conditions: [String: [String: [String]]], _ context: [String: [String]]) -> Bool {
        for (op, keys) in conditions {
            for (key, values) in keys where !holds(op, key: key.lowercased(), values, context) { return false }
        }
        return true
    }

    static func holds(_ rawOperator: String, key: String, _ policyValues: [String], _ context: [String: [String]]) -> Bool {
        var op = rawOperator
        var setMode: String?
        for prefix in ["ForAnyValue:", "ForAllValues:"] where op.hasPrefix(prefix) {
            setMode = prefix
            op = String(op.dropFirst(prefix.count))
        }
        var ifExists = false
        if op.hasSuffix("IfExists") {
            ifExists = true
            op = String(op.dropLast("IfExists".count))
        }
        if op == "Null" {
            let isNull = context[key] == nil
            return policyValues.contains { ($0.lowercased() == "true") == isNull }
        }
        let negated = op.contains("Not")
        guard let requestValues = context[key], !requestValues.isEmpty else {
            if setMode == "ForAllValues:" { return true }
            return ifExists || negated
        }
        let positive = positiveOperator(op)
        func one(_ value: String) -> Bool {
            let match = policyValues.contains { compare(positive, $0, value) }
            return negated ? !match : match
        }
        switch setMode {
        case "ForAllValues:": return requestValues.allSatisfy(one)
        case "ForAnyValue:": return requestValues.contains(where: one)
        default: return negated ? requestValues.allSatisfy(one) : requestValues.contains(where: one)
        }
    }

    static func positiveOperator(_ op: String) -> String {
        switch op {
        case "StringNotEquals": return "StringEquals"
        case "StringNotEqualsIgnoreCase": return "StringEqualsIgnoreCase"
        case "StringNotLike": return "StringLike"
        case "NumericNotEquals": return "NumericEquals"
        case "DateNotEquals": return "DateEquals"
        case "ArnNotEquals": return "ArnEquals"
        case "ArnNotLike": return "ArnLike"
        default: return op
        }
    }

    static func compare(_ op: String, _ policy: String, _ value: String) -> Bool {
        switch op {
        case "StringEquals": return policy == value
        case "StringEqualsIgnoreCase": return policy.lowercased() == value.lowercased()
        case "StringLike": return Glob.matches(policy, value, caseInsensitive: false)
        case "ArnEquals", "ArnLike": return arnMatches(policy, value)
        case "Bool": return policy.lowercased() == value.lowercased()
        case "NumericEquals", "NumericLessThan", "NumericLessThanEquals", "NumericGreaterThan", "NumericGreaterThanEquals":
            guard let p = Double(policy), let v = Double(value) else { return false }
            switch op {
            case "NumericEquals": return v == p
            case "NumericLessThan": return v < p
            case "NumericLessThanEquals": return v <= p
            case "NumericGreaterThan": return v > p
            default: return v >= p
            }
        case "DateEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals":
            guard let p = date(policy), let v = date(value) else { return false }
            switch op {
            case "DateEquals": return v == p
            case "DateLessThan": return v < p
            case "DateLessThanEquals": return v <= p
            case "DateGreaterThan": return v > p
            default: return v >= p
            }
        case "IpAddress", "NotIpAddress":
            return false  // no IP context in the cluster
        default:
            return false  // an operator we do not know never matches (fail closed)
        }
    }

    /// ARNs compare part by part, each part with wildcards (the resource part may contain colons).
    static func arnMatches(_ pattern: String, _ value: String) -> Bool {
        let p = pattern.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
        let v = value.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
        guard p.count == 6, v.count == 6 else { return pattern == "*" }
        return zip(p, v).allSatisfy { Glob.matches(String($0), String($1), caseInsensitive: false) }
    }

    static func date(_ text: String) -> Double? {
        if let epoch = Double(text) { return epoch }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = formatter.date(from: text) { return d.timeIntervalSince1970 }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)?.timeIntervalSince1970
    }
}
