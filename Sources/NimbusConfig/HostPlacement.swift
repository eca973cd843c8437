import Foundation

// Spreading the cluster over several machines (README, "Across hosts"):
//
//     hosts:
//       h1: {address: 10.77.0.1, dataDirectory: /var/lib/nimbus}
//       h2: {address: 10.77.0.2}
//     services:
//       queue: {host: h1}
//       table: {host: h2}
//
// A service placed on a host binds and is reached at that host's address, on its port as configured
// (the endpoint's host part is replaced; an explicit `bind` is kept). Each host runs its own
// supervisor (`nimbus up --host NAME`) at the host's address and the supervisor's port, managing the
// processes placed there only. A config without `hosts:` is one host, exactly as before.

extension ClusterConfig {
    /// One machine of the cluster.
    public struct HostSettings: Sendable, Equatable {
        /// Where the host's processes bind and are reached (an IPv4 address or a name that resolves).
        public var address: String
        /// The host's data directory (logs, state, credentials); default: the config's `dataDirectory`.
        public var dataDirectory: String?

        public init(address: String, dataDirectory: String? = nil) {
            self.address = address
            self.dataDirectory = dataDirectory
        }
    }

    /// Which settings the file gave itself, so placement only derives the ones it left out.
    struct ExplicitSettings {
        var gatewayHTTP: Bool
        var edgeHTTP: Bool
        var smtpHost: Bool
        var publicBaseURL: Bool
    }

    /// Whether the cluster is spread over declared hosts.
    public var isMultiHost: Bool { !hosts.isEmpty }

    /// The declared host names, sorted.
    public var hostNames: [String] { hosts.keys.sorted() }

    /// The host `kind` runs on (nil on a config without hosts).
    public func host(of kind: ServiceKind) -> String? {
        if let host = settings(kind).host { return host }
        // Unplaced, the AWS endpoint runs beside the gateway, its HTTP sibling.
        if kind == .edge, hosts.count > 1 { return host(of: .gateway) }
        return hosts.count == 1 ? hosts.keys.first : nil
    }

    /// The host the process `name` (`queue`, `ingest-worker-2`) runs on.
    public func host(ofProcess name: String) -> String? {
        ServiceKind.parse(instanceName: name).flatMap { host(of: $0.kind) }
    }

    /// The kinds placed on `host` (every kind when `host` is nil: a config without hosts).
    public func kinds(on host: String?) -> [ServiceKind] {
        guard let host else { return ServiceKind.allCases }
        return ServiceKind.allCases.filter { self.host(of: $0) == host }
    }

    /// The hosts that run at least one process, hence a supervisor (a host with none, say a client
    /// machine that only runs the CLI, has no supervisor to ask).
    public var supervisedHosts: [String] {
        hostNames.filter { host in kinds(on: host).contains { instances($0) > 0 || $0.isWorker } }
    }

    /// The control socket of `host`'s supervisor: the host's address on the supervisor's port.
    /// Without hosts (or with `host` nil): `supervisor.endpoint`.
    public func supervisorEndpoint(host: String?) -> Endpoint {
        guard let host, let settings = hosts[host] else { return supervisor.endpoint }
        var endpoint = supervisor.endpoint
        if endpoint.scheme == "tcp" { endpoint.host = settings.address }
        return endpoint
    }

    /// The process name of `host`'s supervisor: `supervisor-NAME` (its log, and its CURVE key, so
    /// the keys of several hosts' supervisors can sit in one `keys/public/`); `supervisor` without a host.
    public func supervisorName(host: String?) -> String {
        guard let host, hosts[host] != nil else { return "supervisor" }
        return "supervisor-\(host)"
    }

    /// The CLI's name towards the cluster (and its CURVE key's): `nimbus-cli`, or `nimbus-cli-HOST`
    /// on a host of a spread cluster, so the CLIs of several hosts have keys of their own.
    public func cliName(host: String?) -> String {
        host.map { "nimbus-cli-\($0)" } ?? "nimbus-cli"
    }

    /// The host whose supervisor is named `name` (`supervisor-h1`).
    public func host(ofSupervisor name: String) -> String? {
        guard name.hasPrefix("supervisor-") else { return nil }
        let host = String(name.dropFirst("supervisor-".count))
        return hosts[host] != nil ? host : nil
    }

    /// What `host`'s supervisor binds: `supervisor.bind` when set, else its endpoint.
    public func supervisorBindEndpoint(host: String?) -> Endpoint {
        supervisor.bind ?? supervisorEndpoint(host: host)
    }

    /// The data directory of `host` (its `dataDirectory`, else the config's) as an absolute path.
    public func dataDirectoryURL(host: String?, relativeTo base: URL) -> URL {
        guard let host, let directory = hosts[host]?.dataDirectory else { return dataDirectoryURL(relativeTo: base) }
        return directory.hasPrefix("/") ? URL(fileURLWithPath: directory) : base.appendingPathComponent(directory).standardizedFileURL
    }

