import Foundation
import Yams

/// The cluster's one human-edited file (`nimbus.yaml`). Every field has a default, so an empty file,
/// or no file at all, describes a working single-host cluster on 127.0.0.1.
public struct ClusterConfig: Sendable, Equatable {
    public var region: String = "us-east-1"
    public var account: String = "000000000000"
    /// Where logs and durable state live. Relative paths are resolved against the config file's folder.
    public var dataDirectory: String = ".nimbus"
    public var supervisor = SupervisorSettings()
    public var heartbeat = HeartbeatSettings()
    public var restart = RestartSettings()
    /// CurveZMQ on the links between processes (SecuritySettings.swift).
    public var security = SecuritySettings()
    public var services: [ServiceKind: ServiceSettings] = ClusterConfig.defaultServices
    /// The CloudFormation template of the lab's resources, created by each service at start.
    /// Relative to the config file's folder; "" for none.
    public var stack: String = "stacks/poc-lab.yaml"
    public var table = TableSettings()
    public var gateway = GatewaySettings()
    public var edge = EdgeSettings()
    public var notifier = NotifierSettings()
    public var iam = IAMSettings()
    public var storage = StorageSettings()
    public var console = ConsoleSettings()
    /// Machines the cluster is spread over (HostPlacement.swift); empty: one host, as configured.
    public var hosts: [String: HostSettings] = [:]

    public init() {}

    /// The web console the gateway serves (docs/console.md).
    public struct ConsoleSettings: Sendable, Equatable {
        /// Serve it at all (the page, its API and the samplers behind it).
        public var enabled: Bool = true
        /// Where: the page at this path, its API under `<path>api/`. Begins and ends with "/".
        public var path: String = "/console/"
    }

    /// Authentication and authorization between processes (docs/architecture.md, "Credentials").
    public struct IAMSettings: Sendable, Equatable {
        /// Verify signatures and check IAM policies on every request. Off: requests are still
        /// signed, but nobody checks (the bench compares both).
        public var enforce: Bool = true
        /// Lifetime of the temporary credentials the supervisor obtains for each process; they are
        /// rewritten when a third of it is left.
        public var credentialSeconds: Int = 3600
        /// How long a node trusts a cached authorization decision; a policy change observed through
        /// the IAM node's policy version drops the cache at once.
        public var decisionCacheSeconds: Double = 5
        /// Largest difference allowed between a request's timestamp and the receiver's clock; signed
        /// requests are remembered this long against replay.
        public var signatureSkewSeconds: Int = 300
        /// The role each workload process runs as (the lab's execution roles).
        public var roles: [String: String] = [
            "gateway": "APIGateway-SQS",
            "ingest-worker": "Lambda-SQS-DynamoDB",
            "stream-worker": "Lambda-DynamoDBStreams-SNS",
        ]
    }

    /// Every node's durable state.
    public struct StorageSettings: Sendable, Equatable {
        /// The disk alarm: while the file system under the data directory has less free space than
        /// this, writes that grow durable state (SendMessage, PutItem, UpdateItem, BatchWriteItem,
        /// Publish) are refused with ServiceUnavailable; reads, receives and deletes go on. 0: never.
        public var minFreeDiskMB: Int = 64
        /// The memory alarm: while a node's resident memory is over this share of the machine's (or
        /// of its cgroup's limit, when smaller), the same writes are refused (every service keeps
        /// its whole state in memory). 0: never.
        public var maxMemoryPercent: Double = 40
        /// Each process's log (`logs/NAME.log`) is rotated at this size, keeping the one before as
        /// `NAME.log.1`. 0: never.
        public var logMaxMB: Int = 64
    }

    /// The table node (DynamoDB and DynamoDB Streams).
    public struct TableSettings: Sendable, Equatable {
        /// Stream shards per new table; a partition key always maps to the same shard, so one item's
        /// records stay in order while stream workers read shards in parallel.
        public var streamShards: Int = 1
        /// Stream records older than this are trimmed (DynamoDB Streams keeps 24 hours).
        public var streamRetentionHours: Double = 24
    }

