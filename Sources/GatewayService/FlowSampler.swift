import Foundation
import Hummingbird
import NimbusRuntime
import QueueCore
import SupervisorCore
import Synchronization
import TableCore

/// The console's one background sampler: once a second it asks the supervisor for its status, reads
/// each process's CPU and memory from /proc, asks each pipeline node for its health and the queue
/// and lease table for their backlogs, and turns the nodes' cumulative counters into per-second
/// rates. Every page (GET cluster, GET flow, the event streams) gets the same sample: the cost does
/// not grow with the pages open. It runs only while a page is connected to the event stream or an
/// API call came in the last 30 seconds.
final class FlowSampler: Sendable {
    let backend: ConsoleBackend
    let meter: PostMeter
    /// This gateway's process name: its own counters are read here, not asked for.
    let gatewayName: String
    private let state = Mutex(State())

    static let historyLength = 300
    static let idleAfter = Duration.seconds(30)

    /// One sample, encoded once for every reader.
    struct Sample: Sendable {
        var generation: Int
        var taken: ContinuousClock.Instant
        /// The supervisor's status as read (nil when it did not answer).
        var status: StatusReply?
        /// GET cluster's answer, or why there is none.
        var cluster: Result<Data, ConsoleError>
        /// One flow sample.
        var flow: Data
        /// Both as server-sent events.
        var events: ByteBuffer
        /// What the health requests said, by process name (the functions page reads it).
        var health: [String: HealthReport]
    }

    enum Wake: Sendable {
        case sample(Sample)
        case timeout
        case stopped
    }

    private struct State {
        var running = false
        var stopped = false
        var subscribers = 0
        var lastTouch: ContinuousClock.Instant?
        var generation = 0
        var latest: Sample?
        var history: [Data] = []
        var waiters: [Int: CheckedContinuation<Wake, Never>] = [:]
        var nextWaiter = 0
    }

    init(backend: ConsoleBackend, meter: PostMeter, gatewayName: String) {
        self.backend = backend
        self.meter = meter
        self.gatewayName = gatewayName
    }

    // MARK: Who wants samples

    /// An API call: keeps the sampler running for another 30 seconds (starting it if it was idle).
    func touch() {
        let start = state.withLock { s -> Bool in
            s.lastTouch = .now
            guard !s.running, !s.stopped else { return false }
            s.running = true
            return true
        }
        if start { Task { await self.loop() } }
    }

    /// An event stream opened: the sampler runs at least until it closes.
    func subscribe() {
        state.withLock { $0.subscribers += 1 }
        touch()
    }

    func unsubscribe() {
        state.withLock { s in
            s.subscribers -= 1
            s.lastTouch = .now
        }
    }

