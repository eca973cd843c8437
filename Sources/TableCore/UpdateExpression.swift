import Foundation

/// A parsed DynamoDB update expression: `SET a = :v, b = b + :n, c = if_not_exists(c, :z),
/// l = list_append(l, :more)`, `REMOVE a, l[0]`, `ADD n :one, s :set`, `DELETE s :set`, with the same
/// `#name` / `:value` placeholders as conditions.
public struct UpdateExpression: Equatable, Sendable {
    /// A SET's right-hand side. DynamoDB's grammar: `value ::= operand | operand + operand |
    /// operand - operand`, `operand ::= path | :value | function`, `function ::= if_not_exists(path,
    /// operand) | list_append(operand, operand)`: functions nest (`list_append(if_not_exists(l,
    /// :empty), :more)`).
    public indirect enum Value: Equatable, Sendable {
        case operand(Operand)
        case ifNotExists(Path, Value)
        case listAppend(Value, Value)
        case plus(Value, Value)
        case minus(Value, Value)
    }

    public enum Action: Equatable, Sendable {
        case set(Path, Value)
        case remove(Path)
        case add(Path, AttributeValue)
        case delete(Path, AttributeValue)

        public var path: Path {
            switch self {
            case .set(let p, _), .remove(let p), .add(let p, _), .delete(let p, _): return p
            }
        }
    }

    public var actions: [Action]
}

public enum UpdateParser {
    /// Parses an UpdateExpression. Returns the placeholders it used, so a request with a condition as
    /// well can check that every name and value given is used by one of the two.
    public static func parse(_ text: String, names: [String: String]?, values: [String: AttributeValue]?)
        throws(TableError) -> (expression: UpdateExpression, usedNames: Set<String>, usedValues: Set<String>)
    {
        do {
            return try parseActions(text, names: names, values: values)
        } catch {
            throw error.about("UpdateExpression")
        }
    }

    private static func parseActions(_ text: String, names: [String: String]?, values: [String: AttributeValue]?)
        throws(TableError) -> (expression: UpdateExpression, usedNames: Set<String>, usedValues: Set<String>)
    {
        var p = ConditionParser.Parser(tokens: try ConditionParser.tokenize(text), names: names ?? [:], values: values ?? [:])
        var actions: [UpdateExpression.Action] = []
        var clauses: Set<String> = []
        func syntax(_ near: String?) -> TableError {
            TableError.validation("Invalid UpdateExpression: Syntax error; token: \"\(near ?? "<EOF>")\"")
        }
        while let word = p.peek()?.uppercased() {
            guard ["SET", "REMOVE", "ADD", "DELETE"].contains(word) else { throw syntax(p.peek()) }
            guard clauses.insert(word).inserted else {
                throw TableError.validation("Invalid UpdateExpression: The \"\(word)\" section can only be used once in an update expression")
            }
            p.at += 1
            var firstOfClause = true
            repeat {
                if !firstOfClause { p.at += 1 }  // the comma
                firstOfClause = false
                let path = try p.path()
                switch word {
                case "SET":
                    try p.expect("=")
                    actions.append(.set(path, try value(&p)))
                case "REMOVE":
                    actions.append(.remove(path))
                default:
                    guard case .value(let v) = try p.operand() else {
                        throw TableError.validation("Invalid UpdateExpression: \(word) needs an expression attribute value, not a path")
                    }
                    actions.append(word == "ADD" ? .add(path, v) : .delete(path, v))
                }
            } while p.peek() == ","
        }
        if actions.isEmpty { throw TableError.validation("Invalid UpdateExpression: The expression can not be empty") }
        // Two actions on overlapping paths (a and a.b) are ambiguous; DynamoDB refuses them.
        for (i, a) in actions.enumerated() {
            for b in actions[(i + 1)...] where a.path.starts(with: b.path) || b.path.starts(with: a.path) {
                throw TableError.validation("Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [\(describe(a.path))], path two: [\(describe(b.path))]")
            }
        }
        return (UpdateExpression(actions: actions), p.usedNames, p.usedValues)
    }