    /// The HTTP side of the gateway (the API Gateway REST API, POC-API).
    public struct GatewaySettings: Sendable, Equatable {
        /// HOST:PORT the HTTP server listens on.
        public var http: String = "127.0.0.1:8080"
        /// The queue POSTs go to.
        public var queueName: String = "POC-Queue"
        /// Token bucket, as API Gateway's account throttle: steady requests per second and burst.
        public var rateLimit: Double = 10_000
        public var burst: Double = 5_000
        /// Largest request body accepted (413 above).
        public var maxBodyBytes: Int = 262_144
        /// How long a POST waits for the queue's durable acknowledgement before answering 503.
        public var queueTimeoutMilliseconds: Int = 2_000
        /// A connection with nothing received for this long (idle between requests, or a request
        /// that stops half-way) is closed, so idle clients cannot hold every file descriptor.
        public var idleTimeoutSeconds: Double = 60
    }

    /// The AWS-compatible endpoint (docs/aws-endpoint.md). Off with `services.edge.instances: 0`.
    public struct EdgeSettings: Sendable, Equatable {
        /// HOST:PORT the HTTP server listens on (LocalStack's port, so tools that know it just work).
        public var http: String = "127.0.0.1:4566"
        /// Largest request body accepted, after decompression.
        public var maxBodyBytes: Int = 8 * 1024 * 1024
        /// How long a request waits for the node that serves it.
        public var timeoutMilliseconds: Int = 10_000
        /// A connection with nothing received for this long is closed.
        public var idleTimeoutSeconds: Double = 60
    }

    /// The notifier (SNS, POC-Topic): where its mail goes and what its links point at.
    public struct NotifierSettings: Sendable, Equatable {
        /// The SMTP server email subscriptions are delivered through.
        public var smtpHost: String = "127.0.0.1"
        public var smtpPort: Int = 2525
        /// How the connection to it is protected: `off` (plain SMTP: the local mail sink),
        /// `starttls` (RFC 3207: plain, then upgraded; refused if the server does not offer it) or
        /// `tls` (TLS from the first byte, "SMTPS", usually port 465). With TLS the server's
        /// certificate must chain to a trusted CA and name `smtpHost`.
        public var smtpTLS: SMTPTLSMode = .off
        /// CA certificates (PEM, an absolute path) to trust for the SMTP server instead of the system's store.
        public var smtpCAFile: String?
        /// The envelope sender and From: address of every mail.
        public var fromAddress: String = "no-reply@nimbus.local"
        /// SMTP AUTH (PLAIN or LOGIN, whichever the server offers), when both are set.
        public var smtpUsername: String?
        public var smtpPassword: String?
        /// The base of the confirm and unsubscribe links in messages (the gateway serves
        /// GET /sns/confirm and GET /sns/unsubscribe).
        public var publicBaseURL: String = "http://127.0.0.1:8080"
        /// Where `nimbus-mail-sink` writes the mails it receives; relative to dataDirectory.
        public var mailSinkDirectory: String = "mail"
    }

    public enum SMTPTLSMode: String, Sendable, Equatable, CaseIterable {
        case off, starttls, tls
    }

    /// The stack file as an absolute path, when there is one.
    public func stackURL(relativeTo base: URL) -> URL? {
        if stack.isEmpty { return nil }
        return stack.hasPrefix("/") ? URL(fileURLWithPath: stack) : base.appendingPathComponent(stack).standardizedFileURL
    }

    public struct SupervisorSettings: Sendable, Equatable {
        /// The control socket (`status`, `scale`, `kill`, `stop`).
        public var endpoint: Endpoint = try! Endpoint("tcp://127.0.0.1:7100")
        public var bind: Endpoint?
        /// How long a new process may take to answer its first heartbeat.
        public var startupTimeoutSeconds: Double = 15
        /// How long a stopping process gets between SIGTERM and SIGKILL.
        public var stopTimeoutSeconds: Double = 10
    }

