import Foundation
import Logging
import NimbusConfig
import ZeroMQ

/// What a process needs to put CurveZMQ on its links (`security.curve` in nimbus.yaml): who it is
/// (its key files), where the keys are, and the cluster's config, which says which endpoint belongs
/// to which process and whether a link is encrypted.
public struct CurveSettings: Sendable {
    public var keys: CurveKeyStore
    /// This process's name: its key pair is `keys/NAME.secret`.
    public var name: String
    public var cluster: ClusterConfig
    /// Process names of endpoints the config does not list (a bench node on a wildcard port), so
    /// that their public key can be found.
    public var peerNames: [String: String]
    /// Make (or read) the key pair when the I/O thread starts rather than at the first encrypted link:
    /// nodes do, so that their public key is there before anyone calls them.
    public var keysAtStart: Bool
    /// The account root's secret, for a process whose key pair is derived from it (a supervisor or
    /// CLI of a cluster spread over hosts, ClusterKeys); nil: the pair is made at random.
    public var rootSecret: String?

    public init(keys: CurveKeyStore, name: String, cluster: ClusterConfig, peerNames: [String: String] = [:], keysAtStart: Bool,
                rootSecret: String? = nil) {
        self.keys = keys
        self.name = name
        self.cluster = cluster
        self.peerNames = peerNames
        self.keysAtStart = keysAtStart
        self.rootSecret = rootSecret
    }

    /// The root's secret when this process's key pair is derived from it.
    var derivingSecret: String? {
        guard let rootSecret, ClusterKeys.derivedNames(cluster).contains(name) else { return nil }
        return rootSecret
    }

    /// Whether the socket this process binds at `bind` is a CURVE server: its own configured
    /// endpoint or bind address needs it (the rule its clients apply too), or the address it was
    /// actually told to bind (`--bind`) is not loopback.
    public func serverApplies(bind: String) -> Bool {
        (cluster.curveApplies(toProcess: name) ?? false) || Self.applies(cluster, toEndpoint: bind)
    }

    /// For a peer this process connects to: nil when the link is plain, else the name of the process
    /// whose public key the server must have. Throws when the link must be encrypted and nothing
    /// says whose endpoint it is.
    public func server(for endpoint: String) throws -> String? {
        let name = peerNames[endpoint] ?? cluster.processName(forEndpoint: endpoint)
        let applies = name.flatMap { cluster.curveApplies(toProcess: $0) } ?? Self.applies(cluster, toEndpoint: endpoint)
        guard applies else { return nil }
        guard let name else {
            throw CurveKeyError("security.curve needs the server key of \(endpoint), and no process of the config has that endpoint")
        }
        return name
    }

    /// The endpoint rule for an address as given to bind or connect (a `*` port, or `*` host, allowed).
    static func applies(_ cluster: ClusterConfig, toEndpoint text: String) -> Bool {
        if text.hasPrefix("inproc://") { return false }
        if let endpoint = try? Endpoint(text) { return cluster.curveApplies(to: endpoint) }
        guard text.hasPrefix("tcp://"), let colon = text.lastIndex(of: ":"), colon >= text.index(text.startIndex, offsetBy: 6) else {
            return cluster.security.curve == .always
        }
        let host = String(text[text.index(text.startIndex, offsetBy: 6)..<colon])
        var probe = try! Endpoint("tcp://127.0.0.1:1")
        probe.host = host
        return cluster.curveApplies(to: probe)
    }
}

/// The CURVE side of one I/O thread: its key pair, the ZAP handler and monitor of its server
/// socket, the monitors of its peer sockets, and the public keys it admits. Touched only by the
/// thread that owns the sockets (and by `IOLoop.init`, before that thread starts).
final class CurveState {
    let settings: CurveSettings
    private var ownKeys: CurveKeyPair?
    /// The ZAP handler (REP at `ZAP.endpoint`) and the server socket's monitor, when it is CURVE.
    private(set) var zap: ZMQSocket?
    private(set) var serverMonitor: ZMQSocket?
    /// One monitor per CURVE peer socket: handshake failures and successes.
    var peerMonitors: [String: ZMQSocket] = [:]
    /// Why the last handshake on a link failed, until one succeeds (for the timeout's message).
    private(set) var handshakeTrouble: [String: String] = [:]
    /// Peer endpoint → the process name whose key its socket was given.
    private var peerServers: [String: String] = [:]
    /// The public keys admitted, by `keys/public/`, and when that folder was read.
    private var admitted: [CurveKey: String] = [:]
    private var admittedStamp: String?
    private var admittedAt = ContinuousClock.now
    private var monitors = 0
    private var lastRejectLog: ContinuousClock.Instant?
    private var unloggedRejects = 0

