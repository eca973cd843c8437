import Foundation
import NimbusConfig
import NimbusProtocol
import NimbusRuntime
import SupervisorCore

/// What `verify` reads from a running cluster, each through `ask` with the root credentials: how
/// much work is still under way, and the orders table's rows and POC-Topic's subscribers.
struct PipelineProbes {
    let located: LocatedConfig
    let control: Control
    var table = "orders"
    var topic = "POC-Topic"

    var queueName: String { located.config.gateway.queueName }

    private func object(_ action: String, to kind: ServiceKind, _ request: [String: Any]) async throws -> [String: Any] {
        let answer = try await ask(located, action, to: kind, try JSONSerialization.data(withJSONObject: request))
        return try JSONSerialization.jsonObject(with: answer) as? [String: Any] ?? [:]
    }

    // MARK: Work under way

    /// Why the pipeline may not have drained yet; empty when nothing is left anywhere we can see.
    func unfinishedWork() async -> [String] {
        var reasons: [String] = []
        do {
            let backlog = try await queueBacklog()
            if backlog.visible + backlog.inFlight + backlog.delayed > 0 {
                reasons.append("\(queueName) holds \(backlog.visible) visible, \(backlog.inFlight) in flight, \(backlog.delayed) delayed")
            }
        } catch { reasons.append("\(queueName): \(error)") }
        // Deliveries waiting out a retry (say, the mail sink was down) are mails still to come.
        do {
            let details = try await object(NimbusAction.health, to: .notifier, [:])["details"] as? [String: String] ?? [:]
            let outbox = (Int(details["outboxDepth"] ?? "") ?? 0) + (Int(details["sending"] ?? "") ?? 0)
            if outbox > 0 { reasons.append("the notifier has \(outbox) deliveries to make") }
        } catch { reasons.append("notifier: \(error)") }
        // A restarted stream worker waits for its dead predecessor's shard lease to expire (10 s),
        // during which nothing changes: only its checkpoint shows the orders still to notify.
        do {
            reasons += try await streamBacklog().map { "the stream worker has yet to read \($0)" }
        } catch { reasons.append("\(table)'s stream: \(error)") }
        // A process that is down may owe work none of the above shows (a notifier that took a
        // delivery and died before recording it), and it is no healed cluster yet.
        if control.located.config.isMultiHost {
            // Every host's supervisor: one that does not answer may be hiding processes that are down.
            let cluster = await control.cluster()
            for host in cluster.unanswered { reasons.append("host \(host.name): \(host.error ?? "no answer")") }
            for p in cluster.processes where p.state != "running" { reasons.append("\(p.name) is \(p.state)") }
        } else if let status = await control.status() {
            for p in status.processes where p.state != "running" { reasons.append("\(p.name) is \(p.state)") }
        } else {
            reasons.append("the supervisor does not answer on \(control.endpoint)")
        }
        return reasons
    }

