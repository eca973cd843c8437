import ArgumentParser
import Foundation
import Logging
import NimbusRuntime
import QueueCore

@main
struct NimbusBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nimbus-bench", abstract: "Benchmarks of Nimbus (run through Scripts/bench, release build).",
        subcommands: [RuntimeBench.self, QueueBench.self])
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

    struct EchoService: NodeService {
        var actions: Set<String> { ["bench:Echo"] }
        func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data { request.body }
    }

    func run() async throws {
        let node = try NodeRuntime(
            configuration: NodeConfiguration(cluster: ClusterConfig(), name: "bench-node", kind: "bench",
                                             bind: "tcp://127.0.0.1:*", dataDirectory: URL(fileURLWithPath: NSTemporaryDirectory())),
            service: EchoService(), logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() })
        let endpoint = node.boundEndpoint!
        let server = Task { await node.run() }
        let client = try NimbusClient.standalone(name: "bench-client")
        let body = Data(("{\"MessageBody\":\"" + String(repeating: "x", count: max(0, payload - 18)) + "\"}").utf8)
        for _ in 0..<200 { _ = try await client.request("bench:Echo", to: endpoint, body: body) }
        let m = try await measure(concurrency: concurrency, perTask: requests / concurrency) {
            _ = try await client.request("bench:Echo", to: endpoint, body: body, timeout: .seconds(10), attempts: 1)
        }
        print(m.report("runtime round trip, concurrency \(concurrency), \(body.count)-byte payload"))
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

    func run() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-bench-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("nimbus.yaml")
        try "stack: \"\"\nservices:\n  queue: { endpoint: tcp://127.0.0.1:\(port) }\n".write(to: config, atomically: true, encoding: .utf8)
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("nimbus-queue")
        let pid = try ProcessSpawner.spawn(binary.path, ["--config", config.path, "--data-dir", directory.path],
                                           logFile: directory.appendingPathComponent("queue.out").path)
        defer { kill(pid, SIGTERM) }
        let endpoint = "tcp://127.0.0.1:\(port)"
        let client = try NimbusClient.standalone(name: "bench-client")
        let create = try JSONEncoder().encode(["QueueName": "bench"])
        var url = ""
        for _ in 0..<50 {
            if let data = try? await client.request(SQSAction.createQueue, to: endpoint, body: create, timeout: .milliseconds(200), attempts: 1) {
                url = try JSONDecoder().decode(QueueURLResponse.self, from: data).QueueUrl
                break
            }
        }
        guard !url.isEmpty else { throw ValidationError("nimbus-queue did not start; see \(directory.path)/queue.out") }
        let body = #"{"item": "latex gloves", "customerID": "12345", "note": "a typical order body of a few hundred bytes, padded with text to about that size ......................................................................................"}"#
        let single = try JSONEncoder().encode(SendMessageRequest(QueueUrl: url, MessageBody: body))
        let batch = try JSONEncoder().encode(SendMessageBatchRequest(
            QueueUrl: url, Entries: (0..<10).map { SendMessageBatchEntry(Id: "e\($0)", MessageBody: body) }))

        let one = try await measure(concurrency: concurrency, perTask: messages / concurrency) {
            _ = try await client.request(SQSAction.sendMessage, to: endpoint, body: single, timeout: .seconds(10), attempts: 1)
        }
        print(one.report("broker SendMessage (durable), concurrency \(concurrency)", unit: "msgs/s"))
        let ten = try await measure(concurrency: concurrency, perTask: max(1, messages / concurrency / 10), count: 10) {
            _ = try await client.request(SQSAction.sendMessageBatch, to: endpoint, body: batch, timeout: .seconds(10), attempts: 1)
        }
        print(ten.report("broker SendMessageBatch x10 (durable), concurrency \(concurrency)", unit: "msgs/s"))
        await client.close()
    }
}
