import Foundation
import Logging
import Synchronization
import Testing
import ZeroMQ
@testable import NimbusRuntime

/// A service with a few behaviours to exercise the runtime's dispatch.
struct EchoService: NodeService {
    struct Echo: Codable { var text: String }
    var actions: Set<String> { ["test:Echo", "test:Fail", "test:Crash", "test:Forward"] }

    func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data {
        switch request.header.action {
        case "test:Echo":
            let echo = try request.decode(Echo.self)
            return try JSONEncoder().encode(Echo(text: echo.text + "!"))
        case "test:Fail":
            throw WireError(.invalidParameterValue, "told to fail")
        case "test:Forward":
            // A handler's own outbound request goes over the same node's I/O thread.
            let target = try request.decode(Echo.self).text
            return try await runtime.client.request("test:Echo", to: target, body: Data(#"{"text":"fwd"}"#.utf8))
        default:
            struct Boom: Error {}
            throw Boom()
        }
    }
}

/// Starts a node on a wildcard loopback port; stops it when the test ends.
final class RunningNode: Sendable {
    let runtime: NodeRuntime
    let task: Task<Void, Never>
    let endpoint: String

    init(service: any NodeService = EchoService()) throws {
        let config = NodeConfiguration(cluster: ClusterConfig.unauthenticatedForTests, name: "test-node", kind: "test", bind: "tcp://127.0.0.1:*",
                                       dataDirectory: URL(fileURLWithPath: NSTemporaryDirectory()))
        runtime = try NodeRuntime(configuration: config, service: service, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        endpoint = runtime.boundEndpoint!
        task = Task { [runtime] in await runtime.run() }
    }

    func stop() async {
        task.cancel()
        await task.value
    }
}

@Suite struct NodeRuntimeTests {
    @Test func requestsAreDispatchedToTheServiceAndAnswered() async throws {
        let node = try RunningNode()
        let client = try NimbusClient.standalone(name: "test-client")
        let answer = try await client.request("test:Echo", to: node.endpoint, body: Data(#"{"text":"hi"}"#.utf8))
        #expect(try JSONDecoder().decode(EchoService.Echo.self, from: answer).text == "hi!")
        await client.close()
        await node.stop()
    }

    @Test func manyConcurrentRequestsAllGetTheirOwnAnswers() async throws {
        let node = try RunningNode()
        let client = try NimbusClient.standalone(name: "test-client")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<300 {
                group.addTask {
                    let answer = try await client.request("test:Echo", to: node.endpoint, body: Data(#"{"text":"\#(i)"}"#.utf8), timeout: .patient, attempts: 1)
                    #expect(try JSONDecoder().decode(EchoService.Echo.self, from: answer).text == "\(i)!")
                }
            }
            try await group.waitForAll()
        }
        #expect(node.runtime.counters.repliesSent.load(ordering: .relaxed) == 300)
        await client.close()
        await node.stop()
    }

    @Test func errorsComeBackAsWireErrors() async throws {
        let node = try RunningNode()
        let client = try NimbusClient.standalone(name: "test-client")
        await #expect(throws: WireError(code: "InvalidParameterValue", message: "told to fail")) {
            try await client.request("test:Fail", to: node.endpoint, timeout: .patient, attempts: 1)
        }
        await #expect(throws: WireError(code: "InternalFailure", message: "internal error in test-node")) {
            try await client.request("test:Crash", to: node.endpoint, timeout: .patient, attempts: 1)
        }
        do {
            _ = try await client.request("sqs:SendMessage", to: node.endpoint, timeout: .patient, attempts: 1)
            Issue.record("an unknown action was answered")
        } catch let error as WireError {
            #expect(error.code == "InvalidAction")
        }
        do {
            _ = try await client.request("test:Echo", to: node.endpoint, body: Data(#"{"text":"#.utf8), timeout: .patient, attempts: 1)
            Issue.record("a truncated body was accepted")
        } catch let error as WireError {
            #expect(error.code == "SerializationException")
        }
        do {
            _ = try await client.request("test:Echo", to: node.endpoint, body: Data(#"{"other":1}"#.utf8), timeout: .patient, attempts: 1)
            Issue.record("a body without its field was accepted")
        } catch let error as WireError {
            #expect(error.code == "MissingParameter")
        }
        for notAnObject in ["[]", "\"x\"", "42", "null"] {
            do {
                _ = try await client.request(NimbusAction.health, to: node.endpoint, body: Data(notAnObject.utf8), timeout: .patient, attempts: 1)
                Issue.record("health accepted the body \(notAnObject)")
            } catch let error as WireError {
                #expect(error.code == "SerializationException")
            }
        }
        #expect(node.runtime.counters.errorsSent.load(ordering: .relaxed) == 9)
        await client.close()
        await node.stop()
    }

    @Test func healthReportsIdentityAndCounters() async throws {
        let node = try RunningNode()
        let client = try NimbusClient.standalone(name: "test-client")
        _ = try await client.request("test:Echo", to: node.endpoint, body: Data(#"{"text":"x"}"#.utf8), timeout: .patient, attempts: 1)
        let report = try JSONDecoder().decode(HealthReport.self, from: try await client.request(NimbusAction.health, to: node.endpoint, timeout: .patient, attempts: 1))
        #expect(report.status == "ok")
        #expect(report.name == "test-node")
        #expect(report.pid == getpid())
        #expect(report.incarnation == node.runtime.identity.incarnation)
        #expect(report.endpoint == node.endpoint)
        #expect(report.counters["requestsReceived"] == 2)
        let beat = try await client.heartbeat(node.endpoint, timeout: .seconds(2))
        #expect(beat.incarnation == node.runtime.identity.incarnation)
        #expect(beat.pid == getpid())
        await client.close()
        await node.stop()
    }

    @Test func aHandlerCanCallAnotherNode() async throws {
        let first = try RunningNode()
        let second = try RunningNode()
        let client = try NimbusClient.standalone(name: "test-client")
        let answer = try await client.request("test:Forward", to: first.endpoint, body: Data(#"{"text":"\#(second.endpoint)"}"#.utf8))
        #expect(try JSONDecoder().decode(EchoService.Echo.self, from: answer).text == "fwd!")
        await client.close()
        await first.stop()
        await second.stop()
    }

    @Test func aSilentPeerTimesOutAfterTheBoundedAttempts() async throws {
        let context = try ZMQContext()
        let silent = try ZMQSocket(context, .router)
        try silent.setLinger(0)
        try silent.bind("tcp://127.0.0.1:*")
        let client = try NimbusClient.standalone(name: "test-client")
        let start = ContinuousClock.now
        do {
            _ = try await client.request(NimbusAction.health, to: try silent.lastEndpoint, timeout: .milliseconds(100), attempts: 3)
            Issue.record("a silent peer answered")
        } catch let error as WireError {
            #expect(error.code == "RequestTimeout")
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(300))
        #expect(elapsed < .seconds(5))
        await client.close()
        silent.close()
    }

    /// Lazy Pirate: a peer that loses the first request still gets the resend on a fresh socket.
    @Test func aLostRequestIsResentOnAFreshSocket() async throws {
        let identities = Mutex<[Data]>([])
        let bound = Mutex<String?>(nil)
        let ready = DispatchSemaphore(value: 0)
        // The fake peer owns its socket on its own thread, as a node would.
        let server = Thread {
            let context = try! ZMQContext()
            let router = try! ZMQSocket(context, .router)
            try! router.setLinger(0)
            try! router.bind("tcp://127.0.0.1:*")
            bound.withLock { $0 = try? router.lastEndpoint }
            ready.signal()
            var poller = ZMQPoller()
            poller.add(router)
            var seen = 0
            while seen < 2, (try? poller.poll(timeoutMs: 5000)) ?? 0 > 0 {
                guard let message = try? router.receive(dontWait: true) else { continue }
                seen += 1
                identities.withLock { $0.append(message.frames[0]) }
                if seen == 2 {
                    // Answer the resend: same id, reply kind.
                    let header = try! JSONDecoder().decode(EnvelopeHeader.self, from: message.frames[2])
                    let reply = FrameCodec.encode(.reply(to: header.id, sender: nil, body: Data(#"{"ok":true}"#.utf8)))
                    _ = try? router.send([message.frames[0]] + reply)
                }
            }
            router.close()
        }
        server.start()
        #expect(ready.wait(timeout: .now() + 5) == .success)
        let endpoint = try #require(bound.withLock { $0 })
        let client = try NimbusClient.standalone(name: "test-client")
        let answer = try await client.request("test:Echo", to: endpoint, timeout: .milliseconds(300), attempts: 3)
        #expect(String(decoding: answer, as: UTF8.self) == #"{"ok":true}"#)
        let seen = identities.withLock { $0 }
        #expect(seen.count == 2)
        #expect(seen[0] != seen[1], "the resend came over a new connection")
        await client.close()
    }

    @Test func aClientThatIsClosedFailsNewRequestsAtOnce() async throws {
        let client = try NimbusClient.standalone(name: "test-client")
        await client.close()
        await #expect(throws: WireError.self) {
            try await client.request(NimbusAction.health, to: "tcp://127.0.0.1:1", timeout: .seconds(5))
        }
    }
}

/// A service whose handler waits until the test opens the gate, to fill a node with requests in progress.
final class GateService: NodeService {
    let open = Atomic<Bool>(false)
    var actions: Set<String> { ["test:Wait"] }
    func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data {
        for _ in 0..<1000 where !open.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(10)) }
        return Data("{}".utf8)
    }
}

@Suite struct BackpressureTests {
    @Test func beyondMaxInFlightRequestsAreRefusedAtOnceAndServedAgainLater() async throws {
        let service = GateService()
        var config = NodeConfiguration(cluster: ClusterConfig.unauthenticatedForTests, name: "busy-node", kind: "test", bind: "tcp://127.0.0.1:*",
                                       dataDirectory: URL(fileURLWithPath: NSTemporaryDirectory()))
        config.maxInFlight = 3
        let runtime = try NodeRuntime(configuration: config, service: service,
                                      logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        let endpoint = runtime.boundEndpoint!
        let server = Task { await runtime.run() }
        let client = try NimbusClient.standalone(name: "test-client")
        let waiting = (0..<3).map { _ in Task { try await client.request("test:Wait", to: endpoint, timeout: .seconds(10), attempts: 1) } }
        for _ in 0..<500 where runtime.counters.requestsReceived.load(ordering: .relaxed) < 3 {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(runtime.counters.requestsReceived.load(ordering: .relaxed) == 3)
        // The node is full: the next request is refused at once, not held.
        await #expect(throws: WireError(code: "ThrottlingException", message: "busy-node has 3 requests in progress; retry later")) {
            try await client.request("test:Wait", to: endpoint, timeout: .seconds(5), attempts: 1)
        }
        service.open.store(true, ordering: .relaxed)
        for task in waiting { _ = try await task.value }
        _ = try await client.request("test:Wait", to: endpoint, timeout: .seconds(5), attempts: 1)
        await client.close()
        server.cancel()
        await server.value
    }
}

extension Duration {
    /// For tests that count what a node received: a slow start on a busy machine must not turn
    /// into a retry (the default 2 s timeout resends, and the node counts the twin).
    static var patient: Duration { .seconds(30) }
}

extension ClusterConfig {
    /// These tests are about dispatch, not IAM: no signatures checked (signing is NimbusAuthTests').
    static var unauthenticatedForTests: ClusterConfig {
        var config = ClusterConfig()
        config.iam.enforce = false
        return config
    }
}