    init(_ settings: CurveSettings) {
        self.settings = settings
    }

    /// This process's key pair, made at its first start.
    func keyPair() throws -> CurveKeyPair {
        if let ownKeys { return ownKeys }
        guard ZMQCapabilities.curve else {
            throw CurveKeyError("security.curve needs a libzmq built with CURVE (libsodium), and this one is not")
        }
        let pair: CurveKeyPair
        if let secret = settings.derivingSecret {
            pair = try ClusterKeys.derivedKeyPair(for: settings.name, rootSecret: secret)
            try settings.keys.adopt(pair, for: settings.name)
        } else {
            pair = try settings.keys.keyPair(for: settings.name)
        }
        ownKeys = pair
        return pair
    }

    /// Makes the node's ROUTER a CURVE server whose clients the ZAP handler admits by their public
    /// key in `keys/public/`. The handler is bound first: with none, libzmq admits any client that
    /// knows the server key.
    func makeServer(_ socket: ZMQSocket, context: ZMQContext) throws {
        let pair = try keyPair()
        let zap = try ZMQSocket(context, .rep)
        try zap.setLinger(0)
        try zap.bind(ZAP.endpoint)
        self.zap = zap
        reloadAdmitted()
        try socket.setCurveServer(secretKey: pair.secretKey)
        try socket.setZAPDomain("nimbus")
        serverMonitor = try monitor(socket, context: context, events: .handshakeFailed)
    }

    /// Makes a DEALER to `endpoint` a CURVE client when the link needs it; true when it did.
    func makeClient(_ socket: ZMQSocket, of endpoint: String, context: ZMQContext) throws -> Bool {
        guard let server = try settings.server(for: endpoint) else { return false }
        let serverKey = try settings.keys.publicKey(of: server)
        try socket.setCurveClient(serverKey: serverKey, keyPair: try keyPair())
        peerMonitors.removeValue(forKey: endpoint)?.close()
        peerMonitors[endpoint] = try monitor(socket, context: context, events: ZMQMonitorEvent.Kinds.handshakeFailed.union(.handshakeSucceeded))
        peerServers[endpoint] = server
        return true
    }

    private func monitor(_ socket: ZMQSocket, context: ZMQContext, events: ZMQMonitorEvent.Kinds) throws -> ZMQSocket {
        monitors += 1
        let address = "inproc://nimbus-monitor-\(monitors)"
        try socket.monitor(address, events: events)
        let reader = try ZMQSocket(context, .pair)
        try reader.setLinger(0)
        try reader.connect(address)
        return reader
    }

    // MARK: ZAP

    /// Answers every waiting ZAP request: 200 for a CURVE client whose public key is in
    /// `keys/public/` (its user id: the process name), 400 for anyone else.
    func serveZAP(logger: Logger) {
        guard let zap else { return }
        for _ in 0..<64 {
            guard let message = (try? zap.receive(dontWait: true)) ?? nil else { return }
            let reply: [Data]
            if let request = ZAP.Request(frames: message.frames) {
                if let key = request.curveKey, let name = admittedName(key) {
                    reply = request.reply(status: 200, text: "OK", userID: name)
                } else {
                    reply = request.reply(status: 400, text: "unknown key")
                    noteRejected(logger) {
                        "refused a \(request.mechanism) handshake from \(request.address): "
                            + (request.curveKey.map { "public key \($0) is not in \(self.settings.keys.publicDirectory.path)" } ?? "not CURVE")
                    }
                }
            } else {
                // A REP socket must answer to read on; libzmq never sends this.
                reply = [Data(ZAP.version.utf8), message.frames.count > 1 ? message.frames[1] : Data(), Data("500".utf8),
                         Data("malformed ZAP request".utf8), Data(), Data()]
            }
            _ = try? zap.send(reply, dontWait: true)
        }
    }

