import ArgumentParser
import Foundation
import Logging
import NimbusRuntime

/// Measures the node runtime itself: request/reply round trips over tcp loopback through a client's
/// and a node's I/O threads, with the node's handler returning the payload it got.
@main
struct NimbusBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nimbus-bench", abstract: "Benchmarks of the Nimbus runtime.")

    @Option(help: "Requests to send.")
    var requests = 50_000

    @Option(help: "Requests in flight at once.")
    var concurrency = 64

    @Option(help: "Payload bytes per request (a SendMessage-sized body is ~450).")
    var payload = 450

    func run() async throws {
        let node = try NodeRuntime(
            configuration: NodeConfiguration(cluster: ClusterConfig(), name: "bench-node", kind: "bench",
                                             bind: "tcp://127.0.0.1:*", dataDirectory: URL(fileURLWithPath: NSTemporaryDirectory())),
            service: EchoService(), logger: Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() })
        let endpoint = node.boundEndpoint!
        let server = Task { await node.run() }
        let client = try NimbusClient.standalone(name: "bench-client")
        let body = Data(("{\"MessageBody\":\"" + String(repeating: "x", count: max(0, payload - 18)) + "\"}").utf8)

        // Warm up connections and caches.
        for _ in 0..<200 { _ = try await client.request("bench:Echo", to: endpoint, body: body) }

        let perWorker = requests / concurrency
        let start = ContinuousClock.now
        let latencies = try await withThrowingTaskGroup(of: [Double].self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    var mine: [Double] = []
                    mine.reserveCapacity(perWorker)
                    for _ in 0..<perWorker {
                        let t0 = ContinuousClock.now
                        _ = try await client.request("bench:Echo", to: endpoint, body: body, timeout: .seconds(10), attempts: 1)
                        mine.append(Self.microseconds(ContinuousClock.now - t0))
                    }
                    return mine
                }
            }
            var all: [Double] = []
            for try await part in group { all += part }
            return all.sorted()
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        func percentile(_ p: Double) -> Double { latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        print(String(format: "runtime round trip: %d requests, concurrency %d, %d-byte payload: %.0f req/s; latency p50 %.0f µs, p99 %.0f µs, max %.0f µs",
                     latencies.count, concurrency, body.count, Double(latencies.count) / seconds,
                     percentile(0.50), percentile(0.99), latencies.last ?? 0))
        await client.close()
        server.cancel()
        await server.value
    }

    static func microseconds(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12
    }
}

struct EchoService: NodeService {
    var actions: Set<String> { ["bench:Echo"] }
    func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data { request.body }
}
