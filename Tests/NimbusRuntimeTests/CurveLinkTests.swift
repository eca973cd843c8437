import Foundation
import Logging
import Testing
import ZeroMQ
@testable import NimbusRuntime

/// A fresh data directory, removed when the test ends.
final class TemporaryDataDirectory {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-curve-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }
}

private func mode(_ url: URL) throws -> Int {
    (try FileManager.default.attributesOfItem(atPath: url.path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

@Suite struct CurveKeyStoreTests {
    @Test func aProcessMakesItsPairOnceSecretForItselfPublicForTheOthers() throws {
        let data = try TemporaryDataDirectory()
        let store = CurveKeyStore(dataDirectory: data.url)
        let pair = try store.keyPair(for: "queue")
        #expect(try store.keyPair(for: "queue") == pair)
        #expect(try mode(store.secretFile("queue")) == 0o600)
        #expect(try mode(store.publicFile("queue")) == 0o644)
        #expect(try store.publicKey(of: "queue") == pair.publicKey)
        #expect(store.publicKeys() == [pair.publicKey: "queue"])
        let secretText = try String(contentsOf: store.secretFile("queue"), encoding: .utf8)
        #expect(secretText.contains("secret-key = \"\(pair.secretKey.z85)\""))
        #expect(secretText.contains("public-key = \"\(pair.publicKey.z85)\""))
        let publicText = try String(contentsOf: store.publicFile("queue"), encoding: .utf8)
        #expect(!publicText.contains(pair.secretKey.z85))
        // The public file comes back if it is removed.
        try FileManager.default.removeItem(at: store.publicFile("queue"))
        #expect(try store.keyPair(for: "queue") == pair)
        #expect(try store.publicKey(of: "queue") == pair.publicKey)
    }

    @Test func processesOfOneNameStartingTogetherAgreeOnOnePair() async throws {
        let data = try TemporaryDataDirectory()
        let store = CurveKeyStore(dataDirectory: data.url)
        let pairs = try await withThrowingTaskGroup(of: CurveKeyPair.self) { group in
            for _ in 0..<8 { group.addTask { try store.keyPair(for: "nimbus-cli") } }
            return try await group.reduce(into: [CurveKeyPair]()) { $0.append($1) }
        }
        #expect(Set(pairs.map(\.publicKey)).count == 1)
        #expect(try store.publicKey(of: "nimbus-cli") == pairs[0].publicKey)
        // No temporary files left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: store.directory.path).sorted() == ["nimbus-cli.secret", "public"])
    }

    @Test func aMissingOrBrokenKeyIsAnErrorNamingTheFile() throws {
        let data = try TemporaryDataDirectory()
        let store = CurveKeyStore(dataDirectory: data.url)
        do {
            _ = try store.publicKey(of: "table")
            Issue.record("found a key that is not there")
        } catch let error as CurveKeyError {
            #expect(error.description.contains(store.publicFile("table").path))
        }
        try FileManager.default.createDirectory(at: store.publicDirectory, withIntermediateDirectories: true)
        try Data("public-key = \"not a key\"\n".utf8).write(to: store.publicFile("table"))
        #expect(throws: CurveKeyError.self) { try store.publicKey(of: "table") }
        #expect(throws: CurveKeyError.self) { try store.keyPair(for: "../escape") }
    }

    @Test func aSecretFileOthersCouldReadIsMadePrivateAgain() throws {
        let data = try TemporaryDataDirectory()
        let store = CurveKeyStore(dataDirectory: data.url)
        let pair = try store.keyPair(for: "iam")
        chmod(store.secretFile("iam").path, 0o644)
        #expect(try store.keyPair(for: "iam") == pair)
        #expect(try mode(store.secretFile("iam")) == 0o600)
    }
}

/// An echo node with `security.curve: always`, in its own data directory.
final class CurveNode {
    let runtime: NodeRuntime
    let task: Task<Void, Never>
    let endpoint: String
    let data: TemporaryDataDirectory
    let cluster: ClusterConfig

    init(name: String = "curve-node") throws {
        data = try TemporaryDataDirectory()
        var cluster = ClusterConfig.unauthenticatedForTests
        cluster.security.curve = .always
        self.cluster = cluster
        let config = NodeConfiguration(cluster: cluster, name: name, kind: "test", bind: "tcp://127.0.0.1:*", dataDirectory: data.url)
        runtime = try NodeRuntime(configuration: config, service: EchoService(), logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        endpoint = runtime.boundEndpoint!
        task = Task { [runtime] in await runtime.run() }
    }

    func client(name: String = "test-client", in directory: URL? = nil) throws -> NimbusClient {
        try NimbusClient.standalone(name: name, cluster: cluster, dataDirectory: directory ?? data.url, curvePeers: [endpoint: "curve-node"])
    }

    func stop() async {
        task.cancel()
        await task.value
    }
}

@Suite(.serialized) struct CurveLinkTests {
    @Test func aClientStartedAfterTheNodeIsAdmittedAndTalksCurve() async throws {
        let node = try CurveNode()
        // The node read keys/public/ at its start; the client's key is made only now, and the node
        // reads the folder again when the unknown key knocks.
        let client = try node.client()
        let answer = try await client.request("test:Echo", to: node.endpoint, body: Data(#"{"text":"sealed"}"#.utf8), timeout: .patient, attempts: 1)
        #expect(String(decoding: answer, as: UTF8.self) == #"{"text":"sealed!"}"#)
        let health = try JSONDecoder().decode(HealthReport.self, from: try await client.request("nimbus:Health", to: node.endpoint, timeout: .patient, attempts: 1))
        #expect(health.details["curve"] == "on")
        #expect(health.counters["handshakesRejected"] == 0)
        await client.close()
        await node.stop()
    }

    @Test func aClientWhoseKeyTheNodeDoesNotHaveGetsNoAnswerAndIsCounted() async throws {
        let node = try CurveNode()
        // Another data directory: its key is never published where the node looks. It does know
        // the node's key (copied over), so it gets as far as the handshake.
        let elsewhere = try TemporaryDataDirectory()
        let store = CurveKeyStore(dataDirectory: elsewhere.url)
        try FileManager.default.createDirectory(at: store.publicDirectory, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: node.runtime.configuration.dataDirectory.appendingPathComponent("keys/public/curve-node.key"),
                                         to: store.publicFile("curve-node"))
        let stranger = try node.client(name: "stranger", in: elsewhere.url)
        let started = ContinuousClock.now
        do {
            _ = try await stranger.request("test:Echo", to: node.endpoint, body: Data(#"{"text":"let me in"}"#.utf8),
                                           timeout: .milliseconds(700), attempts: 1)
            Issue.record("a client with an unknown key got an answer")
        } catch let error as WireError {
            #expect(error.code == "RequestTimeout")
            #expect(error.message.contains("refused this process's CURVE key"))
        }
        #expect(ContinuousClock.now - started < .seconds(3))
        #expect(node.runtime.counters.handshakesRejected.load(ordering: .relaxed) >= 1)
        #expect(node.runtime.counters.requestsReceived.load(ordering: .relaxed) == 0)
        await stranger.close()
        await node.stop()
    }

    @Test func aServerKeyNobodyWroteIsAnErrorAtOnceNamingTheFile() async throws {
        let node = try CurveNode()
        let client = try NimbusClient.standalone(name: "test-client", cluster: node.cluster, dataDirectory: node.data.url,
                                                 curvePeers: [node.endpoint: "ghost"])
        let started = ContinuousClock.now
        do {
            _ = try await client.request("test:Echo", to: node.endpoint, body: Data(#"{"text":"x"}"#.utf8), timeout: .seconds(5))
            Issue.record("sent without the server's key")
        } catch let error as WireError {
            #expect(error.code == "ServiceUnavailable")
            #expect(error.message.contains("keys/public/ghost.key"))
        }
        #expect(ContinuousClock.now - started < .seconds(1))
        await client.close()
        await node.stop()
    }

    @Test func aNodeWithCurveOffAnswersPlainClientsAsBefore() async throws {
        let data = try TemporaryDataDirectory()
        var cluster = ClusterConfig.unauthenticatedForTests
        cluster.security.curve = .off
        let config = NodeConfiguration(cluster: cluster, name: "plain-node", kind: "test", bind: "tcp://127.0.0.1:*", dataDirectory: data.url)
        let runtime = try NodeRuntime(configuration: config, service: EchoService(), logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        let task = Task { await runtime.run() }
        let client = try NimbusClient.standalone(name: "test-client", cluster: cluster, dataDirectory: data.url)
        _ = try await client.request("test:Echo", to: runtime.boundEndpoint!, body: Data(#"{"text":"hi"}"#.utf8))
        #expect(!FileManager.default.fileExists(atPath: data.url.appendingPathComponent("keys").path))
        await client.close()
        task.cancel()
        await task.value
    }
}