    public struct HeartbeatSettings: Sendable, Equatable {
        public var intervalMilliseconds: Int = 1000
        /// Missed heartbeats after which a process counts as unresponsive.
        public var liveness: Int = 3
    }

    public struct RestartSettings: Sendable, Equatable {
        /// The first delay before restarting a process that died before or soon after turning healthy.
        public var initialBackoffSeconds: Double = 1
        /// Each quick death doubles the delay, up to this.
        public var maxBackoffSeconds: Double = 8
        /// A process healthy this long is stable: if it then dies it is restarted at once, and its
        /// backoff and quick-death count are reset.
        public var stableAfterSeconds: Double = 5
        /// This many quick deaths within `withinSeconds` show the process as crash-looping (it is
        /// still restarted, at the capped backoff).
        public var maxRestarts: Int = 5
        public var withinSeconds: Double = 60
    }

    public struct ServiceSettings: Sendable, Equatable {
        /// Where peers connect to the service (for workers: instance 1; instance N uses port + N - 1).
        public var endpoint: Endpoint
        /// Where the service binds, when not the same as `endpoint` (e.g. `tcp://0.0.0.0:7102`).
        public var bind: Endpoint?
        /// Instances to run; only workers may have other than 1.
        public var instances: Int = 1
        /// The host (of `hosts`) the service runs on: it binds and is reached at that host's address.
        public var host: String?

        public init(endpoint: Endpoint, bind: Endpoint? = nil, instances: Int = 1) {
            self.endpoint = endpoint
            self.bind = bind
            self.instances = instances
        }
    }

    static let defaultServices: [ServiceKind: ServiceSettings] = {
        let ports: [ServiceKind: Int] = [
            .iam: 7101, .queue: 7102, .table: 7103, .notifier: 7104, .gateway: 7105, .mailSink: 7106,
            .edge: 7107, .ingestWorker: 7110, .streamWorker: 7120,
        ]
        return ports.mapValues { ServiceSettings(endpoint: try! Endpoint("tcp://127.0.0.1:\($0)")) }
    }()

    // MARK: Lookups

    public func settings(_ kind: ServiceKind) -> ServiceSettings {
        services[kind] ?? ClusterConfig.defaultServices[kind]!
    }

    /// The endpoint peers use to reach instance `index` of `kind`.
    public func endpoint(_ kind: ServiceKind, instance index: Int = 1) -> Endpoint {
        settings(kind).endpoint.offset(by: index - 1)
    }

    /// The endpoint instance `index` of `kind` binds.
    public func bindEndpoint(_ kind: ServiceKind, instance index: Int = 1) -> Endpoint {
        let s = settings(kind)
        return (s.bind ?? s.endpoint).offset(by: index - 1)
    }

    public func instances(_ kind: ServiceKind) -> Int { settings(kind).instances }

    /// The data directory as an absolute path.
    public func dataDirectoryURL(relativeTo base: URL) -> URL {
        dataDirectory.hasPrefix("/") ? URL(fileURLWithPath: dataDirectory)
            : base.appendingPathComponent(dataDirectory).standardizedFileURL
    }

    /// Every endpoint the cluster binds, with who binds it: used to check ports before starting.
    public func boundEndpoints() -> [(owner: String, endpoint: Endpoint)] {
        var all: [(String, Endpoint)] = [("supervisor", supervisor.bind ?? supervisor.endpoint)]
        for kind in ServiceKind.allCases {
            let count = kind.isWorker ? ServiceKind.maxInstances : 1
            // Workers reserve their whole port range so `scale` never collides.
            for index in 1...count { all.append((kind.instanceName(index), bindEndpoint(kind, instance: index))) }
        }
        return all
    }

    // MARK: Loading

