/// The kinds of process a Nimbus cluster runs under its supervisor.
public enum ServiceKind: String, CaseIterable, Codable, Sendable, Hashable, Comparable {
    case iam
    case queue
    case table
    case notifier
    /// A local SMTP server keeping the mail it receives (for a cluster without a real relay).
    case mailSink = "mail-sink"
    case gateway
    case ingestWorker = "ingest-worker"
    case streamWorker = "stream-worker"
    /// The AWS-compatible HTTP endpoint (awscli, boto3, the SDKs): AWS's protocols in, nimbus/1 out.
    case edge

    /// The executable that plays this kind, built from `Sources/<Target>`.
    public var executable: String {
        switch self {
        case .iam: return "nimbus-iam"
        case .queue: return "nimbus-queue"
        case .table: return "nimbus-table"
        case .notifier: return "nimbus-notifier"
        case .mailSink: return "nimbus-mail-sink"
        case .gateway: return "nimbus-gateway"
        case .ingestWorker: return "nimbus-ingest-worker"
        case .streamWorker: return "nimbus-stream-worker"
        case .edge: return "nimbus-edge"
        }
    }

    /// What the lab calls it.
    public var labName: String {
        switch self {
        case .iam: return "IAM (4 policies, 3 roles)"
        case .queue: return "POC-Queue"
        case .table: return "orders"
        case .notifier: return "POC-Topic"
        case .mailSink: return "SMTP sink (email)"
        case .gateway: return "POC-API"
        case .ingestWorker: return "POC-Lambda-1"
        case .streamWorker: return "POC-Lambda-2"
        case .edge: return "AWS endpoint"
        }
    }

    /// Workers are scaled; the mail sink runs once or not at all (instances 0 with a real SMTP relay);
    /// every other kind runs exactly one instance.
    public var isWorker: Bool { self == .ingestWorker || self == .streamWorker }

    /// Start order: a kind starts after every kind of a lower tier is healthy, and stops before them.
    public var tier: Int {
        switch self {
        case .iam: return 0
        case .queue, .table, .mailSink: return 1
        case .notifier: return 2
        case .gateway, .ingestWorker, .streamWorker, .edge: return 3
        }
    }

    /// Instances of one worker kind take consecutive ports from the kind's endpoint; this many are
    /// reserved per kind.
    public static let maxInstances = 10

    public static func < (a: ServiceKind, b: ServiceKind) -> Bool {
        (a.tier, a.rawValue) < (b.tier, b.rawValue)
    }

    /// The process name of instance `index` (1-based): `queue`, `ingest-worker-2`.
    public func instanceName(_ index: Int) -> String {
        isWorker ? "\(rawValue)-\(index)" : rawValue
    }

    /// Parses a process name back into kind and instance index.
    public static func parse(instanceName name: String) -> (kind: ServiceKind, index: Int)? {
        if let kind = ServiceKind(rawValue: name), !kind.isWorker { return (kind, 1) }
        guard let dash = name.lastIndex(of: "-"), let index = Int(name[name.index(after: dash)...]),
              let kind = ServiceKind(rawValue: String(name[..<dash])), kind.isWorker,
              (1...maxInstances).contains(index) else { return nil }
        return (kind, index)
    }
}

extension ServiceKind {
    /// The nodes this kind calls to do its work, besides the IAM node (which every node that
    /// authorizes needs): a process is not ready while one of them is unreachable.
    public var dependencies: [ServiceKind] {
        switch self {
        case .gateway: return [.queue]
        case .ingestWorker: return [.queue, .table]
        case .streamWorker: return [.table, .notifier]
        case .iam, .queue, .table, .notifier, .mailSink, .edge: return []
        }
    }

    /// The AWS service principal this kind plays: the platform's own identity for its internal
    /// calls, and the principal a role's trust policy must admit for the kind to assume the role.
    /// nil for the IAM node (the authority itself signs nothing) and the mail sink (speaks SMTP).
    public var servicePrincipal: String? {
        switch self {
        case .queue: return "sqs.amazonaws.com"
        case .table: return "dynamodb.amazonaws.com"
        case .notifier: return "sns.amazonaws.com"
        case .gateway: return "apigateway.amazonaws.com"
        case .ingestWorker, .streamWorker: return "lambda.amazonaws.com"
        // The edge signs as its callers (and as the account root for its own look-ups).
        case .iam, .mailSink, .edge: return nil
        }
    }
}
