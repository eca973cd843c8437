import ArgumentParser
import Foundation
import Logging
import IAMCore
import NimbusAuth
import NimbusRuntime
import QueueCore
import Synchronization

@main
struct NimbusBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nimbus-bench", abstract: "Benchmarks of Nimbus (run through Scripts/bench, release build).",
        subcommands: [RuntimeBench.self, QueueBench.self, TableBench.self, AuthBench.self, LatencyBench.self, DrainBench.self, BareHTTPServer.self])
}

/// Latency samples and the numbers a benchmark reports.
struct Measurement {
    var latencies: [Double]  // µs
    var seconds: Double
    var operations: Int

    func percentile(_ p: Double) -> Double {
        let sorted = latencies.sorted()
        return sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }

    func report(_ what: String, unit: String = "req/s") -> String {
        String(format: "%@: %.0f %@; latency p50 %.0f µs, p99 %.0f µs, max %.0f µs", what, Double(operations) / seconds, unit,
               percentile(0.50), percentile(0.99), latencies.max() ?? 0)
    }
}

/// Runs `perTask` requests on each of `concurrency` tasks, timing each; `count` is what one request
/// carries (messages in a batch).
func measure(concurrency: Int, perTask: Int, count: Int = 1, _ operation: @escaping @Sendable () async throws -> Void) async throws -> Measurement {
    let start = ContinuousClock.now
    let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
        for _ in 0..<concurrency {
            group.addTask {
                var mine: [Double] = []
                mine.reserveCapacity(perTask)
                for _ in 0..<perTask {
                    let t0 = ContinuousClock.now
                    try await operation()
                    mine.append(microseconds(ContinuousClock.now - t0))
                }
                return mine
            }
        }
        var all: [Double] = []
        for try await part in group { all += part }
        return all
    }
    let elapsed = ContinuousClock.now - start
    return Measurement(latencies: latencies, seconds: microseconds(elapsed) / 1e6, operations: latencies.count * count)
}

/// `measure`, sending requests prepared ahead (each once, in order across the tasks) when there are
/// any, else running `operation`.
func measure(concurrency: Int, perTask: Int, count: Int = 1, sending prepared: [Envelope]?, through client: NimbusClient,
             to endpoint: String, _ operation: @escaping @Sendable () async throws -> Void) async throws -> Measurement {
    guard let prepared else { return try await measure(concurrency: concurrency, perTask: perTask, count: count, operation) }
    let next = Counter()
    return try await measure(concurrency: concurrency, perTask: perTask, count: count) {
        _ = try await client.send(prepared[next.next() - 1], to: endpoint, timeout: .seconds(10))
    }
}

func microseconds(_ d: Duration) -> Double {
    Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12
}

/// The node runtime alone: request/reply round trips over tcp loopback through a client's and a
/// node's I/O threads, the node's handler returning the payload it got.
struct RuntimeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "runtime")

    @Option var requests = 50_000
    @Option var concurrency = 64
    @Option(help: "Payload bytes per request (a SendMessage-sized body is ~450).")
    var payload = 450
    @Flag(help: "CurveZMQ on the link (security.curve: always): every message encrypted and authenticated, the client admitted by the node's ZAP handler.")
    var curve = false

    struct EchoService: NodeService {
        var actions: Set<String> { ["bench:Echo"] }
        func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data { request.body }
    }

    func run() async throws {
        // The bare runtime: no IAM node here (the queue bench measures authorization on and off).
        var cluster = ClusterConfig()
        cluster.iam.enforce = false
        cluster.security.curve = curve ? .always : .off
        // Keys (with --curve) in a directory of this run's own.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-bench-runtime-\(getpid())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let node = try NodeRuntime(
            configuration: NodeConfiguration(cluster: cluster, name: "bench-node", kind: "bench",
                                             bind: "tcp://127.0.0.1:*", dataDirectory: directory),
            service: EchoService(), logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() })
        let endpoint = node.boundEndpoint!
        let server = Task { await node.run() }
        let client = try NimbusClient.standalone(name: "bench-client", cluster: cluster, dataDirectory: directory,
                                                 curvePeers: [endpoint: "bench-node"])
        let body = Data(("{\"MessageBody\":\"" + String(repeating: "x", count: max(0, payload - 18)) + "\"}").utf8)
        for _ in 0..<200 { _ = try await client.request("bench:Echo", to: endpoint, body: body) }
        let m = try await measure(concurrency: concurrency, perTask: requests / concurrency) {
            _ = try await client.request("bench:Echo", to: endpoint, body: body, timeout: .seconds(10), attempts: 1)
        }
        print(m.report("runtime round trip\(curve ? " (CURVE)" : ""), concurrency \(concurrency), \(body.count)-byte payload"))
        await client.close()
        server.cancel()
        await server.value
    }
}

