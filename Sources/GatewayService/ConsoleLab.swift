import Foundation
import LabFunctions
import NimbusRuntime
import Synchronization
import TableCore

/// The lab's order, followed through the pipeline (POST /console/api/lab/order, GET lab/trace).
/// The order goes through the gateway's own send path; then a follower polls every 250 ms, for at
/// most 60 seconds, for each stage in turn:
///
/// - posted: when the gateway's send answered (the broker's durable ack);
/// - queued: the same moment: the message exists in POC-Queue once its MessageId is known;
/// - row written: when a GetItem first finds the orders row (orderID = IngestOrders.orderID(forMessage:));
/// - stream record: the record's ApproximateCreationDateTime (whole seconds, as DynamoDB Streams),
///   read from the shards' iterators taken just before the POST;
/// - published: when POC-Lambda-2's lease checkpoint is first seen at or past that record (the stream
///   worker checkpoints after its PublishBatch went through);
/// - mail delivered: the Date header (whole seconds) of the first mail in the local sink carrying the
///   orderID.
///
/// Times are ms since the epoch; a stage not reached yet is null. A trace is done when the mail
/// arrived (and `published` is known: the checkpoint may come up to 3 s after the mail, else the
/// mail's Date stands for it) or 60 seconds after the POST. The last 100 traces are kept.
final class LabTraces: Sendable {
    static let stages = ["posted", "queued", "row written", "stream record", "published", "mail delivered"]
    static let keep = 100
    static let followFor = Duration.seconds(60)
    static let pollEvery = Duration.milliseconds(250)

    struct Step: Sendable, Equatable {
        var at: Int?
        var detail: String
    }

    struct Trace: Sendable {
        var id: String
        var messageID: String
        var orderID: String
        var postedAt: Int
        var steps: [String: Step]
        var done = false

        var jsonObject: [String: Any] {
            [
                "traceId": id, "messageId": messageID, "orderID": orderID, "done": done,
                "steps": LabTraces.stages.map { stage -> [String: Any] in
                    let step = steps[stage] ?? Step(at: nil, detail: "")
                    return ["stage": stage, "at": ConsoleJSON.orNull(step.at), "detail": step.detail]
                },
            ]
        }
    }

    private struct State {
        var traces: [String: Trace] = [:]
        var order: [String] = []
        /// Traces being followed now: each polls the table, the stream and the mailboxes once a
        /// second for up to a minute, so their number is bounded.
        var following = 0
    }

    static let maxFollowing = 8

    private let state = Mutex(State())
    let backend: ConsoleBackend

    init(backend: ConsoleBackend) { self.backend = backend }

    func trace(_ id: String) -> Trace? { state.withLock { $0.traces[id] } }

    private func update(_ id: String, _ change: (inout Trace) -> Void) {
        state.withLock { s in if var trace = s.traces[id] { change(&trace); s.traces[id] = trace } }
    }

    /// The lab's order body with a marker naming the trace, or the caller's JSON object with it.
    static func orderBody(_ given: Any?, traceID: String) throws(ConsoleError) -> String {
        var object: [String: Any] = ["item": "latex gloves", "customerID": "12345"]
        switch given {
        case nil, is NSNull: break
        case let custom as [String: Any]: object = custom
        case let text as String:
            guard let custom = ConsoleJSON.object(Data(text.utf8)) else { throw .validation("body must be a JSON object (or its text)") }
            object = custom
        default: throw .validation("body must be a JSON object (or its text)")
        }
        object["consoleTraceId"] = traceID
        return String(decoding: ConsoleJSON.data(object), as: UTF8.self)
    }