    /// The process a key belongs to. `keys/public/` is read again whenever it changed (a process
    /// started since has published its key, or a key file was deleted: from then on that key is
    /// refused), and for an unknown key at most once a second besides (a change within the folder's
    /// timestamp resolution), so a stranger knocking cannot make us read it on every handshake.
    /// Handshakes are rare (one per connection), and the check is one stat().
    private func admittedName(_ key: CurveKey) -> String? {
        let stamp = settings.keys.publicDirectoryStamp()
        if stamp != admittedStamp || (admitted[key] == nil && ContinuousClock.now - admittedAt >= .seconds(1)) {
            reloadAdmitted(stamp)
        }
        return admitted[key]
    }

    private func reloadAdmitted(_ stamp: String? = nil) {
        admittedStamp = stamp ?? settings.keys.publicDirectoryStamp()
        admittedAt = .now
        admitted = settings.keys.publicKeys()
    }

    // MARK: Monitors

    /// Counts the server socket's failed handshakes: a refused key (ZAP), a client with another
    /// server key, a client without CURVE.
    func readServerMonitor(counters: NodeCounters, logger: Logger) {
        guard let serverMonitor else { return }
        for _ in 0..<64 {
            guard let message = (try? serverMonitor.receive(dontWait: true)) ?? nil else { return }
            guard let event = ZMQMonitorEvent(message), event.isHandshakeFailure else { continue }
            counters.handshakesRejected.increment()
            // ZAP's refusals were logged with the key when they were made.
            if event.kind != .handshakeFailedAuth {
                noteRejected(logger) { "a handshake on \(event.endpoint) failed: \(Self.describe(event)) (a client with another server key, or without CURVE)" }
            }
        }
    }

    /// Reads a peer socket's monitor; true when a handshake failed (the socket should go).
    func readPeerMonitor(_ endpoint: String, logger: Logger) -> Bool {
        guard let monitor = peerMonitors[endpoint] else { return false }
        var failed = false
        for _ in 0..<64 {
            guard let message = (try? monitor.receive(dontWait: true)) ?? nil else { break }
            guard let event = ZMQMonitorEvent(message) else { continue }
            if event.kind == .handshakeSucceeded {
                handshakeTrouble[endpoint] = nil
            } else if event.isHandshakeFailure {
                let server = peerServers[endpoint] ?? endpoint
                let trouble: String
                if event.kind == .handshakeFailedAuth {
                    trouble = "\(server) refused this process's CURVE key (ZAP status \(event.value)): "
                        + "it does not have \(settings.keys.publicFile(settings.name).path)"
                } else {
                    trouble = "the CURVE handshake with \(server) failed (\(Self.describe(event))): "
                        + "is \(settings.keys.publicFile(server).path) its current key?"
                }
                if handshakeTrouble[endpoint] != trouble { logger.warning("\(endpoint): \(trouble)") }
                handshakeTrouble[endpoint] = trouble
                failed = true
            }
        }
        return failed
    }

    static func describe(_ event: ZMQMonitorEvent) -> String {
        switch event.kind {
        case .handshakeFailedAuth: return "refused by ZAP, status \(event.value)"
        case .handshakeFailedProtocol: return "protocol error 0x\(String(event.value, radix: 16))"
        default: return "connection closed during the handshake"
        }
    }

    /// Logs a refusal, at most one line a second (with how many went unlogged).
    private func noteRejected(_ logger: Logger, _ line: () -> String) {
        let now = ContinuousClock.now
        if let last = lastRejectLog, now - last < .seconds(1) {
            unloggedRejects += 1
            return
        }
        let more = unloggedRejects > 0 ? " (and \(unloggedRejects) more since the last such line)" : ""
        logger.notice("\(line())\(more)")
        lastRejectLog = now
        unloggedRejects = 0
    }

    func close() {
        for monitor in peerMonitors.values { monitor.close() }
        peerMonitors.removeAll()
        serverMonitor?.close()
        serverMonitor = nil
        zap?.close()
        zap = nil
    }
}