    /// The data directory of the host `kind` runs on.
    public func dataDirectoryURL(of kind: ServiceKind, relativeTo base: URL) -> URL {
        dataDirectoryURL(host: host(of: kind), relativeTo: base)
    }

    /// Every endpoint `host`'s processes bind (the supervisor's included), with who binds it.
    public func boundEndpoints(on host: String?) -> [(owner: String, endpoint: Endpoint)] {
        guard isMultiHost else { return boundEndpoints() }
        let kinds = Set(kinds(on: host))
        let supervisorBind = supervisorBindEndpoint(host: host)
        return [("supervisor", supervisorBind)] + boundEndpoints().filter { owner, _ in
            owner != "supervisor" && ServiceKind.parse(instanceName: owner).map { kinds.contains($0.kind) } ?? false
        }
    }

    /// Moves every placed service to its host's address (parse time, before validation).
    mutating func applyPlacement(_ file: [String: HostFile], explicit: ExplicitSettings) throws {
        for (name, host) in file {
            guard Self.isValidHostName(name) else {
                throw ConfigError("hosts.\(name): a host name is letters, digits, \"-\" and \"_\" (at most 63)")
            }
            guard let address = host.address?.trimmingCharacters(in: .whitespaces), !address.isEmpty else {
                throw ConfigError("hosts.\(name).address is missing: where the host's processes bind and are reached, e.g. 10.0.0.5")
            }
            guard !address.contains(":"), !address.contains("/"), !address.contains(where: \.isWhitespace) else {
                throw ConfigError("hosts.\(name).address must be an IPv4 address or a host name, not \"\(address)\"")
            }
            if let directory = host.dataDirectory, directory.isEmpty {
                throw ConfigError("hosts.\(name).dataDirectory must not be empty")
            }
            hosts[name] = HostSettings(address: address, dataDirectory: host.dataDirectory)
        }
        for kind in ServiceKind.allCases {
            guard let name = self.host(of: kind), let address = hosts[name]?.address else { continue }
            var settings = self.settings(kind)
            settings.endpoint.host = settings.endpoint.scheme == "tcp" ? address : settings.endpoint.host
            services[kind] = settings
        }
        // The gateway's HTTP side listens on its host's address (kept when it listens on all of them),
        // the mail sink on its host's, and the notifier's links point at the gateway.
        if let name = host(of: .gateway), let address = hosts[name]?.address {
            let parts = gateway.http.split(separator: ":", maxSplits: 1).map(String.init)
            let port = parts.count == 2 ? parts[1] : "8080"
            if !(explicit.gatewayHTTP && (parts.first == "0.0.0.0" || parts.first == "*")) { gateway.http = "\(address):\(port)" }
            if !explicit.publicBaseURL { notifier.publicBaseURL = "http://\(address):\(port)" }
        }
        if let name = host(of: .edge), let address = hosts[name]?.address {
            let parts = edge.http.split(separator: ":", maxSplits: 1).map(String.init)
            let port = parts.count == 2 ? parts[1] : "4566"
            if !(explicit.edgeHTTP && (parts.first == "0.0.0.0" || parts.first == "*")) { edge.http = "\(address):\(port)" }
        }
        if !explicit.smtpHost, instances(.mailSink) > 0, let name = host(of: .mailSink), let address = hosts[name]?.address {
            notifier.smtpHost = address
        }
    }

    /// Every placed service names a declared host, and with several hosts every service is placed.
    func validatePlacement() throws(ConfigError) {
        for kind in ServiceKind.allCases {
            if let name = settings(kind).host, hosts[name] == nil {
                let known = hostNames.isEmpty ? "no hosts: section declares any" : "known: \(hostNames.joined(separator: ", "))"
                throw ConfigError("services.\(kind.rawValue).host: \(name) is not a host (\(known))")
            }
        }
        guard hosts.count > 1 else { return }
        let unplaced = ServiceKind.allCases.filter { host(of: $0) == nil && ($0.isWorker || instances($0) > 0) }
        if !unplaced.isEmpty {
            throw ConfigError("with several hosts every service names its host: services.\(unplaced[0].rawValue).host is missing"
                + (unplaced.count > 1 ? " (and \(unplaced.dropFirst().map(\.rawValue).joined(separator: ", ")))" : "")
                + "; hosts: \(hostNames.joined(separator: ", "))")
        }
    }

    static func isValidHostName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 63 && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
    }
}

/// `hosts.NAME` as written in the file.
struct HostFile: Decodable {
    var address: String?
    var dataDirectory: String?
}