/// The queue broker as a real process (`nimbus-queue`, standalone, fresh data directory): durable
/// SendMessage throughput, one message per request and ten per SendMessageBatch.
struct QueueBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "queue")

    @Option var messages = 40_000
    @Option var concurrency = 64
    @Option(help: "Port for the broker under test.")
    var port = 17_302
    @Option(help: "IAM enforcement: off (nothing signed or checked) or on (an IAM node beside the broker; every request signed with the root credentials, verified and authorized through the caches).")
    var iam = "off"
    @Flag(help: "Build (and with IAM on, sign) every request before timing starts, so that the load generator's own work, signing included, is not counted against the broker it shares the cores with.")
    var prepared = false

    func run() async throws {
        let enforce = iam == "on"
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-bench-queue-\(getpid())")
        let yaml = "stack: \"\"\niam: {enforce: \(enforce)}\nservices:\n  queue: { endpoint: tcp://127.0.0.1:\(port) }\n  iam: { endpoint: tcp://127.0.0.1:\(port + 1) }\n"
        let iamNode = enforce ? try StandaloneNode(kind: "iam", port: port + 1, directory: directory, yaml: yaml) : nil
        defer { iamNode?.stop() }
        if let iamNode {
            // What the supervisor does for a supervised broker: service credentials for sqs.amazonaws.com.
            let admin = try NimbusClient.standalone(name: "bench-admin", credentials: CredentialSource(file: CredentialSource.file(dataDirectory: directory, name: "root")))
            struct Answer: Decodable { var Credentials: NimbusAuth.Credentials }
            let issued = try await iamNode.firstAnswer(admin, "sts:GetServiceCredentials", Data(#"{"ServicePrincipal":"sqs.amazonaws.com"}"#.utf8))
            try CredentialSource.write(try JSONDecoder().decode(Answer.self, from: issued).Credentials,
                                       to: CredentialSource.file(dataDirectory: directory, name: "queue"))
            await admin.close()
        }
        let node = try StandaloneNode(kind: "queue", port: port, directory: directory, yaml: yaml)
        defer { node.stop() }
        let endpoint = node.endpoint
        let credentials = enforce ? CredentialSource(file: CredentialSource.file(dataDirectory: directory, name: "root")) : nil
        let client = try NimbusClient.standalone(name: "bench-client", credentials: credentials)
        print("IAM enforcement: \(enforce ? "on" : "off")")
        let create = try JSONEncoder().encode(["QueueName": "bench"])
        let url = try JSONDecoder().decode(QueueURLResponse.self, from: try await node.firstAnswer(client, SQSAction.createQueue, create)).QueueUrl
        let body = #"{"item": "latex gloves", "customerID": "12345", "note": "a typical order body of a few hundred bytes, padded with text to about that size ......................................................................................"}"#
        let single = try JSONEncoder().encode(SendMessageRequest(QueueUrl: url, MessageBody: body))
        let batch = try JSONEncoder().encode(SendMessageBatchRequest(
            QueueUrl: url, Entries: (0..<10).map { SendMessageBatchEntry(Id: "e\($0)", MessageBody: body) }))

        let how = prepared ? ", requests \(enforce ? "signed" : "built") ahead" : ""
        let singles = messages / concurrency
        let one = try await measure(concurrency: concurrency, perTask: singles,
                                    sending: prepared ? (0..<singles * concurrency).map { _ in client.prepare(SQSAction.sendMessage, body: single) } : nil,
                                    through: client, to: endpoint) {
            _ = try await client.request(SQSAction.sendMessage, to: endpoint, body: single, timeout: .seconds(10), attempts: 1)
        }
        print(one.report("broker SendMessage (durable), concurrency \(concurrency)\(how)", unit: "msgs/s"))
        let batches = max(1, messages / concurrency / 10)
        let ten = try await measure(concurrency: concurrency, perTask: batches, count: 10,
                                    sending: prepared ? (0..<batches * concurrency).map { _ in client.prepare(SQSAction.sendMessageBatch, body: batch) } : nil,
                                    through: client, to: endpoint) {
            _ = try await client.request(SQSAction.sendMessageBatch, to: endpoint, body: batch, timeout: .seconds(10), attempts: 1)
        }
        print(ten.report("broker SendMessageBatch x10 (durable), concurrency \(concurrency)\(how)", unit: "msgs/s"))
        await client.close()
    }
}

/// A service executable started on its own (no supervisor) with a fresh data directory.
struct StandaloneNode {
    let pid: Int32
    let directory: URL
    let endpoint: String

    init(kind: String, port: Int, directory shared: URL? = nil, yaml: String? = nil) throws {
        directory = shared ?? FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-bench-\(kind)-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let config = directory.appendingPathComponent("nimbus-\(kind).yaml")
        try (yaml ?? "stack: \"\"\niam: {enforce: false}\nservices:\n  \(kind): { endpoint: tcp://127.0.0.1:\(port) }\n").write(to: config, atomically: true, encoding: .utf8)
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("nimbus-\(kind)")
        pid = try ProcessSpawner.spawn(binary.path, ["--config", config.path, "--data-dir", directory.path],
                                       logFile: directory.appendingPathComponent("\(kind).out").path)
        endpoint = "tcp://127.0.0.1:\(port)"
    }

    /// Waits (bounded, ~10 s) for the node to answer health, then sends `action` once.
    func firstAnswer(_ client: NimbusClient, _ action: String, _ body: Data) async throws -> Data {
        var up = false
        for _ in 0..<50 where !up {
            up = (try? await client.request(NimbusAction.health, to: endpoint, timeout: .milliseconds(200), attempts: 1)) != nil
        }
        guard up else { throw ValidationError("the node did not start; see \(directory.path)") }
        return try await client.request(action, to: endpoint, body: body, timeout: .seconds(10), attempts: 1)
    }

    func stop() {
        kill(pid, SIGTERM)
        try? FileManager.default.removeItem(at: directory)
    }
}

/// The table node as a real process: durable PutItem (each with its stream record) and GetRecords.
struct TableBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "table")

    @Option var items = 40_000
    @Option var concurrency = 64
    @Option var port = 17_303

    func run() async throws {
        let node = try StandaloneNode(kind: "table", port: port)
        defer { node.stop() }
        let client = try NimbusClient.standalone(name: "bench-client")
        let create = Data(#"{"TableName":"bench","KeySchema":[{"AttributeName":"orderID","KeyType":"HASH"}],"AttributeDefinitions":[{"AttributeName":"orderID","AttributeType":"S"}],"StreamSpecification":{"StreamEnabled":true,"StreamViewType":"NEW_IMAGE"}}"#.utf8)
        _ = try await node.firstAnswer(client, "dynamodb:CreateTable", create)
        let counter = Counter()
        let put = try await measure(concurrency: concurrency, perTask: items / concurrency) {
            let id = counter.next()
            let body = Data(#"{"TableName":"bench","Item":{"orderID":{"S":"o-\#(id)"},"order":{"S":"{\"item\": \"latex gloves\", \"customerID\": \"12345\"}"}},"ConditionExpression":"attribute_not_exists(orderID)"}"#.utf8)
            _ = try await client.request("dynamodb:PutItem", to: node.endpoint, body: body, timeout: .seconds(10), attempts: 1)
        }
        print(put.report("table PutItem + stream record (durable), concurrency \(concurrency)", unit: "items/s"))
        let single = try await measure(concurrency: 1, perTask: min(2_000, items)) {
            let id = counter.next()
            let body = Data(#"{"TableName":"bench","Item":{"orderID":{"S":"o-\#(id)"},"order":{"S":"{\"item\": \"latex gloves\"}"}}}"#.utf8)
            _ = try await client.request("dynamodb:PutItem", to: node.endpoint, body: body, timeout: .seconds(10), attempts: 1)
        }
        print(single.report("table PutItem + stream record (durable), one client", unit: "items/s"))
        let batchConcurrency = max(1, concurrency / 4)
        let batches = try await measure(concurrency: batchConcurrency, perTask: max(1, items / 25 / batchConcurrency), count: 25) {
            let puts = (0..<25).map { _ in
                #"{"PutRequest":{"Item":{"orderID":{"S":"b-\#(counter.next())"},"order":{"S":"{\"item\": \"latex gloves\"}"}}}}"#
            }
            let body = Data((#"{"RequestItems":{"bench":["# + puts.joined(separator: ",") + "]}}").utf8)
            _ = try await client.request("dynamodb:BatchWriteItem", to: node.endpoint, body: body, timeout: .seconds(10), attempts: 1)
        }
        print(batches.report("table BatchWriteItem x25 + stream records (durable), concurrency \(batchConcurrency)", unit: "items/s"))
        let streams = try JSONSerialization.jsonObject(with: try await client.request("dynamodb:ListStreams", to: node.endpoint)) as! [String: Any]
        let arn = ((streams["Streams"] as! [[String: String]]).first!)["StreamArn"]!
        let iteratorBody = try JSONSerialization.data(withJSONObject: ["StreamArn": arn, "ShardId": "shardId-00000000000000000000-00000000", "ShardIteratorType": "TRIM_HORIZON"])
        var iterator = (try JSONSerialization.jsonObject(with: try await client.request("dynamodb:GetShardIterator", to: node.endpoint, body: iteratorBody)) as! [String: Any])["ShardIterator"] as! String
        var latencies: [Double] = []
        var total = 0
        let start = ContinuousClock.now
        while true {
            let t0 = ContinuousClock.now
            let page = try JSONSerialization.jsonObject(with: try await client.request(
                "dynamodb:GetRecords", to: node.endpoint, body: try JSONSerialization.data(withJSONObject: ["ShardIterator": iterator, "Limit": 1000]),
                timeout: .seconds(10))) as! [String: Any]
            latencies.append(microseconds(ContinuousClock.now - t0))
            let records = (page["Records"] as! [Any]).count
            if records == 0 { break }
            total += records
            iterator = page["NextShardIterator"] as! String
        }
        let m = Measurement(latencies: latencies, seconds: microseconds(ContinuousClock.now - start) / 1e6, operations: total)
        print(m.report("table GetRecords (1,000 per call), one reader", unit: "records/s"))
        await client.close()
    }
}

final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func next() -> Int { value.wrappingAdd(1, ordering: .relaxed).newValue }
}

/// Authentication and authorization alone, in one process: what signing costs a client and what
/// verifying and authorizing (through the warm caches) costs a node, per request, for a
/// SendMessage-sized request with a queue policy the size of POC-Queue's. Compare with the
/// broker's CPU per message to see the share authorization takes.
struct AuthBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "auth")

    @Option var requests = 200_000

    /// The IAM node's answers, fixed: the caches in front of it are warm after the first request,
    /// which is the steady state this measures.
    struct FixedAuthority: Authority {
        let material: SigningMaterial
        func signingMaterial(accessKeyId: String, sessionToken: String?, day: String, service: String) async throws -> SigningMaterial { material }
        func decide(principal: String, action: String, resource: String, resourcePolicy: String?) async throws -> Decision { .allow }
        func policyVersion() async throws -> Int64 { 1 }
    }

    func run() async throws {
        let now = CredentialSource.nowMillis()
        let credentials = Credentials(accessKeyId: "ASIANIMBUSBENCH00001", secretAccessKey: String(repeating: "s", count: 40),
                                      sessionToken: String(repeating: "t", count: 180), expiration: now + 3_600_000,
                                      principal: "arn:aws:sts::000000000000:assumed-role/APIGateway-SQS/gateway")
        let source = CredentialSource(fixed: credentials)
        let key = RequestSigning.signingKey(secret: credentials.secretAccessKey, day: RequestSigning.day(ofMillis: now), service: "sqs")
        var settings = ClusterConfig().iam
        settings.decisionCacheSeconds = 3600
        let authorizer = RequestAuthorizer(
            settings: settings, account: "000000000000",
            authority: FixedAuthority(material: SigningMaterial(principal: credentials.principal, key: key, expiration: credentials.expiration)),
            logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() })
        let resource = "arn:aws:sqs:us-east-1:000000000000:POC-Queue"
        let policy = ResourcePolicy(text: String(repeating: "p", count: 900))
        let body = Data(#"{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/000000000000/POC-Queue","MessageBody":"{\"item\": \"latex gloves\", \"customerID\": \"12345\", \"note\": \"a typical order body of a few hundred bytes, padded with text to about that size ..........................................................................\"}"}"#.utf8)
        let stamp = NodeStamp(name: "gateway", incarnation: UUID().uuidString.lowercased())
        var envelopes: [Envelope] = []
        envelopes.reserveCapacity(requests)
        let signStart = ContinuousClock.now
        for i in 0..<requests {
            var envelope = Envelope.request(id: "bench-\(i)", action: "sqs:SendMessage", sender: stamp, body: body)
            source.sign(&envelope)
            envelopes.append(envelope)
        }
        let signing = microseconds(ContinuousClock.now - signStart) / Double(requests)
        let checkStart = ContinuousClock.now
        for envelope in envelopes {
            _ = try await authorizer.authorize(header: envelope.header, body: envelope.body, resource: resource, resourcePolicy: policy)
        }
        let checking = microseconds(ContinuousClock.now - checkStart) / Double(requests)
        print(String(format: "auth, %d-byte body: signing %.2f µs per request (client); verifying + authorizing %.2f µs per request (node, warm caches)",
                     body.count, signing, checking))
    }
}
