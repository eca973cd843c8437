import Foundation
import Synchronization

/// A parsed DynamoDB condition expression: comparisons (= <> < <= > >=), BETWEEN, IN, the functions
/// attribute_exists, attribute_not_exists, attribute_type, begins_with, contains and size, combined
/// with AND, OR, NOT and parentheses; `#name` and `:value` placeholders from
/// ExpressionAttributeNames / ExpressionAttributeValues.
public indirect enum Condition: Equatable, Sendable {
    case compare(Operand, String, Operand)
    case between(Operand, Operand, Operand)
    case isIn(Operand, [Operand])
    case exists(Path)
    case notExists(Path)
    case attributeType(Path, Operand)
    case beginsWith(Path, Operand)
    case contains(Path, Operand)
    case and(Condition, Condition)
    case or(Condition, Condition)
    case not(Condition)
}

public enum PathElement: Equatable, Sendable { case name(String), index(Int) }
public typealias Path = [PathElement]

public indirect enum Operand: Equatable, Sendable {
    case path(Path)
    case value(AttributeValue)
    case size(Path)
}

public enum ConditionParser {
    /// Parses `text`, resolving placeholders; every name and value given must be used, as DynamoDB requires.
    /// With `checkUnused` false (a request with two expressions sharing the placeholders), unused
    /// names and values are not an error here.
    public static func parse(_ text: String, names: [String: String]?, values: [String: AttributeValue]?,
                             checkUnused: Bool = true) throws(TableError) -> Condition {
        let parsed = try parseKeepingPlaceholders(text, names: names, values: values)
        if checkUnused {
            try checkAllUsed(names: names, values: values, usedNames: parsed.usedNames, usedValues: parsed.usedValues)
        }
        return parsed.condition
    }

    /// Parses without the unused-placeholder check, returning the placeholders used: for requests
    /// with two expressions (UpdateItem's update and condition) that share them.
    public static func parseKeepingPlaceholders(_ text: String, names: [String: String]?, values: [String: AttributeValue]?)
        throws(TableError) -> (condition: Condition, usedNames: Set<String>, usedValues: Set<String>)
    {
        // Without placeholders the text alone decides the result: the lab's ingest worker sends
        // `attribute_not_exists(orderID)` with every order.
        let plain = (names ?? [:]).isEmpty && (values ?? [:]).isEmpty
        if plain, let condition = recentPlainConditions.withLock({ $0[text] }) { return (condition, [], []) }
        var parser = Parser(tokens: try tokenize(text), names: names ?? [:], values: values ?? [:])
        let condition = try parser.or()
        guard parser.at == parser.tokens.count else {
            throw TableError.validation("Invalid ConditionExpression: Syntax error; token: \"\(parser.tokens[parser.at])\"")
        }
        if plain {
            recentPlainConditions.withLock { cache in
                if cache.count >= 256 { cache.removeAll() }
                cache[text] = condition
            }
        }
        return (condition, parser.usedNames, parser.usedValues)
    }

    /// Conditions without placeholders parsed lately, by their text.
    private static let recentPlainConditions = Mutex<[String: Condition]>([:])

    /// DynamoDB refuses placeholders that no expression of the request uses.
    public static func checkAllUsed(names: [String: String]?, values: [String: AttributeValue]?,
                                    usedNames: Set<String>, usedValues: Set<String>) throws(TableError) {
        let unusedNames = Set((names ?? [:]).keys).subtracting(usedNames)
        if !unusedNames.isEmpty {
            throw TableError.validation("Value provided in ExpressionAttributeNames unused in expressions: keys: {\(unusedNames.sorted().joined(separator: ", "))}")
        }
        let unusedValues = Set((values ?? [:]).keys).subtracting(usedValues)
        if !unusedValues.isEmpty {
            throw TableError.validation("Value provided in ExpressionAttributeValues unused in expressions: keys: {\(unusedValues.sorted().joined(separator: ", "))}")
        }
    }

    /// Tokens of expressions seen lately: a busy writer sends the same few expressions (the lab's
    /// `attribute_not_exists(orderID)` on every order), and tokenizing by Character is not cheap.
    private static let recentTokens = Mutex<[String: [String]]>([:])

    /// DynamoDB's limit on any one expression string.
    static let maxExpressionBytes = 4096
    /// How deep parentheses and NOTs may nest. DynamoDB's own limit is not documented; ours keeps
    /// the recursive parser (and the evaluation and release of what it builds) far from the end
    /// of a thread's stack, which a 4 KB string of "(" would otherwise reach.
    static let maxNesting = 100

    static func tokenize(_ text: String) throws(TableError) -> [String] {
        guard text.utf8.count <= maxExpressionBytes else {
            throw TableError.validation("Invalid expression: Expression size has exceeded the maximum allowed size; expression size: \(text.utf8.count) bytes (at most \(maxExpressionBytes))")
        }
        if let tokens = recentTokens.withLock({ $0[text] }) { return tokens }
        let tokens = try tokenizeUncached(text)
        recentTokens.withLock { cache in
            if cache.count >= 256 { cache.removeAll() }
            cache[text] = tokens
        }
        return tokens
    }