    public static func load(path: String) throws -> ClusterConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError("cannot read config file \(path): \(error.localizedDescription)")
        }
        return try parse(text, source: path)
    }

    public static func parse(_ yaml: String, source: String = "config") throws -> ClusterConfig {
        let file: ConfigFile
        do {
            file = try YAMLDecoder().decode(ConfigFile.self, from: yaml.isEmpty ? "{}" : yaml)
        } catch let error as ConfigError {
            throw ConfigError("\(source): \(error.description)")
        } catch let DecodingError.dataCorrupted(context) {
            // Yams wraps what our own decoders throw (a bad endpoint) in a "not valid YAML" error.
            if let ours = context.underlyingError as? ConfigError { throw ConfigError("\(source): \(ours.description)") }
            let detail = context.underlyingError.map { "\($0)" } ?? context.debugDescription
            throw ConfigError("\(source): \(Self.path(context.codingPath)): \(detail)")
        } catch let DecodingError.typeMismatch(type, context) {
            throw ConfigError("\(source): \(Self.path(context.codingPath)) should be a \(type)")
        } catch {
            throw ConfigError("\(source): \(error)")
        }
        let unknown = ConfigFile.unknownKeys(in: (try? Yams.compose(yaml: yaml)) ?? nil)
        if !unknown.isEmpty {
            throw ConfigError("\(source): unknown \(unknown.count == 1 ? "key" : "keys") \(unknown.joined(separator: ", "))")
        }
        var config = ClusterConfig()
        try file.apply(to: &config)
        try config.validate()
        return config
    }

    private static func path(_ codingPath: [CodingKey]) -> String {
        codingPath.isEmpty ? "top level" : codingPath.map(\.stringValue).joined(separator: ".")
    }

    public func validate() throws(ConfigError) {
        if region.isEmpty { throw ConfigError("region must not be empty") }
        if account.count != 12 || !account.allSatisfy(\.isNumber) {
            throw ConfigError("account must be a 12-digit account id, not \"\(account)\"")
        }
        if heartbeat.intervalMilliseconds < 50 { throw ConfigError("heartbeat.intervalMilliseconds must be at least 50") }
        if heartbeat.liveness < 1 { throw ConfigError("heartbeat.liveness must be at least 1") }
        if restart.initialBackoffSeconds <= 0 || restart.maxBackoffSeconds < restart.initialBackoffSeconds {
            throw ConfigError("restart backoff must be positive, with maxBackoffSeconds >= initialBackoffSeconds")
        }
        let http = gateway.http.split(separator: ":")
        if http.count != 2 || Int(http[1]).map({ !(1...65535).contains($0) }) ?? true {
            throw ConfigError("gateway.http must be HOST:PORT, not \"\(gateway.http)\"")
        }
        if !(1...64).contains(table.streamShards) { throw ConfigError("table.streamShards must be 1..64") }
        if table.streamRetentionHours <= 0 { throw ConfigError("table.streamRetentionHours must be positive") }
        if gateway.rateLimit <= 0 || gateway.burst < 1 { throw ConfigError("gateway.rateLimit and gateway.burst must be positive") }
        if gateway.maxBodyBytes < 1 { throw ConfigError("gateway.maxBodyBytes must be positive") }
        if gateway.queueTimeoutMilliseconds < 10 { throw ConfigError("gateway.queueTimeoutMilliseconds must be at least 10") }
        if !(gateway.idleTimeoutSeconds > 0) { throw ConfigError("gateway.idleTimeoutSeconds must be positive") }
        let edgeHTTP = edge.http.split(separator: ":")
        if edgeHTTP.count != 2 || Int(edgeHTTP[1]).map({ !(1...65535).contains($0) }) ?? true {
            throw ConfigError("edge.http must be HOST:PORT, not \"\(edge.http)\"")
        }
        if edge.maxBodyBytes < 1024 { throw ConfigError("edge.maxBodyBytes must be at least 1024") }
        if edge.timeoutMilliseconds < 100 { throw ConfigError("edge.timeoutMilliseconds must be at least 100") }
        if !(edge.idleTimeoutSeconds > 0) { throw ConfigError("edge.idleTimeoutSeconds must be positive") }
        for kind in ServiceKind.allCases {
            let n = instances(kind)
            if kind.isWorker {
                if !(0...ServiceKind.maxInstances).contains(n) {
                    throw ConfigError("services.\(kind.rawValue).instances must be 0...\(ServiceKind.maxInstances), not \(n)")
                }
            } else if kind == .mailSink {
                if n != 0 && n != 1 { throw ConfigError("services.mail-sink.instances must be 0 (a real SMTP relay) or 1") }
            } else if kind == .edge {
                if n != 0 && n != 1 { throw ConfigError("services.edge.instances must be 0 (no AWS endpoint) or 1") }
            } else if n != 1 {
                throw ConfigError("services.\(kind.rawValue).instances must be 1: only workers scale")
            }
        }
        var seen: [String: String] = [:]
        try validatePlacement()
        for (owner, endpoint) in boundEndpoints() {
            // Spread over hosts, a port is taken once per host (address), not once in all.
            let key = (hosts.isEmpty ? "" : endpoint.host + "|") + (endpoint.port.map { "\(endpoint.scheme):\($0)" } ?? endpoint.description)
            if let other = seen[key] {
                throw ConfigError("\(owner) and \(other) would both bind \(endpoint)")
            }
            seen[key] = owner
        }
        if notifier.smtpHost.isEmpty { throw ConfigError("notifier.smtpHost must not be empty") }
        if !(1...65535).contains(notifier.smtpPort) { throw ConfigError("notifier.smtpPort must be 1...65535, not \(notifier.smtpPort)") }
        let from = notifier.fromAddress.split(separator: "@", omittingEmptySubsequences: false)
        if from.count != 2 || from[0].isEmpty || from[1].isEmpty || notifier.fromAddress.contains(where: { $0.isWhitespace || $0 == "<" || $0 == ">" }) {
            throw ConfigError("notifier.fromAddress must be an address like no-reply@nimbus.local, not \"\(notifier.fromAddress)\"")
        }
        if notifier.smtpTLS != .off && instances(.mailSink) == 1 {
            throw ConfigError("notifier.smtpTLS: \(notifier.smtpTLS.rawValue) needs a relay that speaks TLS; the local mail sink speaks plain SMTP only (set services.mail-sink.instances: 0 and notifier.smtpHost to the relay)")
        }
        if let file = notifier.smtpCAFile {
            // Absolute: the processes that read it do not share one working directory.
            guard file.hasPrefix("/") else { throw ConfigError("notifier.smtpCAFile must be an absolute path, not \"\(file)\"") }
            guard FileManager.default.isReadableFile(atPath: file) else { throw ConfigError("notifier.smtpCAFile \(file) is not a readable file") }
        }
        if (notifier.smtpUsername == nil) != (notifier.smtpPassword == nil) {
            throw ConfigError("notifier.smtpUsername and notifier.smtpPassword go together")
        }
        let base = notifier.publicBaseURL.lowercased()
        if !(base.hasPrefix("http://") || base.hasPrefix("https://")) || URL(string: notifier.publicBaseURL)?.host == nil {
            throw ConfigError("notifier.publicBaseURL must be an http(s) URL, not \"\(notifier.publicBaseURL)\"")
        }
        if iam.credentialSeconds < 5 || iam.credentialSeconds > 43_200 { throw ConfigError("iam.credentialSeconds must be 5...43200") }
        if iam.decisionCacheSeconds < 0 { throw ConfigError("iam.decisionCacheSeconds must not be negative") }
        if iam.signatureSkewSeconds < 1 { throw ConfigError("iam.signatureSkewSeconds must be positive") }
        for kind in iam.roles.keys where ServiceKind(rawValue: kind) == nil {
            throw ConfigError("iam.roles.\(kind) is not a service kind")
        }
        if !(0...100).contains(storage.maxMemoryPercent) {
            throw ConfigError("storage.maxMemoryPercent must be 0 (no memory alarm) ... 100, not \(storage.maxMemoryPercent)")
        }
        if storage.logMaxMB < 0 || storage.logMaxMB > 1 << 30 {
            throw ConfigError("storage.logMaxMB must be 0 (never rotated) ... \(1 << 30), not \(storage.logMaxMB)")
        }
        if storage.minFreeDiskMB < 0 || storage.minFreeDiskMB > 1 << 40 {
            throw ConfigError("storage.minFreeDiskMB must be 0 (no disk alarm) ... \(1 << 40), not \(storage.minFreeDiskMB)")
        }
        if notifier.mailSinkDirectory.isEmpty { throw ConfigError("notifier.mailSinkDirectory must not be empty") }
        if !Self.isValidConsolePath(console.path) {
            throw ConfigError("console.path must be a path like /console/ (letters, digits, \"-\", \"_\", \".\", \"/\"; not / itself, not under /sns/ or /orders), not \"\(console.path)\"")
        }
    }

    /// A console path the gateway can serve besides its own routes (/, /orders, /sns/..., /health).
    static func isValidConsolePath(_ path: String) -> Bool {
        guard path.hasPrefix("/"), path.hasSuffix("/"), path.count > 1, path.count <= 200,
              path.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_./".contains($0)) }),
              !path.contains("//"), !path.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) else { return false }
        let first = path.split(separator: "/").first.map(String.init) ?? ""
        return !["sns", "orders", "health"].contains(first)
    }

    /// The mail sink's folder as an absolute path.
    public func mailSinkDirectoryURL(relativeTo base: URL) -> URL {
        let dir = notifier.mailSinkDirectory
        // Under the mail sink's own host's data directory when the cluster is spread over hosts.
        return dir.hasPrefix("/") ? URL(fileURLWithPath: dir) : dataDirectoryURL(of: .mailSink, relativeTo: base).appendingPathComponent(dir).standardizedFileURL
    }
}

