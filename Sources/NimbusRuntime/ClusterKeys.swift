import Crypto
import Foundation
import NimbusConfig
import NimbusProtocol
import ZeroMQ

/// How the public CURVE keys of a cluster spread over hosts reach every host's `keys/public/`
/// (docs/architecture.md, "Links"). On one host the shared folder is enough. Across hosts:
///
/// - The only thing an operator copies is the account root's credentials (`credentials/root.json`),
///   as the signing of control requests needs anyway. From its secret, every holder derives the same
///   key pairs for each host's supervisor (`supervisor-H`) and CLI (`nimbus-cli-H`, `nimbus-cli`),
///   so supervisors and CLIs know and admit each other without any key being copied.
/// - Each supervisor answers `nimbus:PublicKeys` with the keys of the processes placed on its host,
///   and pulls every other host's twice a second, writing what is new or changed into its own
///   `keys/public/`, where its processes' ZAP handlers find them. A CLI pulls once per run.
///
/// A key is taken only from the supervisor of the host the config places its process on, over a
/// CURVE link to that supervisor's derived key: only a holder of the root's secret could answer.
public enum ClusterKeys {
    /// Whether the cluster distributes keys itself: spread over hosts, with CURVE on some link and
    /// root credentials to derive from (IAM enforced). Otherwise keys are copied by hand.
    public static func distributes(_ cluster: ClusterConfig) -> Bool {
        cluster.isMultiHost && cluster.curveInUse && cluster.iam.enforce
    }

    /// The names whose key pairs are derived from the root's secret: each host's supervisor and CLI,
    /// and the CLI run without `--host`.
    public static func derivedNames(_ cluster: ClusterConfig) -> [String] {
        [cluster.cliName(host: nil)] + cluster.hostNames.flatMap { [cluster.supervisorName(host: $0), cluster.cliName(host: $0)] }
    }

    /// The key pair of `name`, derived from the root's secret: HMAC-SHA256(secret, label) as the
    /// Curve25519 secret key (any 32 bytes are one), its public key from libzmq.
    public static func derivedKeyPair(for name: String, rootSecret: String) throws -> CurveKeyPair {
        let code = HMAC<SHA256>.authenticationCode(for: Array("nimbus/curve/v1/\(name)".utf8), using: SymmetricKey(data: Array(rootSecret.utf8)))
        guard let secret = CurveKey(bytes: Array(code)) else { throw CurveKeyError("a derived key is not 32 bytes") }
        return try CurveKeyPair(secretKey: secret)
    }

    /// Writes the public keys of every derived name into `store`'s `keys/public/`.
    public static func publishDerived(_ cluster: ClusterConfig, rootSecret: String, into store: CurveKeyStore) throws {
        for name in derivedNames(cluster) {
            try store.publish(name: name, try derivedKeyPair(for: name, rootSecret: rootSecret).publicKey)
        }
    }

    /// The host whose supervisor vouches for `name`'s key: the host the config places the process
    /// on. Derived names have none (every holder of the root's secret computes them).
    public static func owner(of name: String, in cluster: ClusterConfig) -> String? {
        if derivedNames(cluster).contains(name) { return nil }
        return cluster.host(ofProcess: name)
    }

    /// What `host`'s supervisor answers: the keys in its `keys/public/` of the processes placed on it.
    public static func ownKeys(of host: String, in cluster: ClusterConfig, store: CurveKeyStore) -> PublicKeysReply {
        var keys: [String: String] = [:]
        for (key, name) in store.publicKeys() where owner(of: name, in: cluster) == host {
            keys[name] = key.z85
        }
        return PublicKeysReply(host: host, keys: keys)
    }

    /// Asks the supervisor of each of `hosts` for its processes' keys and writes those that are new
    /// or changed into `store`. Returns the names written; a host that does not answer is skipped
    /// (the next pull asks again).
    @discardableResult
    public static func pull(from hosts: [String], cluster: ClusterConfig, store: CurveKeyStore,
                            timeout: Duration = .seconds(1),
                            ask: @escaping @Sendable (String) async throws -> Data) async -> [String] {
        await withTaskGroup(of: [String].self) { group in
            for host in hosts {
                group.addTask {
                    guard let data = try? await ask(cluster.supervisorEndpoint(host: host).description),
                          let reply = try? JSONDecoder().decode(PublicKeysReply.self, from: data) else { return [] }
                    return learn(reply, from: host, cluster: cluster, store: store)
                }
            }
            var written: [String] = []
            for await names in group { written += names }
            return written.sorted()
        }
    }

    /// Writes the keys of `reply` that `host` owns and `store` does not have yet (or has otherwise).
    static func learn(_ reply: PublicKeysReply, from host: String, cluster: ClusterConfig, store: CurveKeyStore) -> [String] {
        var written: [String] = []
        for (name, text) in reply.keys where owner(of: name, in: cluster) == host {
            guard let key = CurveKey(z85: text), store.publishedKey(of: name) != key else { continue }
            if (try? store.publish(name: name, key)) != nil { written.append(name) }
        }
        return written
    }
}

/// The answer to `nimbus:PublicKeys`: a host's processes' public keys, by process name, in Z85.
public struct PublicKeysReply: Codable, Sendable, Equatable {
    public var host: String
    public var keys: [String: String]

    public init(host: String, keys: [String: String]) {
        self.host = host
        self.keys = keys
    }
}
