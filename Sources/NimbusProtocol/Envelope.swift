import Foundation

/// What a message is. Requests get exactly one reply or error with the same id; heartbeats are
/// answered with a heartbeat carrying the same id.
public enum MessageKind: String, Codable, Sendable {
    case request, reply, error, heartbeat
}

/// Who sent a message: the node's name and the incarnation id that changes each time it restarts.
public struct NodeStamp: Codable, Sendable, Equatable {
    public var name: String
    public var incarnation: String
    public init(name: String, incarnation: String) {
        self.name = name
        self.incarnation = incarnation
    }
}

/// Request credentials, in the spirit of Signature V4. Reserved by the foundation; the IAM issue
/// fills and verifies them.
public struct RequestAuth: Codable, Sendable, Equatable {
    public var accessKeyId: String
    public var sessionToken: String?
    /// Milliseconds since the Unix epoch when the request was signed.
    public var timestamp: Int64
    /// Hex HMAC-SHA256 over the canonical form of the envelope.
    public var signature: String
    public init(accessKeyId: String, sessionToken: String? = nil, timestamp: Int64, signature: String) {
        self.accessKeyId = accessKeyId
        self.sessionToken = sessionToken
        self.timestamp = timestamp
        self.signature = signature
    }
}

/// The header frame of every Nimbus message (frame 1, JSON). The payload travels in its own frame so
/// that a node can forward it without decoding it.
public struct EnvelopeHeader: Codable, Sendable, Equatable {
    public var kind: MessageKind
    /// Chosen by the requester, unique among its outstanding requests; echoed in the answer.
    public var id: String
    /// `service:Operation`, the same string IAM policies use (`sqs:SendMessage`). Requests only.
    public var action: String?
    /// The ARN the action is on. Optional: account-level actions have none.
    public var resource: String?
    /// The sending node, when the sender is a node.
    public var sender: NodeStamp?
    public var auth: RequestAuth?

    public init(
        kind: MessageKind, id: String, action: String? = nil, resource: String? = nil,
        sender: NodeStamp? = nil, auth: RequestAuth? = nil
    ) {
        self.kind = kind
        self.id = id
        self.action = action
        self.resource = resource
        self.sender = sender
        self.auth = auth
    }
}

/// A decoded Nimbus message: its header and its payload bytes (JSON, in AWS's shapes).
public struct Envelope: Sendable {
    public var header: EnvelopeHeader
    public var body: Data

    public init(header: EnvelopeHeader, body: Data) {
        self.header = header
        self.body = body
    }

    public static func request(
        id: String, action: String, resource: String? = nil, sender: NodeStamp? = nil, body: Data
    ) -> Envelope {
        Envelope(header: EnvelopeHeader(kind: .request, id: id, action: action, resource: resource, sender: sender), body: body)
    }

    public static func reply(to id: String, sender: NodeStamp?, body: Data) -> Envelope {
        Envelope(header: EnvelopeHeader(kind: .reply, id: id, sender: sender), body: body)
    }

    public static func error(to id: String, sender: NodeStamp?, _ error: WireError) -> Envelope {
        Envelope(header: EnvelopeHeader(kind: .error, id: id, sender: sender), body: error.jsonData)
    }

    /// The error an `.error` message carries, or nil when the body is not one.
    public var wireError: WireError? {
        guard header.kind == .error else { return nil }
        return WireError(json: body) ?? WireError(.internalFailure, "error reply with an unreadable body")
    }
}
