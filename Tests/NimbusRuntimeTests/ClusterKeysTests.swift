import Foundation
import Testing
import ZeroMQ
@testable import NimbusRuntime

/// Keys across hosts (ClusterKeys): pairs derived from the root's secret, and keys taken only from
/// the host that owns them.
@Suite struct ClusterKeysTests {
    static let spread = """
        security: {curve: always}
        hosts:
          h1: {address: 10.77.0.1}
          h2: {address: 10.77.0.2}
          h3: {address: 10.77.0.3}
        services:
          iam: {host: h1}
          queue: {host: h1}
          mail-sink: {host: h1}
          table: {host: h2}
          notifier: {host: h2}
          gateway: {host: h3}
          ingest-worker: {host: h3, instances: 2}
          stream-worker: {host: h3}
        """

    @Test func derivedPairsAreTheSameForEveryHolderOfTheSecretAndDifferPerNameAndSecret() throws {
        let one = try ClusterKeys.derivedKeyPair(for: "supervisor-h1", rootSecret: "s3cret")
        #expect(try ClusterKeys.derivedKeyPair(for: "supervisor-h1", rootSecret: "s3cret") == one)
        #expect(try CurveKeyPair(secretKey: one.secretKey) == one, "the public key is the one the secret makes")
        #expect(try ClusterKeys.derivedKeyPair(for: "supervisor-h2", rootSecret: "s3cret").publicKey != one.publicKey)
        #expect(try ClusterKeys.derivedKeyPair(for: "supervisor-h1", rootSecret: "other").publicKey != one.publicKey)
    }

    @Test func onlyASpreadClusterWithCurveAndIAMDistributes() throws {
        let spread = try ClusterConfig.parse(Self.spread)
        #expect(ClusterKeys.distributes(spread))
        #expect(ClusterKeys.derivedNames(spread).sorted()
            == ["nimbus-cli", "nimbus-cli-h1", "nimbus-cli-h2", "nimbus-cli-h3", "supervisor-h1", "supervisor-h2", "supervisor-h3"])
        var plain = spread
        plain.security.curve = .off
        #expect(!ClusterKeys.distributes(plain))
        var open = spread
        open.iam.enforce = false
        #expect(!ClusterKeys.distributes(open))
        #expect(!ClusterKeys.distributes(try ClusterConfig.parse("security: {curve: always}")))
    }

    @Test func aHostAnswersWithItsOwnProcessesKeysAndOnlyTheOwnersKeysAreTaken() throws {
        let cluster = try ClusterConfig.parse(Self.spread)
        let h1Data = try TemporaryDataDirectory(), h3Data = try TemporaryDataDirectory()
        let h1 = CurveKeyStore(dataDirectory: h1Data.url), h3 = CurveKeyStore(dataDirectory: h3Data.url)
        let queue = try h1.keyPair(for: "queue")
        _ = try h1.keyPair(for: "iam")
        // Keys h1 holds but does not own: another host's process, and a derived one.
        try h1.publish(name: "table", try CurveKeyPair.generate().publicKey)
        try ClusterKeys.publishDerived(cluster, rootSecret: "s3cret", into: h1)

        let reply = ClusterKeys.ownKeys(of: "h1", in: cluster, store: h1)
        #expect(reply.host == "h1")
        #expect(Set(reply.keys.keys) == ["queue", "iam"])
        #expect(reply.keys["queue"] == queue.publicKey.z85)

        #expect(ClusterKeys.learn(reply, from: "h1", cluster: cluster, store: h3).sorted() == ["iam", "queue"])
        #expect(h3.publishedKey(of: "queue") == queue.publicKey)
        #expect(ClusterKeys.learn(reply, from: "h1", cluster: cluster, store: h3).isEmpty, "nothing new the second time")

        // A host cannot vouch for what it does not own: not another host's process, not a derived name.
        var forged = reply
        forged.keys["table"] = try CurveKeyPair.generate().publicKey.z85
        forged.keys["gateway"] = try CurveKeyPair.generate().publicKey.z85
        forged.keys["supervisor-h3"] = try CurveKeyPair.generate().publicKey.z85
        forged.keys["queue"] = "not a key"
        #expect(ClusterKeys.learn(forged, from: "h1", cluster: cluster, store: h3).isEmpty)
        #expect(h3.publishedKey(of: "gateway") == nil && h3.publishedKey(of: "supervisor-h3") == nil)
        #expect(h3.publishedKey(of: "queue") == queue.publicKey)

        // The owner's changed key (its data directory was wiped) replaces the old one.
        let renewed = try CurveKeyPair.generate().publicKey
        #expect(ClusterKeys.learn(PublicKeysReply(host: "h1", keys: ["queue": renewed.z85]), from: "h1", cluster: cluster, store: h3) == ["queue"])
        #expect(h3.publishedKey(of: "queue") == renewed)
    }

    @Test func anAdoptedPairReplacesARandomOneAndStaysPrivate() throws {
        let data = try TemporaryDataDirectory()
        let store = CurveKeyStore(dataDirectory: data.url)
        let random = try store.keyPair(for: "supervisor-h1")
        let derived = try ClusterKeys.derivedKeyPair(for: "supervisor-h1", rootSecret: "s3cret")
        try store.adopt(derived, for: "supervisor-h1")
        #expect(try store.keyPair(for: "supervisor-h1") == derived)
        #expect(try store.publicKey(of: "supervisor-h1") == derived.publicKey)
        #expect(random != derived)
        let mode = (try FileManager.default.attributesOfItem(atPath: store.secretFile("supervisor-h1").path)[.posixPermissions] as? NSNumber)?.intValue
        #expect(mode == 0o600)
    }
}
