import Foundation
import Yams

/// A CloudFormation template (YAML) as far as Nimbus reads one: Parameters with defaults, and
/// Resources with a Type and Properties. Intrinsics (`!Ref`, `!GetAtt`, `!Sub`, and their
/// `{"Ref": ...}` / `{"Fn::GetAtt": ...}` forms) are kept as values and resolved by the service that
/// creates the resource, since only it knows its resources' ARNs and URLs.
public struct StackTemplate: Sendable {
    public var parameters: [String: String]
    /// In dependency order: a resource comes after every resource it refers to.
    public var resources: [Resource]

    public struct Resource: Sendable {
        public var logicalID: String
        public var type: String
        public var properties: [String: StackValue]
    }

    public static func load(path: String) throws -> StackTemplate {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw StackError("cannot read stack \(path): \(error.localizedDescription)")
        }
        return try parse(text, source: path)
    }

    public static func parse(_ yaml: String, source: String = "stack") throws -> StackTemplate {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch { throw StackError("\(source): not valid YAML: \(error)") }
        guard let root, case .mapping(let top) = root else { throw StackError("\(source): a template is a mapping") }
        var parameters: [String: String] = [:]
        if let params = top["Parameters"], case .mapping(let map) = params {
            for (key, value) in map {
                if case .mapping(let spec) = value, let d = spec["Default"]?.string { parameters[key.string ?? ""] = d }
            }
        }
        guard let resourcesNode = top["Resources"], case .mapping(let resourceMap) = resourcesNode else {
            throw StackError("\(source): no Resources")
        }
        var resources: [Resource] = []
        for (key, value) in resourceMap {
            guard let id = key.string, case .mapping(let spec) = value, let type = spec["Type"]?.string else {
                throw StackError("\(source): resource \(key.string ?? "?") needs a Type")
            }
            var properties: [String: StackValue] = [:]
            if let props = spec["Properties"] {
                guard case .map(let map) = try StackValue(props) else { throw StackError("\(source): \(id).Properties is not a mapping") }
                properties = map
            }
            resources.append(Resource(logicalID: id, type: type, properties: properties))
        }
        return StackTemplate(parameters: parameters, resources: try order(resources, source: source))
    }

    /// Topological order by references, so a dead-letter queue exists before the queue naming it.
    static func order(_ resources: [Resource], source: String) throws -> [Resource] {
        let byID = Dictionary(uniqueKeysWithValues: resources.map { ($0.logicalID, $0) })
        var done: [String] = []
        var visiting: Set<String> = []
        func visit(_ id: String) throws {
            if done.contains(id) { return }
            guard visiting.insert(id).inserted else { throw StackError("\(source): resources refer to each other in a cycle at \(id)") }
            for dep in byID[id]!.properties.values.flatMap(\.references).sorted() where byID[dep] != nil { try visit(dep) }
            visiting.remove(id)
            done.append(id)
        }
        for id in byID.keys.sorted() { try visit(id) }
        return done.map { byID[$0]! }
    }

    public func resources(ofType type: String) -> [Resource] { resources.filter { $0.type == type } }

    /// What `!Ref` and `!GetAtt X.Arn` mean for the resource types Nimbus creates, worked out from the
    /// template itself (their names are explicit properties), so any service can resolve a reference
    /// to a resource another service owns.
    public func physicalReference(_ id: String, attribute: String?, region: String, account: String) -> String? {
        guard let r = resources.first(where: { $0.logicalID == id }) else { return nil }
        func name(_ key: String) -> String? {
            if case .string(let n)? = r.properties[key] { return n }
            return id
        }
        switch (r.type, attribute) {
        case ("AWS::SQS::Queue", nil): return name("QueueName").map { "https://sqs.\(region).amazonaws.com/\(account)/\($0)" }
        case ("AWS::SQS::Queue", "Arn"): return name("QueueName").map { "arn:aws:sqs:\(region):\(account):\($0)" }
        case ("AWS::SQS::Queue", "QueueName"): return name("QueueName")
        case ("AWS::IAM::Role", nil): return name("RoleName")
        case ("AWS::IAM::Role", "Arn"): return name("RoleName").map { "arn:aws:iam::\(account):role/\($0)" }
        case ("AWS::IAM::ManagedPolicy", nil): return name("ManagedPolicyName").map { "arn:aws:iam::\(account):policy/\($0)" }
        case ("AWS::SNS::Topic", nil), ("AWS::SNS::Topic", "TopicArn"): return name("TopicName").map { "arn:aws:sns:\(region):\(account):\($0)" }
        case ("AWS::SNS::Topic", "TopicName"): return name("TopicName")
        default: return nil
        }
    }
}