    private static func tokenizeUncached(_ text: String) throws(TableError) -> [String] {
        var tokens: [String] = []
        let chars = Array(text)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c.isWhitespace { i += 1; continue }
            if "(),[].".contains(c) { tokens.append(String(c)); i += 1; continue }
            if c == "=" { tokens.append("="); i += 1; continue }
            if c == "<" || c == ">" {
                if i + 1 < chars.count, chars[i + 1] == "=" || (c == "<" && chars[i + 1] == ">") {
                    tokens.append(String([c, chars[i + 1]])); i += 2
                } else { tokens.append(String(c)); i += 1 }
                continue
            }
            if c == "+" || c == "-" { tokens.append(String(c)); i += 1; continue }
            if c.isLetter || c.isNumber || c == "_" || c == "#" || c == ":" {
                // Placeholders may contain dashes; a bare dash elsewhere is subtraction (update expressions).
                let placeholder = c == "#" || c == ":"
                var j = i + 1
                while j < chars.count, chars[j].isLetter || chars[j].isNumber || chars[j] == "_" || (placeholder && chars[j] == "-") { j += 1 }
                tokens.append(String(chars[i..<j]))
                i = j
                continue
            }
            throw TableError.validation("Invalid ConditionExpression: Syntax error; token: \"\(c)\"")
        }
        return tokens
    }

    struct Parser {
        let tokens: [String]
        let names: [String: String]
        let values: [String: AttributeValue]
        var at = 0
        var usedNames: Set<String> = []
        var usedValues: Set<String> = []
        /// Open parentheses and NOTs around the current token (see `maxNesting`).
        var depth = 0

        func peek(_ offset: Int = 0) -> String? { at + offset < tokens.count ? tokens[at + offset] : nil }

        mutating func nest() throws(TableError) {
            depth += 1
            guard depth <= ConditionParser.maxNesting else {
                throw TableError.validation("Invalid ConditionExpression: The expression has more than \(ConditionParser.maxNesting) nested levels of parentheses and NOT")
            }
        }

        mutating func keyword(_ word: String) -> Bool {
            guard let t = peek(), t.uppercased() == word else { return false }
            at += 1
            return true
        }

        mutating func expect(_ token: String) throws(TableError) {
            guard peek() == token else {
                throw TableError.validation("Invalid ConditionExpression: Syntax error; expected \"\(token)\" near \"\(peek() ?? "end of input")\"")
            }
            at += 1
        }

        mutating func or() throws(TableError) -> Condition {
            var left = try and()
            while keyword("OR") { left = .or(left, try and()) }
            return left
        }

        mutating func and() throws(TableError) -> Condition {
            var left = try not()
            while keyword("AND") { left = .and(left, try not()) }
            return left
        }

        mutating func not() throws(TableError) -> Condition {
            if keyword("NOT") {
                try nest()
                defer { depth -= 1 }
                return .not(try not())
            }
            return try primary()
        }

        mutating func primary() throws(TableError) -> Condition {
            if peek() == "(" {
                at += 1
                try nest()
                defer { depth -= 1 }
                let inner = try or()
                try expect(")")
                return inner
            }
            if let name = peek(), peek(1) == "(" {
                switch name {
                case "attribute_exists": at += 2; let p = try path(); try expect(")"); return .exists(p)
                case "attribute_not_exists": at += 2; let p = try path(); try expect(")"); return .notExists(p)
                case "attribute_type", "begins_with", "contains":
                    at += 2
                    let p = try path()
                    try expect(",")
                    let o = try operand()
                    try expect(")")
                    return name == "attribute_type" ? .attributeType(p, o) : name == "begins_with" ? .beginsWith(p, o) : .contains(p, o)
                case "size": break
                default: throw TableError.validation("Invalid ConditionExpression: Invalid function name; function: \(name)")
                }
            }
            let left = try operand()
            if let op = peek(), ["=", "<>", "<", "<=", ">", ">="].contains(op) {
                at += 1
                return .compare(left, op, try operand())
            }
            if keyword("BETWEEN") {
                let low = try operand()
                guard keyword("AND") else { throw TableError.validation("Invalid ConditionExpression: BETWEEN needs AND") }
                return .between(left, low, try operand())
            }
            if keyword("IN") {
                try expect("(")
                var list = [try operand()]
                while peek() == "," { at += 1; list.append(try operand()) }
                try expect(")")
                return .isIn(left, list)
            }
            throw TableError.validation("Invalid ConditionExpression: Syntax error; a comparison or function is expected near \"\(peek() ?? "end of input")\"")
        }

        mutating func operand() throws(TableError) -> Operand {
            guard let t = peek() else { throw TableError.validation("Invalid ConditionExpression: Syntax error; unexpected end of input") }
            if t.hasPrefix(":") {
                at += 1
                guard let v = values[t] else {
                    throw TableError.validation("Value provided in ExpressionAttributeValues unused in expressions: An expression attribute value used in expression is not defined; attribute value: \(t)")
                }
                usedValues.insert(t)
                return .value(v)
            }
            if t == "size", peek(1) == "(" {
                at += 2
                let p = try path()
                try expect(")")
                return .size(p)
            }
            return .path(try path())
        }

        mutating func path() throws(TableError) -> Path {
            var out: Path = [try name()]
            while let t = peek() {
                if t == "." { at += 1; out.append(try name()); continue }
                if t == "[" {
                    at += 1
                    guard let n = peek().flatMap(Int.init), n >= 0 else { throw TableError.validation("Invalid ConditionExpression: a list index must be a non-negative integer") }
                    at += 1
                    try expect("]")
                    out.append(.index(n))
                    continue
                }
                break
            }
            return out
        }

        mutating func name() throws(TableError) -> PathElement {
            guard let t = peek() else { throw TableError.validation("Invalid ConditionExpression: Syntax error; an attribute name is expected") }
            if t.hasPrefix("#") {
                guard let real = names[t] else {
                    throw TableError.validation("Invalid ConditionExpression: An expression attribute name used in the document path is not defined; attribute name: \(t)")
                }
                usedNames.insert(t)
                at += 1
                return .name(real)
            }
            guard let first = t.first, first.isLetter || first == "_", !t.hasPrefix(":") else {
                throw TableError.validation("Invalid ConditionExpression: Syntax error; token: \"\(t)\"")
            }
            if ["AND", "OR", "NOT", "BETWEEN", "IN"].contains(t.uppercased()) {
                throw TableError.validation("Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: \(t)")
            }
            at += 1
            return .name(t)
        }
    }
}