/// The file as written: every key optional, names in the file's own spelling.
private struct ConfigFile: Decodable {
    var region: String?
    var account: String?
    var dataDirectory: String?
    var supervisor: Supervisor?
    var heartbeat: Heartbeat?
    var restart: Restart?
    var security: SecurityFile?
    var hosts: [String: HostFile]?
    var services: [String: Service]?
    var stack: String?
    var table: Table?
    var gateway: Gateway?
    var edge: Edge?
    var notifier: Notifier?
    var iam: IAM?
    var storage: Storage?
    var console: Console?

    struct Console: Decodable {
        var enabled: Bool?
        var path: String?
    }

    struct Storage: Decodable {
        var minFreeDiskMB: Int?
        var maxMemoryPercent: Double?
        var logMaxMB: Int?
    }

    struct IAM: Decodable {
        var enforce: Bool?
        var credentialSeconds: Int?
        var decisionCacheSeconds: Double?
        var signatureSkewSeconds: Int?
        var roles: [String: String]?
    }

    struct Notifier: Decodable {
        var smtpHost: String?
        var smtpPort: Int?
        var fromAddress: String?
        var smtpUsername: String?
        var smtpPassword: String?
        var smtpTLS: String?
        var smtpCAFile: String?
        var publicBaseURL: String?
        var mailSinkDirectory: String?
    }

