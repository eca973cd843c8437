import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import NimbusRuntime

struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "POST the lab's order to the gateway at a steady rate and record each one's outcome (for nimbus verify).",
        discussion: """
            Order n is sent at n/RATE seconds whatever the earlier ones are doing (an open-loop \
            schedule), with at most --concurrency requests in flight; when all are busy the schedule \
            slips and the summary says by how much. Each order carries a unique loadID, <run>-<n>, also \
            sent as its Idempotency-Key; a connection error, a timeout, 429 or 5xx is retried with the \
            same key (3 attempts within 10 s at most). Every outcome is a JSON line in \
            <dataDirectory>/load/<run>.jsonl (or --out).
            """)

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "Orders per second.")
    var rate: Double

    @Option(help: "How long to send, e.g. 60, 60s, 5m, 500ms.")
    var duration: TimeSpan

    @Option(help: "The record file. Default: <dataDirectory>/load/<run>.jsonl.")
    var out: String?

    @Option(help: "Most requests in flight at once (an order waits for a free one, and the schedule slips).")
    var concurrency = 100

    func validate() throws {
        guard rate > 0, rate.isFinite else { throw ValidationError("--rate must be a positive number of orders per second") }
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
    }

    func run() async throws {
        do { try await load() } catch let exit as ExitCode { throw exit } catch { Self.fail(error) }
    }

    private func load() async throws {
        let located = try cluster.load()
        let run = String(UUID().uuidString.lowercased().filter(\.isHexDigit).prefix(8))
        let file = out.map { URL(fileURLWithPath: $0) } ?? LoadRecords.directory(located).appendingPathComponent("\(run).jsonl")
        let recorder = try RecordFile(file)
        let poster = try OrderPoster(gateway: located.config.gateway.http, concurrency: concurrency)
        let total = max(1, Int(rate * duration.seconds))

        let start = ContinuousClock.now
        var acknowledged = 0, worstSlip = Duration.zero, lastDispatch = start
        var latencies: [Double] = []
        await withTaskGroup(of: LoadRecord.self) { group in
            var inFlight = 0
            func settle(_ record: LoadRecord) {
                inFlight -= 1
                if record.acknowledged {
                    acknowledged += 1
                    if let ms = record.milliseconds { latencies.append(ms) }
                }
                recorder.append(record)
            }
            for n in 0..<total {
                let due = start + .seconds(Double(n) / rate)
                try? await Task.sleep(until: due, clock: .continuous)
                while inFlight >= concurrency, let done = await group.next() { settle(done) }
                lastDispatch = .now
                worstSlip = max(worstSlip, lastDispatch - due)
                let id = "\(run)-\(n)"
                group.addTask { await poster.post(id: id) }
                inFlight += 1
            }
            while let done = await group.next() { settle(done) }
        }
        await poster.close()

        // Orders over the time their sends spanned, plus one interval: exactly the asked rate when
        // every send left on time.
        let spanned = (lastDispatch - start) + .seconds(1 / rate)
        let achieved = Double(total) / (Double(spanned.components.seconds) + Double(spanned.components.attoseconds) / 1e18)
        var summary = "nimbus: load \(run): \(total) sent, \(acknowledged) acknowledged, \(total - acknowledged) failed; "
            + String(format: "%.1f orders/s (asked %.1f)", achieved, rate)
        if worstSlip > .milliseconds(100) {
            summary += String(format: ", up to %.2f s behind schedule (all %d requests in flight busy)", seconds(worstSlip), concurrency)
        }
        if !latencies.isEmpty {
            latencies.sort()
            func at(_ q: Double) -> Double { latencies[min(latencies.count - 1, Int((Double(latencies.count) * q).rounded(.up)) - 1)] }
            summary += String(format: "; acknowledged in p50 %.1f ms, p99 %.1f ms, max %.1f ms", at(0.5), at(0.99), latencies.last!)
        }
        print(summary)
        print("nimbus: records: \(file.path)")
        if let problem = recorder.problem { throw CLIError("could not write every record to \(file.path): \(problem)") }
        // Nothing got through: the gateway is down or misconfigured, not merely unlucky.
        if acknowledged == 0 { throw CLIError("no order was acknowledged by the gateway at http://\(located.config.gateway.http)/orders") }
    }

    private func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
}

