import Foundation
import NimbusProtocol

/// An IAM policy document as AWS writes it: Version, and one statement or a list of them. Parsing is
/// strict about what AWS rejects (an unknown Effect, a statement with both Action and NotAction) so a
/// policy never means less than it says.
public struct PolicyDocument: Sendable, Equatable {
    public var version: String?
    public var statements: [Statement]

    public struct Statement: Sendable, Equatable {
        public var sid: String?
        public var effect: Effect
        /// Exactly one of actions / notActions is set (AWS requires one).
        public var actions: [String]?
        public var notActions: [String]?
        /// Identity policies need one of these; resource policies may leave both out (the resource itself).
        public var resources: [String]?
        public var notResources: [String]?
        /// Resource and trust policies name who they apply to.
        public var principal: Principal?
        public var notPrincipal: Principal?
        /// operator -> key -> values.
        public var conditions: [String: [String: [String]]]
    }

    public enum Effect: String, Sendable { case allow = "Allow", deny = "Deny" }

    /// `"*"`, or `{"AWS": [...], "Service": [...], "Federated": [...]}`.
    public enum Principal: Sendable, Equatable {
        case anyone
        case some([String: [String]])
    }

    public init(version: String? = "2012-10-17", statements: [Statement]) {
        self.version = version
        self.statements = statements
    }

    public init(json text: String) throws(PolicyError) {
        guard let data = text.data(using: .utf8), let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw PolicyError("MalformedPolicyDocument", "The policy is not a JSON object.")
        }
        version = root["Version"] as? String
        if let version, version != "2012-10-17", version != "2008-10-17" {
            throw PolicyError("MalformedPolicyDocument", "The policy Version \(version) is not supported.")
        }
        let rawStatements: [Any]
        switch root["Statement"] {
        case let list as [Any]: rawStatements = list
        case let one as [String: Any]: rawStatements = [one]
        default: throw PolicyError("MalformedPolicyDocument", "The policy must contain a Statement.")
        }
        statements = try rawStatements.map { raw throws(PolicyError) in
            guard let s = raw as? [String: Any] else { throw PolicyError("MalformedPolicyDocument", "A statement must be a JSON object.") }
            return try Self.statement(s)
        }
    }

    private static func strings(_ value: Any?, _ field: String) throws(PolicyError) -> [String]? {
        switch value {
        case nil: return nil
        case let s as String: return [s]
        case let list as [Any]:
            let strings = list.compactMap { $0 as? String }
            guard strings.count == list.count else { throw PolicyError("MalformedPolicyDocument", "\(field) must be a string or a list of strings.") }
            return strings
        default: throw PolicyError("MalformedPolicyDocument", "\(field) must be a string or a list of strings.")
        }
    }

    private static func principal(_ value: Any?, _ field: String) throws(PolicyError) -> Principal? {
        switch value {
        case nil: return nil
        case let s as String where s == "*": return .anyone
        case let map as [String: Any]:
            var out: [String: [String]] = [:]
            for (kind, v) in map { out[kind] = try strings(v, "\(field).\(kind)") ?? [] }
            return .some(out)
        default: throw PolicyError("MalformedPolicyDocument", "\(field) must be \"*\" or a mapping such as {\"AWS\": ...}.")
        }
    }

    private static func statement(_ s: [String: Any]) throws(PolicyError) -> Statement {
        guard let effectText = s["Effect"] as? String, let effect = Effect(rawValue: effectText) else {
            throw PolicyError("MalformedPolicyDocument", "Effect must be Allow or Deny.")
        }
        let actions = try strings(s["Action"], "Action")
        let notActions = try strings(s["NotAction"], "NotAction")
        guard (actions == nil) != (notActions == nil) else {
            throw PolicyError("MalformedPolicyDocument", "A statement needs exactly one of Action and NotAction.")
        }
        let resources = try strings(s["Resource"], "Resource")
        let notResources = try strings(s["NotResource"], "NotResource")
        if resources != nil && notResources != nil {
            throw PolicyError("MalformedPolicyDocument", "A statement cannot have both Resource and NotResource.")
        }
        var conditions: [String: [String: [String]]] = [:]
        if let raw = s["Condition"] {
            guard let map = raw as? [String: Any] else { throw PolicyError("MalformedPolicyDocument", "Condition must be a mapping.") }
            for (op, block) in map {
                guard let keys = block as? [String: Any] else { throw PolicyError("MalformedPolicyDocument", "Condition \(op) must map keys to values.") }
                var out: [String: [String]] = [:]
                for (key, value) in keys {
                    switch value {
                    case let b as Bool: out[key] = [b ? "true" : "false"]
                    case let n as NSNumber: out[key] = [n.stringValue]
                    case let list as [Any]:
                        out[key] = list.map { item in (item as? String) ?? ((item as? Bool).map { $0 ? "true" : "false" }) ?? "\(item)" }
                    default:
                        guard let text = value as? String else { throw PolicyError("MalformedPolicyDocument", "Condition \(op).\(key) has an invalid value.") }
                        out[key] = [text]
                    }
                }
                conditions[op] = out
            }
        }
        return Statement(sid: s["Sid"] as? String, effect: effect, actions: actions, notActions: notActions,
                         resources: resources, notResources: notResources,
                         principal: try principal(s["Principal"], "Principal"), notPrincipal: try principal(s["NotPrincipal"], "NotPrincipal"),
                         conditions: conditions)
    }
}

public struct PolicyError: ServiceError, Equatable, Sendable, CustomStringConvertible {
    public var code: String
    public var message: String
    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code): \(message)" }
}