    static func describe(_ path: Path) -> String {
        path.map { if case .name(let n) = $0 { return n } else if case .index(let i) = $0 { return "[\(i)]" } else { return "" } }
            .joined(separator: ", ")
    }

    private static func value(_ p: inout ConditionParser.Parser) throws(TableError) -> UpdateExpression.Value {
        var left = try term(&p)
        while let op = p.peek(), op == "+" || op == "-" {
            p.at += 1
            let right = try term(&p)
            left = op == "+" ? .plus(left, right) : .minus(left, right)
        }
        return left
    }

    private static func term(_ p: inout ConditionParser.Parser) throws(TableError) -> UpdateExpression.Value {
        if let name = p.peek(), p.peek(1) == "(" {
            switch name {
            case "if_not_exists":
                p.at += 2
                let path = try p.path()
                try p.expect(",")
                let fallback = try term(&p)
                try p.expect(")")
                return .ifNotExists(path, fallback)
            case "list_append":
                p.at += 2
                let a = try term(&p)
                try p.expect(",")
                let b = try term(&p)
                try p.expect(")")
                return .listAppend(a, b)
            default:
                throw TableError.validation("Invalid UpdateExpression: Invalid function name; function: \(name)")
            }
        }
        return .operand(try p.operand())
    }
}

/// Applies an update expression to an item (pure; the key is checked by the caller).
public enum UpdateEvaluator {
    public static func apply(_ expression: UpdateExpression, to item: Item) throws(TableError) -> Item {
        var out = item
        // Every right-hand side reads the item as it was before the update, as DynamoDB does.
        for action in expression.actions {
            switch action {
            case .set(let path, let value):
                try assign(&out, path, try evaluate(value, item))
            case .remove(let path):
                try remove(&out, path)
            case .add(let path, let v):
                switch (ConditionEvaluator.resolve(path, item), v) {
                case (nil, .n), (nil, .ss), (nil, .ns), (nil, .bs): try assign(&out, path, v)
                case (.n(let a)?, .n(let b)): try assign(&out, path, try arithmetic(a, b, +))
                case (.ss(let a)?, .ss(let b)): try assign(&out, path, .ss(a + b.filter { !a.contains($0) }))
                case (.ns(let a)?, .ns(let b)):
                    try assign(&out, path, .ns(a + b.filter { n in !a.contains { AttributeValue.same(.n($0), .n(n)) } }))
                case (.bs(let a)?, .bs(let b)): try assign(&out, path, .bs(a + b.filter { !a.contains($0) }))
                default: throw TableError.validation("An operand in the update expression has an incorrect data type")
                }
            case .delete(let path, let v):
                let remaining: AttributeValue?
                switch (ConditionEvaluator.resolve(path, item), v) {
                case (nil, .ss), (nil, .ns), (nil, .bs): continue
                case (.ss(let a)?, .ss(let b)): remaining = a.filter { !b.contains($0) }.isEmpty ? nil : .ss(a.filter { !b.contains($0) })
                case (.ns(let a)?, .ns(let b)):
                    let left = a.filter { n in !b.contains { AttributeValue.same(.n($0), .n(n)) } }
                    remaining = left.isEmpty ? nil : .ns(left)
                case (.bs(let a)?, .bs(let b)): remaining = a.filter { !b.contains($0) }.isEmpty ? nil : .bs(a.filter { !b.contains($0) })
                default: throw TableError.validation("An operand in the update expression has an incorrect data type")
                }
                // An emptied set is removed: DynamoDB has no empty sets.
                if let remaining { try assign(&out, path, remaining) } else { try remove(&out, path) }
            }
        }
        return out
    }