    /// Sends the order with `send` (the gateway's POST path) and starts following it.
    func start(body: Any?, send: @Sendable (String) async throws -> String) async throws(ConsoleError) -> Trace {
        let id = UUID().uuidString.lowercased()
        let text = try Self.orderBody(body, traceID: id)
        let admitted = state.withLock { s in
            guard s.following < Self.maxFollowing else { return false }
            s.following += 1
            return true
        }
        guard admitted else {
            throw ConsoleError(.tooManyRequests, "ThrottlingException",
                               "\(Self.maxFollowing) lab orders are being followed already: try again when one is done (at most a minute)")
        }
        var started = false
        defer { if !started { state.withLock { $0.following -= 1 } } }
        // The shards' positions before the order exists: its stream record is after them.
        let positions = await streamPositions()
        let messageID: String
        do { messageID = try await send(text) } catch {
            throw ConsoleError.from(error, node: "queue", endpoint: backend.cluster.endpoint(.queue).description)
        }
        let posted = FlowSampler.epochMillis()
        let orderID = IngestOrders.orderID(forMessage: messageID)
        let trace = Trace(id: id, messageID: messageID, orderID: orderID, postedAt: posted, steps: [
            "posted": Step(at: posted, detail: "the gateway's send to \(backend.cluster.gateway.queueName) was acknowledged"),
            "queued": Step(at: posted, detail: "MessageId \(messageID) in \(backend.cluster.gateway.queueName)"),
        ])
        state.withLock { s in
            s.traces[id] = trace
            s.order.append(id)
            while s.order.count > Self.keep { s.traces[s.order.removeFirst()] = nil }
        }
        started = true
        Task {
            await self.follow(id, orderID: orderID, positions: positions)
            self.state.withLock { $0.following -= 1 }
        }
        return trace
    }

    /// Where each shard of the orders table's stream ends now (LATEST iterators), with the stream.
    struct Positions: Sendable {
        var streamARN: String
        var iterators: [String: String]
    }

    private func streamPositions(_ type: String = "LATEST") async -> Positions? {
        do {
            let streams = try await backend.object(DynamoDBAction.listStreams, to: .table, ["TableName": backend.lab.table])
            guard let arn = (streams["Streams"] as? [[String: Any]])?.last?["StreamArn"] as? String else { return nil }
            let description = try await backend.object(DynamoDBAction.describeStream, to: .table, ["StreamArn": arn])
            let shards = ((description["StreamDescription"] as? [String: Any])?["Shards"] as? [[String: Any]] ?? []).compactMap { $0["ShardId"] as? String }
            var iterators: [String: String] = [:]
            for shard in shards {
                let answer = try await backend.object(DynamoDBAction.getShardIterator, to: .table,
                                                      ["StreamArn": arn, "ShardId": shard, "ShardIteratorType": type])
                if let iterator = answer["ShardIterator"] as? String { iterators[shard] = iterator }
            }
            return Positions(streamARN: arn, iterators: iterators)
        } catch {
            return nil
        }
    }

    private func follow(_ id: String, orderID: String, positions: Positions?) async {
        let deadline = ContinuousClock.now + Self.followFor
        var positions = positions
        var iterators = positions?.iterators ?? [:]
        var record: (shard: String, counter: Int)?
        var rowSeen = false, published = false
        var mail: Mailboxes.Mail?
        var mailSeenAt: ContinuousClock.Instant?
        var round = 0
        while ContinuousClock.now < deadline {
            round += 1
            if !rowSeen, await rowExists(orderID) {
                rowSeen = true
                let now = FlowSampler.epochMillis()
                update(id) { $0.steps["row written"] = Step(at: now, detail: "\(backend.lab.table) has orderID \(orderID) (seen by polling every 0.25 s)") }
            }
            if positions == nil {
                // The stream could not be read before the POST: read it from its start instead.
                positions = await streamPositions("TRIM_HORIZON")
                iterators = positions?.iterators ?? [:]
            }
            if record == nil, positions != nil, let found = await findRecord(orderID, iterators: &iterators) {
                record = (found.shard, found.counter)
                update(id) {
                    $0.steps["stream record"] = Step(at: found.createdMillis, detail: "\(found.eventName) \(found.eventID) in \(found.shard), "
                                                     + "sequence \(found.sequence) (ApproximateCreationDateTime, whole seconds)")
                }
            }
            if let record, !published, await checkpointed(past: record, streamARN: positions?.streamARN) {
                published = true
                let now = FlowSampler.epochMillis()
                update(id) {
                    $0.steps["published"] = Step(at: now, detail: "POC-Lambda-2 checkpointed past the record: its publish to \(backend.lab.topicName) went through (seen by polling)")
                }
            }
            // The mailboxes are read once a second, once the order is on its way.
            if mail == nil, rowSeen || record != nil, round % 4 == 0, let found = self.mail(carrying: orderID) {
                mail = found
                mailSeenAt = .now
                update(id) {
                    $0.steps["mail delivered"] = Step(at: found.date ?? FlowSampler.epochMillis(), detail: "to \(found.to): \(found.subject) (Date header, whole seconds)")
                }
            }
            if let mail, let seen = mailSeenAt {
                // The mail can arrive before the stream worker's checkpoint is written: give it 3 s.
                if published { break }
                if ContinuousClock.now - seen > .seconds(3) {
                    update(id) {
                        $0.steps["published"] = Step(at: mail.date ?? FlowSampler.epochMillis(), detail: "not seen in POC-Lambda-2's lease, but the mail proves it: no later than the mail's Date")
                    }
                    break
                }
            }
            try? await Task.sleep(for: Self.pollEvery)
        }
        update(id) { $0.done = true }
    }