    /// Ends the sampler and every event stream (graceful shutdown: the HTTP server waits for them).
    func stop() {
        let waiters = state.withLock { s -> [CheckedContinuation<Wake, Never>] in
            s.stopped = true
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: .stopped) }
    }

    var isStopped: Bool { state.withLock { $0.stopped } }

    /// A sample at most `maxAge` old: the latest, or the next one (waiting up to `wait`); nil when
    /// none comes.
    func current(maxAge: Duration = .milliseconds(1500), wait: Duration = .seconds(4)) async -> Sample? {
        touch()
        if let latest = state.withLock({ $0.latest }), ContinuousClock.now - latest.taken <= maxAge { return latest }
        let generation = state.withLock { $0.latest?.generation ?? 0 }
        if case .sample(let sample) = await next(after: generation, timeout: wait) { return sample }
        return nil
    }

    /// The latest flow samples, oldest first.
    var history: [Data] { state.withLock { $0.history } }

    /// The first sample newer than `generation`, waiting up to `timeout` for it.
    func next(after generation: Int, timeout: Duration) async -> Wake {
        await withCheckedContinuation { (continuation: CheckedContinuation<Wake, Never>) in
            let registered = state.withLock { s -> Int? in
                if s.stopped { continuation.resume(returning: .stopped); return nil }
                if let latest = s.latest, latest.generation > generation { continuation.resume(returning: .sample(latest)); return nil }
                let id = s.nextWaiter
                s.nextWaiter += 1
                s.waiters[id] = continuation
                return id
            }
            guard let id = registered else { return }
            Task {
                try? await Task.sleep(for: timeout)
                let waiter = self.state.withLock { $0.waiters.removeValue(forKey: id) }
                waiter?.resume(returning: .timeout)
            }
        }
    }

    // MARK: The loop

    private func loop() async {
        var memory = Memory()
        while true {
            let started = ContinuousClock.now
            let sample = await take(&memory)
            let (keepGoing, waiters) = state.withLock { s -> (Bool, [CheckedContinuation<Wake, Never>]) in
                s.generation += 1
                var published = sample
                published.generation = s.generation
                s.latest = published
                s.history.append(sample.flow)
                if s.history.count > Self.historyLength { s.history.removeFirst(s.history.count - Self.historyLength) }
                let waiters = Array(s.waiters.values)
                s.waiters = [:]
                let idle = s.subscribers <= 0 && (s.lastTouch.map { ContinuousClock.now - $0 > Self.idleAfter } ?? true)
                if s.stopped || idle {
                    s.running = false
                    return (false, waiters)
                }
                return (true, waiters)
            }
            if let latest = state.withLock({ $0.latest }) {
                for waiter in waiters { waiter.resume(returning: .sample(latest)) }
            }
            guard keepGoing else { return }
            try? await Task.sleep(until: started + .seconds(1))
        }
    }

    /// What the sampler remembers from one sample to the next (only while it runs: after a pause,
    /// rates start again from the first new sample).
    struct Memory {
        var processes = ProcessStats()
        var counters: [String: (incarnation: String, at: ContinuousClock.Instant, values: [String: Double])] = [:]
        var meter: (at: ContinuousClock.Instant, counts: PostMeter.Counts)?
        var status: StatusReply?
        var streamARN: String?
        var streamARNAge = 0
    }

    /// The counters a node's health reports that the flow differences (details, then counters).
    private func numbers(_ report: HealthReport) -> [String: Double] {
        var values: [String: Double] = [:]
        for (key, text) in report.details { if let n = Double(text) { values[key] = n } }
        for (key, n) in report.counters { values[key] = Double(n) }
        return values
    }

    private func take(_ memory: inout Memory) async -> Sample {
        let now = ContinuousClock.now
        // Health goes to the processes the last status named (or the configured ones, at first).
        let targets = healthTargets(memory.status)
        if memory.streamARN == nil || memory.streamARNAge >= 30 {
            memory.streamARN = await currentStreamARN() ?? memory.streamARN
            memory.streamARNAge = 0
        }
        memory.streamARNAge += 1
        let streamARN = memory.streamARN
        async let statusAnswer = statusOrError()
        async let healthAnswers = health(of: targets)
        async let queueAnswer = queueStage()
        async let consumedAnswer = consumedRecords(streamARN: streamARN)
        let status = await statusAnswer, reports = await healthAnswers, queue = await queueAnswer, consumed = await consumedAnswer

        // Cluster: the status, with CPU and memory of each process.
        let cluster: Result<Data, ConsoleError>
        switch status {
        case .success(let reply):
            memory.status = reply
            let usage = memory.processes.sample(reply.processes.compactMap(\.pid) + [reply.supervisorPID], at: now)
            cluster = .success(ConsoleJSON.data(Self.clusterObject(reply, usage: usage)))
        case .failure(let error):
            cluster = .failure(error)
        }

        // Flow: rates from the counters' changes since the last sample.
        var rates: [String: [String: Double]] = [:]
        var deltas: [String: [String: Double]] = [:]
        for (name, report) in reports {
            let values = numbers(report)
            if let before = memory.counters[name], before.incarnation == report.incarnation {
                let seconds = Self.seconds(now - before.at)
                if seconds > 0 {
                    var rate: [String: Double] = [:], delta: [String: Double] = [:]
                    for (key, value) in values {
                        guard let old = before.values[key], value >= old else { continue }
                        delta[key] = value - old
                        rate[key] = (value - old) / seconds
                    }
                    rates[name] = rate
                    deltas[name] = delta
                }
            }
            memory.counters[name] = (report.incarnation, now, values)
        }
        for name in memory.counters.keys where reports[name] == nil && !targets.contains(where: { $0.name == name }) {
            memory.counters[name] = nil
        }
        let meterNow = meter.snapshot()
        var gatewayRate: Double?
        var gatewayMedian: Double?
        if let before = memory.meter {
            let seconds = Self.seconds(now - before.at)
            if seconds > 0 { gatewayRate = Double(max(0, meterNow.accepted - before.counts.accepted)) / seconds }
            gatewayMedian = PostMeter.median(from: before.counts, to: meterNow)
        }
        memory.meter = (now, meterNow)

        let table = backend.lab.table
        let ingest = targets.filter { $0.kind == .ingestWorker }.map(\.name)
        let stream = targets.filter { $0.kind == .streamWorker }.map(\.name)
        func edge(_ from: String, _ to: String, _ nodes: [String], _ key: String) -> [String: Any] {
            let known = nodes.compactMap { rates[$0] }
            let perSecond = known.reduce(0) { $0 + ($1[key] ?? 0) }
            var object: [String: Any] = ["from": from, "to": to, "perSecond": Self.rounded(perSecond, 1)]
            if known.count < nodes.count { object["stale"] = true }
            return object
        }
        var gatewayEdge: [String: Any] = ["from": "gateway", "to": "queue", "perSecond": Self.rounded(gatewayRate ?? 0, 1)]
        if gatewayRate == nil { gatewayEdge["stale"] = true }
        let edges: [[String: Any]] = [
            gatewayEdge,
            edge("queue", "ingest-worker", ingest, "records"),
            edge("ingest-worker", "table", ["table"], "itemWrites.\(table)"),
            edge("table", "stream", ["table"], "streamRecords.\(table)"),
            edge("stream", "stream-worker", stream, "records"),
            edge("stream-worker", "topic", ["notifier"], "published"),
            edge("topic", "subscribers", ["notifier"], "delivered"),
        ]
        func meanDuration(_ nodes: [String]) -> Any {
            let invocations = nodes.reduce(0.0) { $0 + (deltas[$1]?["invocations"] ?? 0) }
            let busy = nodes.reduce(0.0) { $0 + (deltas[$1]?["busyMicroseconds"] ?? 0) }
            return invocations > 0 ? Self.rounded(busy / invocations / 1000, 2) : NSNull()
        }
        let latency: [String: Any] = [
            "gateway": gatewayMedian.map { Self.rounded($0 / 1000, 2) } ?? NSNull(),
            "ingest-worker": meanDuration(ingest),
            "stream-worker": meanDuration(stream),
        ]
        var lag: Any = NSNull()
        if let head = reports["table"]?.details["streamRecords.\(table)"].flatMap(Int.init), let consumed {
            lag = max(0, head - consumed)
        }
        let outbox: Any = reports["notifier"]?.details["outboxDepth"].flatMap(Int.init) ?? NSNull()
        let flowObject: [String: Any] = [
            "at": Self.epochMillis(),
            "edges": edges,
            "stages": [
                "queue": ["visible": ConsoleJSON.orNull(queue?.visible), "inFlight": ConsoleJSON.orNull(queue?.inFlight),
                          "delayed": ConsoleJSON.orNull(queue?.delayed), "dlq": ConsoleJSON.orNull(queue?.dlq)],
                "stream": ["lag": lag],
                "notifier": ["outbox": outbox],
            ],
            "latencyMs": latency,
        ]
        let flow = ConsoleJSON.data(flowObject)
        var events = ByteBuffer()
        events.writeString("event: cluster\ndata: ")
        switch cluster {
        case .success(let data): events.writeBytes(data)
        case .failure(let error): events.writeBytes(WireError(code: error.code, message: error.message).jsonData)
        }
        events.writeString("\n\nevent: flow\ndata: ")
        events.writeBytes(flow)
        events.writeString("\n\n")
        return Sample(generation: 0, taken: now, status: memory.status, cluster: cluster, flow: flow, events: events, health: reports)
    }

    // MARK: Pieces of a sample

    private func statusOrError() async -> Result<StatusReply, ConsoleError> {
        do { return .success(try await backend.status(timeout: .milliseconds(800))) } catch { return .failure(error) }
    }

    struct Target: Sendable {
        var name: String
        var kind: ServiceKind
        var index: Int
    }

    /// The pipeline's processes (not iam, the mail sink or this gateway): those the status shows
    /// running, or every configured one when there is no status yet.
    func healthTargets(_ status: StatusReply?) -> [Target] {
        let kinds: Set<ServiceKind> = [.queue, .table, .notifier, .ingestWorker, .streamWorker]
        var names: [String]
        if let status {
            names = status.processes.filter { $0.state == "running" }.map(\.name)
        } else {
            names = kinds.sorted().flatMap { kind in (1...max(1, backend.cluster.instances(kind))).map { kind.instanceName($0) } }
        }
        names.removeAll { $0 == gatewayName }
        return names.compactMap { name in
            guard let (kind, index) = ServiceKind.parse(instanceName: name), kinds.contains(kind) else { return nil }
            return Target(name: name, kind: kind, index: index)
        }
    }

    /// nimbus:Health of each target at once; those that do not answer within 800 ms are left out.
    func health(of targets: [Target]) async -> [String: HealthReport] {
        await withTaskGroup(of: (String, HealthReport?).self) { group in
            for target in targets {
                group.addTask {
                    let answer = try? await self.backend.call(NimbusAction.health, to: target.kind, instance: target.index,
                                                              timeout: .milliseconds(800), attempts: 1)
                    return (target.name, answer.flatMap { try? JSONDecoder().decode(HealthReport.self, from: $0) })
                }
            }
            var reports: [String: HealthReport] = [:]
            for await (name, report) in group { if let report { reports[name] = report } }
            return reports
        }
    }

    struct QueueStage: Sendable {
        var visible: Int?
        var inFlight: Int?
        var delayed: Int?
        var dlq: Int?
    }

    static let depthAttributes = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]

    /// POC-Queue's depth and its dead-letter queue's (found from its RedrivePolicy).
    private func queueStage() async -> QueueStage? {
        let cluster = backend.cluster
        let url = SQSNames.url(region: cluster.region, account: cluster.account, name: cluster.gateway.queueName)
        guard let main = try? await backend.typed(SQSAction.getQueueAttributes, to: .queue,
                                                   GetQueueAttributesRequest(QueueUrl: url, AttributeNames: Self.depthAttributes + ["RedrivePolicy"]),
                                                   as: AttributesResponse.self, timeout: .milliseconds(800)) else { return nil }
        let a = main.Attributes
        var stage = QueueStage(visible: a["ApproximateNumberOfMessages"].flatMap(Int.init), inFlight: a["ApproximateNumberOfMessagesNotVisible"].flatMap(Int.init),
                               delayed: a["ApproximateNumberOfMessagesDelayed"].flatMap(Int.init))
        if let dlq = ConsoleQueues.deadLetterURL(redrivePolicy: a["RedrivePolicy"], cluster: cluster),
           let answer = try? await backend.typed(SQSAction.getQueueAttributes, to: .queue,
                                                 GetQueueAttributesRequest(QueueUrl: dlq, AttributeNames: ["ApproximateNumberOfMessages"]),
                                                 as: AttributesResponse.self, timeout: .milliseconds(800)) {
            stage.dlq = answer.Attributes["ApproximateNumberOfMessages"].flatMap(Int.init)
        }
        return stage
    }

    /// The orders table's current stream.
    func currentStreamARN() async -> String? {
        let answer = try? await backend.object(DynamoDBAction.listStreams, to: .table, ["TableName": backend.lab.table], timeout: .milliseconds(800))
        return (answer?["Streams"] as? [[String: Any]])?.last?["StreamArn"] as? String
    }

    /// Stream records the stream workers have processed: per shard of `streamARN`, the counter of
    /// the lease's checkpoint (the last record processed), summed. nil when the lease table does not
    /// answer.
    private func consumedRecords(streamARN: String?) async -> Int? {
        guard let streamARN else { return nil }
        guard let page = try? await backend.object(DynamoDBAction.scan, to: .table, ["TableName": backend.lab.leaseTable, "Limit": 1000],
                                                    timeout: .milliseconds(800)) else { return nil }
        return Self.consumed(leases: page["Items"] as? [[String: Any]] ?? [], streamARN: streamARN)
    }

    /// Per shard, the highest checkpoint counter among the leases on `streamARN`, summed. A lease's
    /// key is `FUNCTION|STREAM_ARN|SHARD_ID`; a checkpoint is a sequence number: the shard's number,
    /// then its counter in 20 digits.
    static func consumed(leases: [[String: Any]], streamARN: String) -> Int {
        var perShard: [String: Int] = [:]
        for lease in leases {
            guard let key = (lease["leaseKey"] as? [String: Any])?["S"] as? String else { continue }
            let parts = key.split(separator: "|", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[1] == streamARN else { continue }
            let counter = ((lease["checkpoint"] as? [String: Any])?["S"] as? String).flatMap { Int($0.suffix(20)) } ?? 0
            perShard[String(parts[2])] = max(perShard[String(parts[2])] ?? 0, counter)
        }
        return perShard.values.reduce(0, +)
    }

    static func clusterObject(_ reply: StatusReply, usage: [Int32: ProcessStats.Usage]) -> [String: Any] {
        let processes: [[String: Any]] = reply.processes.map { p in
            let u = p.pid.flatMap { usage[$0] }
            return [
                "name": p.name, "kind": p.kind, "pid": ConsoleJSON.orNull(p.pid.map { Int($0) }), "state": p.state,
                "stateDescription": p.stateDescription, "ready": ConsoleJSON.orNull(p.ready), "notReadyReason": ConsoleJSON.orNull(p.notReadyReason),
                "restarts": p.restarts, "incarnation": ConsoleJSON.orNull(p.incarnation),
                "lastHeartbeatMillisecondsAgo": ConsoleJSON.orNull(p.lastHeartbeatMillisecondsAgo.map { Int($0) }),
                "uptimeSeconds": ConsoleJSON.orNull(p.uptimeSeconds.map { rounded($0, 1) }), "lastExit": ConsoleJSON.orNull(p.lastExit),
                "cpuPercent": ConsoleJSON.orNull(u?.cpuPercent), "rssBytes": ConsoleJSON.orNull(u?.rssBytes),
            ]
        }
        return ["supervisorPID": Int(reply.supervisorPID), "processes": processes]
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func rounded(_ value: Double, _ places: Int) -> Double {
        let scale = pow(10.0, Double(places))
        return (value * scale).rounded() / scale
    }

    static func epochMillis() -> Int { Int(Date().timeIntervalSince1970 * 1000) }
}

/// The queues the console shows: POC-Queue and the dead-letter queue its RedrivePolicy names.
enum ConsoleQueues {
    static func deadLetterURL(redrivePolicy: String?, cluster: ClusterConfig) -> String? {
        guard let text = redrivePolicy, let policy = ConsoleJSON.object(Data(text.utf8)),
              let arn = policy["deadLetterTargetArn"] as? String else { return nil }
        // arn:aws:sqs:REGION:ACCOUNT:NAME
        let parts = arn.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        return SQSNames.url(region: String(parts[3]), account: String(parts[4]), name: String(parts[5]))
    }
}