    static func evaluate(_ value: UpdateExpression.Value, _ item: Item) throws(TableError) -> AttributeValue {
        switch value {
        case .operand(let o):
            guard let v = ConditionEvaluator.value(o, item) else { throw missing(o) }
            return v
        case .ifNotExists(let path, let fallback):
            if let v = ConditionEvaluator.resolve(path, item) { return v }
            return try evaluate(fallback, item)
        case .listAppend(let a, let b):
            let x = try evaluate(a, item), y = try evaluate(b, item)
            guard case .l(let first) = x, case .l(let second) = y else {
                throw TableError.validation("An operand in the update expression has an incorrect data type")
            }
            return .l(first + second)
        case .plus(let a, let b), .minus(let a, let b):
            guard case .n(let x) = try evaluate(a, item), case .n(let y) = try evaluate(b, item) else {
                throw TableError.validation("An operand in the update expression has an incorrect data type")
            }
            if case .plus = value { return try arithmetic(x, y, +) }
            return try arithmetic(x, y, -)
        }
    }

    static func missing(_ operand: Operand) -> TableError {
        TableError.validation("The provided expression refers to an attribute that does not exist in the item")
    }

    static func arithmetic(_ a: String, _ b: String, _ op: (Decimal, Decimal) -> Decimal) throws(TableError) -> AttributeValue {
        guard let x = Decimal(string: a), let y = Decimal(string: b) else { throw TableError.validation("The number is not valid: \(a), \(b)") }
        // Stored as DynamoDB stores any number: canonical, and within its range.
        do { return .n(try AttributeValue.number("\(op(x, y))")) } catch let error as TableError { throw error } catch {
            throw TableError.validation("The number is not valid: \(a), \(b)")
        }
    }

    /// Sets the value at `path`; the parents must exist (DynamoDB does not create them).
    static func assign(_ item: inout Item, _ path: Path, _ value: AttributeValue) throws(TableError) {
        guard case .name(let first)? = path.first else { throw invalidPath() }
        if path.count == 1 { item[first] = value; return }
        guard var root = item[first] else { throw invalidPath() }
        try assign(&root, ArraySlice(path.dropFirst()), value)
        item[first] = root
    }

    private static func assign(_ node: inout AttributeValue, _ rest: ArraySlice<PathElement>, _ value: AttributeValue) throws(TableError) {
        guard let head = rest.first else { node = value; return }
        switch (head, node) {
        case (.name(let n), .m(var map)):
            if rest.count == 1 { map[n] = value } else {
                guard var child = map[n] else { throw invalidPath() }
                try assign(&child, rest.dropFirst(), value)
                map[n] = child
            }
            node = .m(map)
        case (.index(let i), .l(var list)):
            if rest.count == 1 {
                // Past the end appends, as DynamoDB does.
                if i < list.count { list[i] = value } else { list.append(value) }
            } else {
                guard i < list.count else { throw invalidPath() }
                try assign(&list[i], rest.dropFirst(), value)
            }
            node = .l(list)
        default: throw invalidPath()
        }
    }

    static func remove(_ item: inout Item, _ path: Path) throws(TableError) {
        guard case .name(let first)? = path.first else { throw invalidPath() }
        if path.count == 1 { item[first] = nil; return }
        guard var root = item[first] else { return }
        try remove(&root, ArraySlice(path.dropFirst()))
        item[first] = root
    }

    private static func remove(_ node: inout AttributeValue, _ rest: ArraySlice<PathElement>) throws(TableError) {
        guard let head = rest.first else { return }
        switch (head, node) {
        case (.name(let n), .m(var map)):
            if rest.count == 1 { map[n] = nil } else if var child = map[n] {
                try remove(&child, rest.dropFirst())
                map[n] = child
            }
            node = .m(map)
        case (.index(let i), .l(var list)):
            guard i < list.count else { return }
            if rest.count == 1 { list.remove(at: i) } else { try remove(&list[i], rest.dropFirst()) }
            node = .l(list)
        default: throw invalidPath()
        }
    }

    static func invalidPath() -> TableError {
        TableError.validation("The document path provided in the update expression is invalid for update")
    }
}
