import Foundation

extension ClusterConfig {
    /// When the links between processes are encrypted and authenticated with CurveZMQ.
    public enum CurveMode: String, Sendable, Equatable, CaseIterable {
        /// On every socket whose endpoint (or bind address) is not loopback; plain on 127.0.0.0/8,
        /// ::1 and localhost, where nothing leaves the host.
        case auto
        /// On every socket, loopback included.
        case always
        /// Never.
        case off
    }

    /// The `security:` section: transport security between processes (docs/architecture.md, "Links").
    public struct SecuritySettings: Sendable, Equatable {
        public var curve: CurveMode = .auto
    }

    /// Whether `host` (an endpoint's host part) is this machine's loopback: 127.0.0.0/8, ::1 or
    /// localhost. `*`, `0.0.0.0` and every other name or address are not.
    public static func isLoopback(host: String) -> Bool {
        var host = host.lowercased()
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" || host.hasSuffix(".localhost") || host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil }
    }

    /// Whether CURVE is used on `endpoint` by the endpoint alone (for one no process of the config
    /// owns): `always`, or `auto` and a TCP endpoint whose host is not loopback.
    public func curveApplies(to endpoint: Endpoint) -> Bool {
        switch security.curve {
        case .off: return false
        case .always: return true
        case .auto: return endpoint.scheme == "tcp" && !Self.isLoopback(host: endpoint.host)
        }
    }

    /// Whether the links to the process `name` (`supervisor`, `queue`, `ingest-worker-2`) use CURVE:
    /// its configured endpoint or its bind address needs it, so that a node bound to all interfaces
    /// is encrypted even when its peers reach it over loopback. Nil for a name the config has no
    /// endpoint for. Server and clients decide with this same rule, so they always agree.
    public func curveApplies(toProcess name: String) -> Bool? {
        guard let (endpoint, bind) = endpoints(ofProcess: name) else { return nil }
        return curveApplies(to: endpoint) || bind.map { curveApplies(to: $0) } ?? false
    }

    /// Whether any link of the cluster uses CURVE (then every process needs its key pair).
    public var curveInUse: Bool {
        switch security.curve {
        case .off: return false
        case .always: return true
        case .auto: return processNames.contains { curveApplies(toProcess: $0) == true }
        }
    }

    /// The process that owns `endpoint` (as peers write it): the supervisor, a kind's single
    /// process, or a worker instance (the kind's port + N - 1). Its CURVE key is `keys/public/NAME.key`.
    public func processName(forEndpoint text: String) -> String? {
        guard let endpoint = try? Endpoint(text) else { return nil }
        return processNames.first { endpoints(ofProcess: $0)?.endpoint == endpoint }
    }

    /// Every process name the config gives an endpoint: the supervisor, each kind's single process,
    /// and every worker instance that may run.
    var processNames: [String] {
        // Spread over hosts, each host's supervisor has a name (and key) of its own: supervisor-NAME.
        (isMultiHost ? hostNames.map { supervisorName(host: $0) } : ["supervisor"]) + ServiceKind.allCases.flatMap { kind in
            (1...(kind.isWorker ? ServiceKind.maxInstances : 1)).map { kind.instanceName($0) }
        }
    }

    private func endpoints(ofProcess name: String) -> (endpoint: Endpoint, bind: Endpoint?)? {
        if name == "supervisor" { return (supervisor.endpoint, supervisor.bind) }
        if let host = host(ofSupervisor: name) { return (supervisorEndpoint(host: host), supervisor.bind) }
        guard let (kind, index) = ServiceKind.parse(instanceName: name) else { return nil }
        let settings = settings(kind)
        return (endpoint(kind, instance: index), settings.bind.map { $0.offset(by: index - 1) })
    }
}

/// The `security:` section as written in the file.
struct SecurityFile: Decodable {
    var curve: String?

    func apply(to config: inout ClusterConfig) throws {
        if let curve {
            guard let mode = ClusterConfig.CurveMode(rawValue: curve) else {
                let modes = ClusterConfig.CurveMode.allCases.map(\.rawValue).joined(separator: ", ")
                throw ConfigError("security.curve must be one of \(modes), not \"\(curve)\"")
            }
            config.security.curve = mode
        }
    }
}