    /// POC-Queue's ApproximateNumberOfMessages, ...NotVisible and ...Delayed.
    func queueBacklog() async throws -> (visible: Int, inFlight: Int, delayed: Int) {
        guard let url = try await object("sqs:GetQueueUrl", to: .queue, ["QueueName": queueName])["QueueUrl"] as? String else {
            throw CLIError("the queue node gave no URL for \(queueName)")
        }
        let names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]
        let answer = try await object("sqs:GetQueueAttributes", to: .queue, ["QueueUrl": url, "AttributeNames": names])
        let attributes = answer["Attributes"] as? [String: String] ?? [:]
        let counts = names.map { Int(attributes[$0] ?? "") ?? 0 }
        return (counts[0], counts[1], counts[2])
    }

    /// The table's item count, exact here (DescribeTable's ItemCount), a cheap way to see rows still arriving.
    func rowCount() async throws -> Int {
        let description = try await object("dynamodb:DescribeTable", to: .table, ["TableName": table])["Table"] as? [String: Any]
        return description?["ItemCount"] as? Int ?? 0
    }

    /// The lease table stream workers keep their checkpoints in (FunctionNodeService's leaseTable).
    static let leaseTable = "nimbus-stream-leases"

    /// The shards of the table's stream holding a record after the stream workers' checkpoint.
    func streamBacklog() async throws -> [String] {
        let description = try await object("dynamodb:DescribeTable", to: .table, ["TableName": table])["Table"] as? [String: Any]
        guard let stream = description?["LatestStreamArn"] as? String else { return [] }
        let shards = (try await object("dynamodb:DescribeStream", to: .table, ["StreamArn": stream])["StreamDescription"] as? [String: Any])?["Shards"]
        var checkpoints: [String: String] = [:]
        do {
            for lease in try await object("dynamodb:Scan", to: .table, ["TableName": Self.leaseTable])["Items"] as? [[String: Any]] ?? [] {
                // Keys are "<function>|<stream ARN>|<shard>".
                guard let key = (lease["leaseKey"] as? [String: Any])?["S"] as? String, key.contains("|\(stream)|"),
                      let checkpoint = (lease["checkpoint"] as? [String: Any])?["S"] as? String else { continue }
                checkpoints[String(key.split(separator: "|").last ?? "")] = checkpoint
            }
        } catch let error as WireError where error.code == "ResourceNotFoundException" {
            // No stream worker has ever run: every record is still to read.
        }
        var behind: [String] = []
        for case let shard? in (shards as? [[String: Any]] ?? []).map({ $0["ShardId"] as? String }) {
            var request = ["StreamArn": stream, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"]
            // "AT:<n>" is a checkpoint before a record that failed, to be read again.
            if let checkpoint = checkpoints[shard] {
                let at = checkpoint.hasPrefix("AT:")
                request["ShardIteratorType"] = at ? "AT_SEQUENCE_NUMBER" : "AFTER_SEQUENCE_NUMBER"
                request["SequenceNumber"] = at ? String(checkpoint.dropFirst(3)) : checkpoint
            }
            guard let iterator = try await object("dynamodb:GetShardIterator", to: .table, request)["ShardIterator"] as? String else { continue }
            let page = try await object("dynamodb:GetRecords", to: .table, ["ShardIterator": iterator, "Limit": 1])
            if !(page["Records"] as? [Any] ?? []).isEmpty { behind.append(shard) }
        }
        return behind
    }

    // MARK: What was delivered

    /// Every row's `loadID` (nil for a row whose order has none), by a full Scan, page by page.
    func rowLoadIDs() async throws -> [String?] {
        var loadIDs: [String?] = []
        var start: Any?
        repeat {
            var request: [String: Any] = ["TableName": table, "Limit": 500]
            if let start { request["ExclusiveStartKey"] = start }
            let page = try await object("dynamodb:Scan", to: .table, request)
            for item in page["Items"] as? [[String: Any]] ?? [] {
                loadIDs.append(((item["order"] as? [String: Any])?["S"] as? String).flatMap(Self.loadID(inOrder:)))
            }
            start = page["LastEvaluatedKey"]
        } while start != nil
        return loadIDs
    }

    /// The addresses of the topic's confirmed email subscriptions (a pending one is listed with
    /// "PendingConfirmation" in place of its ARN).
    func confirmedEmailSubscribers() async throws -> [String] {
        let arn = "arn:aws:sns:\(located.config.region):\(located.config.account):\(topic)"
        var addresses: [String] = []
        var next: String?
        repeat {
            var request: [String: Any] = ["TopicArn": arn]
            if let next { request["NextToken"] = next }
            let page = try await object("sns:ListSubscriptionsByTopic", to: .notifier, request)
            for s in page["Subscriptions"] as? [[String: Any]] ?? []
            where s["Protocol"] as? String == "email" && (s["SubscriptionArn"] as? String ?? "").hasPrefix("arn:") {
                if let endpoint = s["Endpoint"] as? String { addresses.append(endpoint) }
            }
            next = page["NextToken"] as? String
        } while next != nil
        return addresses.sorted()
    }

    /// The `loadID` of an order document, when it is a JSON object with one.
    static func loadID(inOrder body: String) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else { return nil }
        return object["loadID"] as? String
    }

    /// The `loadID` of the order a notification carries: its first line is the row's new image as
    /// DynamoDB JSON, `{"order": {"S": "<the order>"}, "orderID": {"S": "..."}}`.
    static func loadID(inNotification firstLine: String) -> String? {
        guard let image = try? JSONSerialization.jsonObject(with: Data(firstLine.utf8)) as? [String: Any],
              let order = (image["order"] as? [String: Any])?["S"] as? String else { return nil }
        return loadID(inOrder: order)
    }
}