    struct Table: Decodable {
        var streamShards: Int?
        var streamRetentionHours: Double?
    }

    struct Gateway: Decodable {
        var http: String?
        var queueName: String?
        var rateLimit: Double?
        var burst: Double?
        var maxBodyBytes: Int?
        var queueTimeoutMilliseconds: Int?
        var idleTimeoutSeconds: Double?
    }

    struct Edge: Decodable {
        var http: String?
        var maxBodyBytes: Int?
        var timeoutMilliseconds: Int?
        var idleTimeoutSeconds: Double?
    }

    struct Supervisor: Decodable {
        var endpoint: Endpoint?
        var bind: Endpoint?
        var startupTimeoutSeconds: Double?
        var stopTimeoutSeconds: Double?
    }
    struct Heartbeat: Decodable {
        var intervalMilliseconds: Int?
        var liveness: Int?
    }
    struct Restart: Decodable {
        var initialBackoffSeconds: Double?
        var maxBackoffSeconds: Double?
        var stableAfterSeconds: Double?
        var maxRestarts: Int?
        var withinSeconds: Double?
    }
    struct Service: Decodable {
        var endpoint: Endpoint?
        var bind: Endpoint?
        var instances: Int?
        var host: String?
    }

    /// The keys of a parsed file that no setting has, each with the known key it is likely a typo of:
    /// a misspelt key would otherwise leave its setting at the default without a word. The known keys
    /// are the decoding structs' own property names (they are spelt as in the file), so they cannot
    /// drift from what is read.
    static func unknownKeys(in root: Yams.Node?) -> [String] {
        guard let root, case .mapping(let top) = root else { return [] }
        var unknown: [String] = []
        func check(_ mapping: Yams.Node.Mapping, against known: Any, path: String) {
            let names = Mirror(reflecting: known).children.compactMap(\.label)
            for key in mapping.keys {
                let name = key.string ?? "\(key)"
                guard !names.contains(name) else { continue }
                let guess = names.first { $0.lowercased() == name.lowercased() }
                    ?? names.min { editDistance($0, name) < editDistance($1, name) }.flatMap { editDistance($0, name) <= 2 ? $0 : nil }
                unknown.append(path + name + (guess.map { " (did you mean \(path)\($0)?)" } ?? ""))
            }
        }
        check(top, against: ConfigFile(), path: "")
        let sections: [(String, Any)] = [
            ("security", SecurityFile()),
            ("supervisor", Supervisor()), ("heartbeat", Heartbeat()), ("restart", Restart()), ("table", Table()),
            ("gateway", Gateway()), ("edge", Edge()), ("notifier", Notifier()), ("iam", IAM()), ("storage", Storage()), ("console", Console()),
        ]
        for (name, known) in sections {
            if case .mapping(let section)? = top[name] { check(section, against: known, path: name + ".") }
        }
        // services: { KIND: {...} }: the kinds themselves are checked when applied.
        if case .mapping(let hosts)? = top["hosts"] {
            for (name, value) in hosts {
                if case .mapping(let host) = value { check(host, against: HostFile(), path: "hosts.\(name.string ?? "?").") }
            }
        }
        if case .mapping(let services)? = top["services"] {
            for (kind, value) in services {
                if case .mapping(let service) = value { check(service, against: Service(), path: "services.\(kind.string ?? "?").") }
            }
        }
        return unknown
    }