    private func rowExists(_ orderID: String) async -> Bool {
        let answer = try? await backend.object(DynamoDBAction.getItem, to: .table,
                                               ["TableName": backend.lab.table, "Key": ["orderID": ["S": orderID]], "ConsistentRead": true])
        return answer?["Item"] != nil
    }

    struct FoundRecord {
        var shard: String
        var sequence: String
        var counter: Int
        var eventID: String
        var eventName: String
        var createdMillis: Int?
    }

    /// Reads each shard on from its iterator (at most 1,000 records a shard a round) for a record
    /// whose key is `orderID`.
    private func findRecord(_ orderID: String, iterators: inout [String: String]) async -> FoundRecord? {
        for (shard, iterator) in iterators.sorted(by: { $0.key < $1.key }) {
            guard let page = try? await backend.object(DynamoDBAction.getRecords, to: .table, ["ShardIterator": iterator, "Limit": 1000]) else { continue }
            if let next = page["NextShardIterator"] as? String { iterators[shard] = next }
            for record in page["Records"] as? [[String: Any]] ?? [] {
                guard let body = record["dynamodb"] as? [String: Any],
                      let keys = body["Keys"] as? [String: Any], (keys["orderID"] as? [String: Any])?["S"] as? String == orderID,
                      let sequence = body["SequenceNumber"] as? String else { continue }
                let created = (body["ApproximateCreationDateTime"] as? NSNumber).flatMap { Int(exactly: ($0.doubleValue * 1000).rounded()) }
                return FoundRecord(shard: shard, sequence: sequence, counter: Int(sequence.suffix(20)) ?? 0,
                                   eventID: record["eventID"] as? String ?? "", eventName: record["eventName"] as? String ?? "", createdMillis: created)
            }
        }
        return nil
    }

    private func checkpointed(past record: (shard: String, counter: Int), streamARN: String?) async -> Bool {
        guard let streamARN,
              let page = try? await backend.object(DynamoDBAction.scan, to: .table, ["TableName": backend.lab.leaseTable, "Limit": 1000]) else { return false }
        for lease in page["Items"] as? [[String: Any]] ?? [] {
            guard let key = (lease["leaseKey"] as? [String: Any])?["S"] as? String, key.hasSuffix("|\(streamARN)|\(record.shard)"),
                  let checkpoint = (lease["checkpoint"] as? [String: Any])?["S"] as? String, let counter = Int(checkpoint.suffix(20)) else { continue }
            if counter >= record.counter { return true }
        }
        return false
    }

    private func mail(carrying orderID: String) -> Mailboxes.Mail? {
        // Only boxes written to lately: the mail cannot be older than the order.
        Mailboxes.recent(in: backend.mailDirectory, limit: 200, modifiedSince: Date().addingTimeInterval(-70))
            .last { $0.body.contains(orderID) }
    }
}