public enum ConditionEvaluator {
    /// Evaluates against `item` (nil: no item exists).
    public static func holds(_ condition: Condition, on item: Item?) -> Bool {
        switch condition {
        case .and(let a, let b): return holds(a, on: item) && holds(b, on: item)
        case .or(let a, let b): return holds(a, on: item) || holds(b, on: item)
        case .not(let a): return !holds(a, on: item)
        case .exists(let p): return resolve(p, item) != nil
        case .notExists(let p): return resolve(p, item) == nil
        case .attributeType(let p, let o):
            guard let v = resolve(p, item), case .s(let type)? = value(o, item) else { return false }
            return v.typeName == type
        case .beginsWith(let p, let o):
            switch (resolve(p, item), value(o, item)) {
            case (.s(let s)?, .s(let prefix)?): return s.hasPrefix(prefix)
            case (.b(let b)?, .b(let prefix)?): return b.starts(with: prefix)
            default: return false
            }
        case .contains(let p, let o):
            guard let v = resolve(p, item), let needle = value(o, item) else { return false }
            switch (v, needle) {
            case (.s(let s), .s(let n)): return s.contains(n)
            case (.ss(let set), .s(let n)): return set.contains(n)
            case (.ns(let set), .n): return set.contains { AttributeValue.same(.n($0), needle) }
            case (.bs(let set), .b(let n)): return set.contains(n)
            case (.l(let list), _): return list.contains { AttributeValue.same($0, needle) }
            default: return false
            }
        case .compare(let l, let op, let r):
            guard let a = value(l, item), let b = value(r, item) else { return false }
            switch op {
            case "=": return AttributeValue.same(a, b)
            case "<>": return !AttributeValue.same(a, b)
            default:
                guard let order = AttributeValue.compare(a, b) else { return false }
                switch op {
                case "<": return order == .orderedAscending
                case "<=": return order != .orderedDescending
                case ">": return order == .orderedDescending
                default: return order != .orderedAscending
                }
            }
        case .between(let x, let low, let high):
            guard let v = value(x, item), let lo = value(low, item), let hi = value(high, item),
                  let a = AttributeValue.compare(v, lo), let b = AttributeValue.compare(v, hi) else { return false }
            return a != .orderedAscending && b != .orderedDescending
        case .isIn(let x, let list):
            guard let v = value(x, item) else { return false }
            return list.contains { value($0, item).map { AttributeValue.same(v, $0) } ?? false }
        }
    }

    static func value(_ operand: Operand, _ item: Item?) -> AttributeValue? {
        switch operand {
        case .value(let v): return v
        case .path(let p): return resolve(p, item)
        case .size(let p):
            guard let v = resolve(p, item) else { return nil }
            switch v {
            case .s(let s): return .n("\(s.utf8.count)")
            case .b(let b): return .n("\(b.count)")
            case .m(let m): return .n("\(m.count)")
            case .l(let l): return .n("\(l.count)")
            case .ss(let x): return .n("\(x.count)")
            case .ns(let x): return .n("\(x.count)")
            case .bs(let x): return .n("\(x.count)")
            default: return nil
            }
        }
    }

    static func resolve(_ path: Path, _ item: Item?) -> AttributeValue? {
        guard let item, case .name(let first)? = path.first, var current = item[first] else { return nil }
        for element in path.dropFirst() {
            switch (element, current) {
            case (.name(let n), .m(let map)): guard let next = map[n] else { return nil }; current = next
            case (.index(let i), .l(let list)): guard i < list.count else { return nil }; current = list[i]
            default: return nil
            }
        }
        return current
    }
}