    /// Levenshtein distance (ignoring case), for "did you mean".
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.lowercased()), b = Array(b.lowercased())
        guard !a.isEmpty, !b.isEmpty else { return a.count + b.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    func apply(to c: inout ClusterConfig) throws {
        if let region { c.region = region }
        if let account { c.account = account }
        if let dataDirectory { c.dataDirectory = dataDirectory }
        if let stack { c.stack = stack }
        try security?.apply(to: &c)
        if let t = table {
            if let v = t.streamShards { c.table.streamShards = v }
            if let v = t.streamRetentionHours { c.table.streamRetentionHours = v }
        }
        if let g = gateway {
            if let v = g.http { c.gateway.http = v }
            if let v = g.queueName { c.gateway.queueName = v }
            if let v = g.rateLimit { c.gateway.rateLimit = v }
            if let v = g.burst { c.gateway.burst = v }
            if let v = g.maxBodyBytes { c.gateway.maxBodyBytes = v }
            if let v = g.queueTimeoutMilliseconds { c.gateway.queueTimeoutMilliseconds = v }
            if let v = g.idleTimeoutSeconds { c.gateway.idleTimeoutSeconds = v }
        }
        if let e = edge {
            if let v = e.http { c.edge.http = v }
            if let v = e.maxBodyBytes { c.edge.maxBodyBytes = v }
            if let v = e.timeoutMilliseconds { c.edge.timeoutMilliseconds = v }
            if let v = e.idleTimeoutSeconds { c.edge.idleTimeoutSeconds = v }
        }
        if let s = supervisor {
            if let v = s.endpoint { c.supervisor.endpoint = v }
            if let v = s.bind { c.supervisor.bind = v }
            if let v = s.startupTimeoutSeconds { c.supervisor.startupTimeoutSeconds = v }
            if let v = s.stopTimeoutSeconds { c.supervisor.stopTimeoutSeconds = v }
        }
        if let h = heartbeat {
            if let v = h.intervalMilliseconds { c.heartbeat.intervalMilliseconds = v }
            if let v = h.liveness { c.heartbeat.liveness = v }
        }
        if let r = restart {
            if let v = r.initialBackoffSeconds { c.restart.initialBackoffSeconds = v }
            if let v = r.maxBackoffSeconds { c.restart.maxBackoffSeconds = v }
            if let v = r.stableAfterSeconds { c.restart.stableAfterSeconds = v }
            if let v = r.maxRestarts { c.restart.maxRestarts = v }
            if let v = r.withinSeconds { c.restart.withinSeconds = v }
        }
        for (name, s) in services ?? [:] {
            guard let kind = ServiceKind(rawValue: name) else {
                let known = ServiceKind.allCases.map(\.rawValue).joined(separator: ", ")
                throw ConfigError("services.\(name) is not a service kind (known: \(known))")
            }
            var settings = c.settings(kind)
            if let v = s.endpoint { settings.endpoint = v }
            if let v = s.bind { settings.bind = v }
            if let v = s.instances { settings.instances = v }
            if let v = s.host { settings.host = v }
            c.services[kind] = settings
        }
        if let v = storage?.minFreeDiskMB { c.storage.minFreeDiskMB = v }
        if let v = storage?.logMaxMB { c.storage.logMaxMB = v }
        if let v = storage?.maxMemoryPercent { c.storage.maxMemoryPercent = v }
        if let v = console?.enabled { c.console.enabled = v }
        if let v = console?.path { c.console.path = v.hasSuffix("/") ? v : v + "/" }
        if let i = iam {
            if let v = i.enforce { c.iam.enforce = v }
            if let v = i.credentialSeconds { c.iam.credentialSeconds = v }
            if let v = i.decisionCacheSeconds { c.iam.decisionCacheSeconds = v }
            if let v = i.signatureSkewSeconds { c.iam.signatureSkewSeconds = v }
            if let v = i.roles { c.iam.roles.merge(v) { $1 } }
        }
        if let n = notifier {
            if let v = n.smtpHost { c.notifier.smtpHost = v }
            if let v = n.smtpPort { c.notifier.smtpPort = v }
            if let v = n.fromAddress { c.notifier.fromAddress = v }
            if let v = n.smtpUsername { c.notifier.smtpUsername = v }
            if let v = n.smtpPassword { c.notifier.smtpPassword = v }
            if let v = n.smtpTLS {
                guard let mode = ClusterConfig.SMTPTLSMode(rawValue: v) else {
                    throw ConfigError("notifier.smtpTLS must be one of \(ClusterConfig.SMTPTLSMode.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(v)\"")
                }
                c.notifier.smtpTLS = mode
            }
            if let v = n.smtpCAFile { c.notifier.smtpCAFile = v }
            if let v = n.publicBaseURL { c.notifier.publicBaseURL = v }
            if let v = n.mailSinkDirectory { c.notifier.mailSinkDirectory = v }
        }
        if let hosts {
            try c.applyPlacement(hosts, explicit: .init(gatewayHTTP: gateway?.http != nil, edgeHTTP: edge?.http != nil, smtpHost: notifier?.smtpHost != nil,
                                                        publicBaseURL: notifier?.publicBaseURL != nil))
        }
    }
}