/// A property value, intrinsics kept.
public indirect enum StackValue: Sendable, Equatable {
    case string(String)
    case list([StackValue])
    case map([String: StackValue])
    case ref(String)
    case getAtt(String, String)
    case sub(String)

    init(_ node: Node) throws {
        switch node {
        case .scalar(let scalar):
            switch node.tag.description {
            case "!Ref": self = .ref(scalar.string)
            case "!GetAtt":
                let parts = scalar.string.split(separator: ".", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw StackError("!GetAtt \(scalar.string) must be Resource.Attribute") }
                self = .getAtt(parts[0], parts[1])
            case "!Sub": self = .sub(scalar.string)
            default: self = .string(scalar.string)
            }
        case .sequence(let seq):
            if node.tag.description == "!GetAtt", seq.count == 2, let a = seq[0].string, let b = seq[1].string {
                self = .getAtt(a, b)
                return
            }
            self = .list(try seq.map(StackValue.init))
        case .mapping(let map):
            var out: [String: StackValue] = [:]
            for (k, v) in map { out[k.string ?? ""] = try StackValue(v) }
            if out.count == 1, case .string(let target)? = out["Ref"] { self = .ref(target); return }
            if out.count == 1, case .list(let parts)? = out["Fn::GetAtt"], parts.count == 2,
               case .string(let a) = parts[0], case .string(let b) = parts[1] { self = .getAtt(a, b); return }
            if out.count == 1, case .string(let text)? = out["Fn::Sub"] { self = .sub(text); return }
            self = .map(out)
        case .alias:
            throw StackError("YAML aliases are not supported in stacks")
        }
    }

    /// Logical ids this value refers to.
    public var references: [String] {
        switch self {
        case .string: return []
        case .ref(let id): return [id]
        case .getAtt(let id, _): return [id]
        case .sub(let text):
            return text.components(separatedBy: "${").dropFirst().compactMap { $0.split(separator: "}").first.map(String.init) }
                .map { $0.split(separator: ".").first.map(String.init) ?? $0 }.filter { !$0.hasPrefix("AWS::") }
        case .list(let items): return items.flatMap(\.references)
        case .map(let map): return map.values.flatMap(\.references)
        }
    }
}

/// Resolves intrinsics: the service supplies what `!Ref X` and `!GetAtt X.Attr` mean for the
/// resources it knows, parameters and pseudo parameters come from the template and the cluster.
public struct StackResolver {
    public var parameters: [String: String]
    public var region: String
    public var account: String
    public var ref: (String) -> String?
    public var getAtt: (String, String) -> String?

    /// `ref` and `getAtt` answer first; what they leave is resolved from the template's own names.
    public init(template: StackTemplate, overrides: [String: String] = [:], region: String, account: String,
                ref: @escaping (String) -> String? = { _ in nil }, getAtt: @escaping (String, String) -> String? = { _, _ in nil }) {
        self.parameters = template.parameters.merging(overrides) { $1 }
        self.region = region
        self.account = account
        self.ref = { id in ref(id) ?? template.physicalReference(id, attribute: nil, region: region, account: account) }
        self.getAtt = { id, attribute in getAtt(id, attribute) ?? template.physicalReference(id, attribute: attribute, region: region, account: account) }
    }

    public func string(_ value: StackValue) throws -> String {
        switch value {
        case .string(let s): return s
        case .ref(let id):
            if id == "AWS::Region" { return region }
            if id == "AWS::AccountId" { return account }
            if let p = parameters[id] { return p }
            if let r = ref(id) { return r }
            throw StackError("!Ref \(id): no such parameter or resource")
        case .getAtt(let id, let attribute):
            guard let r = getAtt(id, attribute) else { throw StackError("!GetAtt \(id).\(attribute): not known") }
            return r
        case .sub(let text):
            var out = ""
            var rest = Substring(text)
            while let open = rest.range(of: "${") {
                out += rest[..<open.lowerBound]
                guard let close = rest[open.upperBound...].firstIndex(of: "}") else { throw StackError("!Sub \(text): unclosed ${") }
                let name = String(rest[open.upperBound..<close])
                let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
                out += try parts.count == 2 ? string(.getAtt(parts[0], parts[1])) : string(.ref(name))
                rest = rest[rest.index(after: close)...]
            }
            return out + rest
        case .list, .map:
            throw StackError("expected a string, got a \(value)")
        }
    }

    /// Any value as JSON text with intrinsics resolved (policy documents written as YAML). Scalars
    /// stay strings, which is what IAM compares anyway.
    public func jsonText(_ value: StackValue) throws -> String {
        switch value {
        case .list(let items):
            return "[" + (try items.map { try jsonText($0) }).joined(separator: ",") + "]"
        case .map(let map):
            return "{" + (try map.keys.sorted().map { key in try Self.quote(key) + ":" + jsonText(map[key]!) }).joined(separator: ",") + "}"
        default:
            return Self.quote(try string(value))
        }
    }

    static func quote(_ text: String) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: [text]), let array = String(data: data, encoding: .utf8) else { return "\"\"" }
        return String(array.dropFirst().dropLast())
    }

    /// A flat mapping of strings (e.g. an SQS RedrivePolicy), resolved.
    public func json(_ value: StackValue) throws -> String {
        switch value {
        case .map(let map):
            let parts = try map.keys.sorted().map { key -> String in
                let v = map[key]!
                if case .string(let s) = v, Int(s) != nil { return "\"\(key)\":\(s)" }
                return "\"\(key)\":\"\(try string(v))\""
            }
            return "{" + parts.joined(separator: ",") + "}"
        default:
            return try string(value)
        }
    }
}

public struct StackError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