/// Posts one order, retrying what may succeed on a second try, and says how it went.
struct OrderPoster: Sendable {
    static let maxAttempts = 3
    /// No attempt starts later than this after the first.
    static let retryWindow = Duration.seconds(10)
    static let requestTimeout: TimeInterval = 5

    let session: URLSession
    let url: URL

    init(gateway: String, concurrency: Int) throws {
        // A gateway listening on every interface is reached on the loopback one.
        var address = gateway
        if address.hasPrefix("0.0.0.0:") { address = "127.0.0.1:" + address.dropFirst("0.0.0.0:".count) }
        guard let url = URL(string: "http://\(address)/orders") else { throw CLIError("gateway.http \(gateway) is not HOST:PORT") }
        self.url = url
        let settings = URLSessionConfiguration.ephemeral
        settings.timeoutIntervalForRequest = Self.requestTimeout
        settings.httpMaximumConnectionsPerHost = concurrency
        settings.urlCache = nil
        session = URLSession(configuration: settings)
    }

    func close() async { session.finishTasksAndInvalidate() }

    /// The lab's order, told apart from every other by its loadID.
    static func body(id: String) -> String { #"{"item": "latex gloves", "customerID": "12345", "loadID": "\#(id)"}"# }

    func post(id: String) async -> LoadRecord {
        var record = LoadRecord(id: id, body: Self.body(id: id), sentAt: timestamp())
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.httpBody = Data(record.body.utf8)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        // The same key on every attempt: a retry of an order the gateway did take is the same order.
        request.setValue(id, forHTTPHeaderField: "Idempotency-Key")
        let first = ContinuousClock.now
        // A killed node is back within about a second (at once, or after the supervisor's first
        // backoff, plus its start): retries 1 s and 2 s apart outlast that, where a quicker pair
        // would both land in the gap.
        var pause = Duration.seconds(1)
        for attempt in 1...Self.maxAttempts {
            record.attempts = attempt
            var retryable = true
            do {
                let (data, response) = try await session.data(for: request)
                let status = (response as? HTTPURLResponse)?.statusCode
                record.status = status
                record.acknowledged = status == 200
                record.error = record.acknowledged ? nil : "HTTP \(status.map(String.init) ?? "?"): \(String(decoding: data.prefix(200), as: UTF8.self))"
                // 429 is the gateway's throttle (retried, as AWS's SDKs do); other 4xx will not change.
                retryable = status.map { $0 == 429 || $0 >= 500 } ?? true
            } catch {
                record.status = nil
                record.error = (error as? URLError).map { "\($0.code == .timedOut ? "timed out" : "connection error"): \($0.localizedDescription)" }
                    ?? "\(error)"
            }
            guard !record.acknowledged, retryable, attempt < Self.maxAttempts,
                  ContinuousClock.now + pause - first < Self.retryWindow else { break }
            try? await Task.sleep(for: pause)
            pause *= 2
        }
        let took = ContinuousClock.now - first
        record.milliseconds = ((Double(took.components.seconds) * 1000 + Double(took.components.attoseconds) / 1e15) * 10).rounded() / 10
        return record
    }
}

/// The record file, appended a line per finished order, so a run cut short keeps what it did.
final class RecordFile {
    private let handle: FileHandle
    /// The first write that failed, reported at the end rather than stopping the run.
    private(set) var problem: String?

    init(_ file: URL) throws {
        do {
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: file.path, contents: nil) else { throw CLIError("cannot create \(file.path)") }
            handle = try FileHandle(forWritingTo: file)
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError("cannot write \(file.path): \(error.localizedDescription)")
        }
    }

    deinit { try? handle.close() }

    func append(_ record: LoadRecord) {
        do { try handle.write(contentsOf: LoadRecords.line(record)) } catch { problem = problem ?? "\(error)" }
    }
}
