import Foundation

/// A parsed ProjectionExpression: the document paths to return (`Title, #p, address.city,
/// lines[0]`), with `#name` placeholders from ExpressionAttributeNames, as GetItem, Query, Scan,
/// BatchGetItem and TransactGetItems take it.
public struct Projection: Equatable, Sendable {
    public var paths: [Path]

    public init(paths: [Path]) { self.paths = paths }

    /// The parts of `item` the paths name: a top-level attribute whole; a nested one inside its
    /// parents, which keep only what is asked of them (a list keeps the asked elements, in index
    /// order). A path that leads nowhere adds nothing, and a parent left empty is left out.
    public func apply(to item: Item) -> Item {
        var tree = Node()
        for path in paths { tree.insert(path[...]) }
        var out: Item = [:]
        for (name, child) in tree.names {
            guard let value = item[name], let kept = child.project(value) else { continue }
            out[name] = kept
        }
        return out
    }

    /// The requested paths as a tree: a node either takes its whole value (`whole`) or the named
    /// members and indexed elements below it.
    struct Node {
        var whole = false
        var names: [String: Node] = [:]
        var indexes: [Int: Node] = [:]

        mutating func insert(_ path: ArraySlice<PathElement>) {
            guard let head = path.first else { whole = true; return }
            switch head {
            case .name(let n): names[n, default: Node()].insert(path.dropFirst())
            case .index(let i): indexes[i, default: Node()].insert(path.dropFirst())
            }
        }

        func project(_ value: AttributeValue) -> AttributeValue? {
            if whole { return value }
            switch value {
            case .m(let map) where !names.isEmpty:
                var kept: [String: AttributeValue] = [:]
                for (name, child) in names {
                    if let v = map[name], let p = child.project(v) { kept[name] = p }
                }
                return kept.isEmpty ? nil : .m(kept)
            case .l(let list) where !indexes.isEmpty:
                let kept = indexes.keys.sorted().compactMap { i in i < list.count ? indexes[i]!.project(list[i]) : nil }
                return kept.isEmpty ? nil : .l(kept)
            default:
                return nil
            }
        }
    }
}

public enum ProjectionParser {
    /// Parses a ProjectionExpression, returning the `#name` placeholders it used (a request's
    /// names must all be used by one of its expressions). Paths that overlap (`a` and `a.b`, or one
    /// path twice) are refused, as DynamoDB refuses them.
    public static func parse(_ text: String, names: [String: String]?) throws(TableError)
        -> (projection: Projection, usedNames: Set<String>)
    {
        do {
            return try parsePaths(text, names: names)
        } catch {
            throw error.about("ProjectionExpression")
        }
    }

    private static func parsePaths(_ text: String, names: [String: String]?) throws(TableError)
        -> (projection: Projection, usedNames: Set<String>)
    {
        var p = ConditionParser.Parser(tokens: try ConditionParser.tokenize(text), names: names ?? [:], values: [:])
        guard p.peek() != nil else {
            throw TableError.validation("Invalid ConditionExpression: The expression can not be empty;")
        }
        var paths: [Path] = [try p.path()]
        while p.peek() == "," {
            p.at += 1
            paths.append(try p.path())
        }
        if let extra = p.peek() {
            throw TableError.validation("Invalid ConditionExpression: Syntax error; token: \"\(extra)\"")
        }
        for (i, a) in paths.enumerated() {
            for b in paths[(i + 1)...] where a.starts(with: b) || b.starts(with: a) {
                throw TableError.validation("Invalid ConditionExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [\(UpdateParser.describe(a))], path two: [\(UpdateParser.describe(b))]")
            }
        }
        return (Projection(paths: paths), p.usedNames)
    }
}
