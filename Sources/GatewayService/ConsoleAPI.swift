import Foundation
import FunctionRuntime
import Hummingbird
import NimbusRuntime
import NimbusStack
import NotifierCore
import QueueCore
import SupervisorCore
import TableCore

// The console API's routes (docs/console.md, API): each one or a few `nimbus/1` calls, signed as
// the account root, in the services' own shapes.
extension Console {
    // MARK: Cluster

    func cluster() async throws(ConsoleError) -> Response {
        guard let sample = await sampler.current() else { throw .unavailable("no sample of the cluster could be taken: is the supervisor up?") }
        switch sample.cluster {
        case .success(let data): return ConsoleHeaders.json(.ok, data)
        case .failure(let error): throw error
        }
    }

    func scale(_ body: [String: Any]) async throws(ConsoleError) -> Response {
        let request = ScaleRequest(kind: try body.string("kind")!, count: try body.integer("count", in: 0...ServiceKind.maxInstances))
        let reply = try await backend.supervisor(NimbusAction.scale, request, as: ScaleRequest.self)
        return ConsoleHeaders.json(object: ["kind": reply.kind, "count": reply.count])
    }

    func kill(_ body: [String: Any]) async throws(ConsoleError) -> Response {
        let reply = try await backend.supervisor(NimbusAction.kill, KillRequest(name: try body.string("name")!), as: KillReply.self)
        return ConsoleHeaders.json(object: ["name": reply.name, "pid": ConsoleJSON.orNull(reply.pid.map { Int($0) })])
    }

    func restart(_ body: [String: Any]) async throws(ConsoleError) -> Response {
        let reply = try await backend.supervisor(NimbusAction.restart, RestartRequest(name: try body.string("name")!), as: RestartReply.self)
        return ConsoleHeaders.json(object: ["restarting": reply.restarting])
    }

    /// The latest flow sample with the history (the last 300, oldest first) spliced in as stored.
    func flow() async throws(ConsoleError) -> Response {
        guard let sample = await sampler.current() else { throw .unavailable("no flow sample could be taken") }
        var out = Data(sample.flow.dropLast())
        out.append(contentsOf: Array(",\"history\":[".utf8))
        for (index, entry) in sampler.history.enumerated() {
            if index > 0 { out.append(0x2C) }
            out.append(entry)
        }
        out.append(contentsOf: Array("]}".utf8))
        return ConsoleHeaders.json(.ok, out)
    }

    // MARK: Items

    func items(_ query: Parameters) async throws(ConsoleError) -> Response {
        var limit = 25
        if let text = query["limit"] {
            guard let n = Int(text), (1...1000).contains(n) else { throw .validation("limit must be 1..1000, not \(text)") }
            limit = n
        }
        var request: [String: Any] = ["TableName": backend.lab.table, "Limit": limit]
        if let next = query["next"], !next.isEmpty {
            guard let key = Self.decodeKey(String(next)) else { throw .validation("next is not a key this console gave out") }
            request["ExclusiveStartKey"] = key
        }
        let page = try await backend.object(DynamoDBAction.scan, to: .table, request, attempts: 2)
        var items = page["Items"] as? [[String: Any]] ?? []
        if let filter = query["orderID"].map(String.init), !filter.isEmpty {
            items = items.filter { (($0["orderID"] as? [String: Any])?["S"] as? String)?.contains(filter) == true }
        }
        let next = (page["LastEvaluatedKey"] as? [String: Any]).map { Self.encodeKey($0) }
        return ConsoleHeaders.json(object: ["items": items, "next": ConsoleJSON.orNull(next), "scanned": page["ScannedCount"] ?? items.count])
    }

    /// LastEvaluatedKey as an opaque token: base64url of its JSON.
    static func encodeKey(_ key: [String: Any]) -> String {
        ConsoleJSON.data(key).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decodeKey(_ token: String) -> [String: Any]? {
        guard token.count <= 8192 else { return nil }
        var text = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        guard let data = Data(base64Encoded: text), let key = ConsoleJSON.object(data), !key.isEmpty,
              key.values.allSatisfy({ $0 is [String: Any] }) else { return nil }
        return key
    }

    // MARK: Queue

    private var queueURL: String {
        SQSNames.url(region: backend.cluster.region, account: backend.cluster.account, name: backend.cluster.gateway.queueName)
    }

    private func describeQueue(_ url: String) async throws(ConsoleError) -> (object: [String: Any], attributes: [String: String]) {
        let answer = try await backend.typed(SQSAction.getQueueAttributes, to: .queue, GetQueueAttributesRequest(QueueUrl: url, AttributeNames: ["All"]),
                                             as: AttributesResponse.self, attempts: 2)
        let a = answer.Attributes
        let name = String(url.split(separator: "/").last ?? "")
        let object: [String: Any] = [
            "name": name, "url": url, "visible": ConsoleJSON.orNull(a["ApproximateNumberOfMessages"].flatMap(Int.init)),
            "inFlight": ConsoleJSON.orNull(a["ApproximateNumberOfMessagesNotVisible"].flatMap(Int.init)),
            "delayed": ConsoleJSON.orNull(a["ApproximateNumberOfMessagesDelayed"].flatMap(Int.init)), "attributes": a,
        ]
        return (object, a)
    }

    func queue() async throws(ConsoleError) -> Response {
        let main = try await describeQueue(queueURL)
        var dlq: Any = NSNull()
        if let url = ConsoleQueues.deadLetterURL(redrivePolicy: main.attributes["RedrivePolicy"], cluster: backend.cluster) {
            dlq = try await describeQueue(url).object
        }
        return ConsoleHeaders.json(object: ["queue": main.object, "dlq": dlq])
    }

    func sendMessage(_ body: [String: Any]) async throws(ConsoleError) -> Response {
        let text = try body.string("body")!
        let sent = try await backend.typed(SQSAction.sendMessage, to: .queue, SendMessageRequest(QueueUrl: queueURL, MessageBody: text),
                                           as: SendMessageResponse.self)
        return ConsoleHeaders.json(object: ["MessageId": sent.MessageId, "MD5OfMessageBody": sent.MD5OfMessageBody])
    }

    /// As the SQS console's poll: received (so hidden for the visibility timeout, and counted
    /// towards maxReceiveCount), not deleted.
    func poll(_ body: [String: Any]) async throws(ConsoleError) -> Response {
        let max = try body.integer("max", in: 1...10, default: 10)
        let wait = try body.integer("waitSeconds", in: 0...20, default: 0)
        var url = queueURL
        switch try body.string("queue", required: false) {
        case nil, "queue", "main": break
        case "dlq":
            let attributes = try await describeQueue(queueURL).attributes
            guard let dlq = ConsoleQueues.deadLetterURL(redrivePolicy: attributes["RedrivePolicy"], cluster: backend.cluster) else {
                throw .validation("\(backend.cluster.gateway.queueName) has no dead-letter queue (no RedrivePolicy)")
            }
            url = dlq
        case let other?: throw .validation("queue must be \"dlq\" or left out, not \"\(other)\"")
        }
        let request = ReceiveMessageRequest(QueueUrl: url, MaxNumberOfMessages: max, WaitTimeSeconds: wait, AttributeNames: ["All"])
        let answer = try await backend.typed(SQSAction.receiveMessage, to: .queue, request, as: ReceiveMessageResponse.self, timeout: .seconds(wait + 5))
        let messages: [[String: Any]] = answer.Messages.map { m in
            let attributes = m.Attributes ?? [:]
            return [
                "MessageId": m.MessageId, "Body": m.Body,
                "ReceiveCount": ConsoleJSON.orNull(attributes["ApproximateReceiveCount"].flatMap { Int($0) }),
                "SentTimestamp": ConsoleJSON.orNull(attributes["SentTimestamp"].flatMap { Int($0) }),
            ]
        }
        return ConsoleHeaders.json(object: ["messages": messages])
    }

    // MARK: Functions

    /// Each AWS::Lambda::Function of the stack, its trigger (its event source mapping) and the
    /// statistics its workers' health reports give, summed over the instances that answered.
    func functions() async throws(ConsoleError) -> Response {
        guard let template = backend.lab.template else { return ConsoleHeaders.json(object: ["functions": [Any]()]) }
        let sample = await sampler.current()
        let reports = sample?.health ?? [:]
        let cluster = backend.cluster
        // A trigger on a table's stream names its StreamArn: the table node knows it.
        var streams: [String: String] = [:]
        for table in template.resources(ofType: "AWS::DynamoDB::Table") {
            guard case .map(let spec)? = table.properties["StreamSpecification"], !spec.isEmpty,
                  case .string(let name)? = table.properties["TableName"],
                  let answer = try? await backend.object(DynamoDBAction.listStreams, to: .table, ["TableName": name], attempts: 2),
                  let arn = (answer["Streams"] as? [[String: Any]])?.last?["StreamArn"] as? String else { continue }
            streams[table.logicalID] = arn
        }
        let resolver = StackResolver(template: template, region: cluster.region, account: cluster.account,
                                     getAtt: { id, attribute in attribute == "StreamArn" ? streams[id] : nil })
        var list: [[String: Any]] = []
        for resource in template.resources(ofType: "AWS::Lambda::Function") {
            guard let declared = resource.properties["FunctionName"], let name = try? resolver.string(declared) else { continue }
            func plain(_ key: String) -> Any {
                guard let value = resource.properties[key], let text = try? resolver.string(value) else { return NSNull() }
                return text
            }
            var trigger: Any = NSNull()
            var fromTrigger: ServiceKind?
            if let definition = try? FunctionDefinition.load(name, template: template, resolver: resolver), let mapping = definition.mappings.first {
                trigger = ["source": mapping.eventSourceARN, "enabled": mapping.enabled, "batchSize": mapping.batchSize,
                           "state": mapping.enabled ? "Enabled" : "Disabled"] as [String: Any]
                fromTrigger = mapping.isStream ? .streamWorker : .ingestWorker
            }
            let hosts = reports.filter { $0.value.details["function"] == name }
            let worker = hosts.keys.compactMap { ServiceKind.parse(instanceName: $0)?.kind }.first ?? fromTrigger
            var statistics: [String: Any] = ["instances": hosts.count]
            for key in ["invocations", "errors", "records", "failedRecords"] {
                statistics[key] = hosts.values.reduce(0) { $0 + (Int($1.details[key] ?? "") ?? 0) }
            }
            list.append(["name": name, "worker": ConsoleJSON.orNull(worker?.rawValue), "runtime": plain("Runtime"), "handler": plain("Handler"),
                         "trigger": trigger, "statistics": statistics])
        }
        return ConsoleHeaders.json(object: ["functions": list])
    }

    func templates() -> Response {
        var out: [String: Any] = [:]
        for name in TestEvents.names {
            if let text = TestEvents.named(name, region: backend.cluster.region, account: backend.cluster.account),
               let event = ConsoleJSON.object(Data(text.utf8)) {
                out[name] = event
            }
        }
        return ConsoleHeaders.json(object: out)
    }

    /// The worker hosting function `name` (or named by its kind or instance name): an instance
    /// that reported the function in its health, else instance 1 of the kind its trigger feeds.
    private func host(of name: String) async throws(ConsoleError) -> (kind: ServiceKind, index: Int) {
        if let kind = ServiceKind(rawValue: name), kind.isWorker { return (kind, 1) }
        if let parsed = ServiceKind.parse(instanceName: name), parsed.kind.isWorker { return parsed }
        let reports = await sampler.current()?.health ?? [:]
        if let host = reports.filter({ $0.value.details["function"] == name }).keys.sorted().first, let parsed = ServiceKind.parse(instanceName: host) {
            return parsed
        }
        if let template = backend.lab.template {
            let resolver = StackResolver(template: template, region: backend.cluster.region, account: backend.cluster.account)
            for resource in template.resources(ofType: "AWS::Lambda::EventSourceMapping") {
                guard let target = resource.properties["FunctionName"], (try? resolver.string(target)) == name else { continue }
                let isStream: Bool
                if case .getAtt(_, let attribute)? = resource.properties["EventSourceArn"] { isStream = attribute == "StreamArn" } else {
                    isStream = ((try? resource.properties["EventSourceArn"].map { try resolver.string($0) }) ?? nil)?.contains(":dynamodb:") ?? false
                }
                return (isStream ? .streamWorker : .ingestWorker, 1)
            }
        }
        throw .notFound("Function not found: \(name)")
    }

    /// lambda:Invoke on the worker, as the Lambda console's Test button: the result, the payload and
    /// the lines the worker's log gained meanwhile.
    func invoke(_ name: String, _ body: [String: Any]) async throws(ConsoleError) -> Response {
        guard let event = body["event"] as? [String: Any] else { throw .validation("event must be a JSON object (the test event)") }
        let (kind, index) = try await host(of: name)
        let instance = kind.instanceName(index)
        let log = backend.logFile(instance)
        let before = Self.fileSize(log)
        let answer = try ConsoleJSON.answer(try await backend.call(LambdaAction.invoke, to: kind, instance: index, body: ConsoleJSON.data(event),
                                                                   timeout: .seconds(10)), from: instance)
        let lines = Self.lines(of: log, from: before)
        return ConsoleHeaders.json(object: [
            "result": answer["FunctionError"] == nil ? "succeeded" : "failed", "payload": answer["Payload"] ?? NSNull(),
            "log": lines, "worker": instance,
        ])
    }

    static func fileSize(_ url: URL) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: url.path))?[.size] as? NSNumber)?.intValue ?? 0
    }

    /// The lines a log gained since it was `from` bytes long (from its start when it was rotated
    /// meanwhile), at most the last 256 KiB of them.
    static func lines(of url: URL, from offset: Int) -> [String] {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { return [] }
        defer { try? handle.close() }
        let size = fileSize(url)
        var start = size < offset ? 0 : offset
        start = max(start, size - 256 * 1024)
        guard size > start else { return [] }
        do {
            try handle.seek(toOffset: UInt64(start))
            let data = try handle.read(upToCount: size - start) ?? Data()
            return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
        } catch {
            return []
        }
    }

    // MARK: Topic and inbox

    private var topicARN: String { "arn:aws:sns:\(backend.cluster.region):\(backend.cluster.account):\(backend.lab.topicName)" }

    func topic() async throws(ConsoleError) -> Response {
        var subscriptions: [[String: Any]] = []
        var token: String?
        for _ in 0..<20 {
            var request: [String: Any] = ["TopicArn": topicARN]
            if let token { request["NextToken"] = token }
            let page = try await backend.object(SNSAction.listSubscriptionsByTopic, to: .notifier, request, attempts: 2)
            for s in page["Subscriptions"] as? [[String: Any]] ?? [] {
                let arn = s["SubscriptionArn"] as? String ?? ""
                subscriptions.append(["SubscriptionArn": arn, "Protocol": s["Protocol"] ?? "", "Endpoint": s["Endpoint"] ?? "",
                                      "status": arn == "PendingConfirmation" ? "PendingConfirmation" : "Confirmed"])
            }
            token = page["NextToken"] as? String
            if token == nil { break }
        }
        return ConsoleHeaders.json(object: ["topicArn": topicARN, "subscriptions": subscriptions])
    }

    func subscribe(_ body: [String: Any]) async throws(ConsoleError) -> Response {
        let request: [String: Any] = ["TopicArn": topicARN, "Protocol": try body.string("protocol")!, "Endpoint": try body.string("endpoint")!,
                                      "ReturnSubscriptionArn": true]
        let answer = try await backend.object(SNSAction.subscribe, to: .notifier, request)
        return ConsoleHeaders.json(object: ["SubscriptionArn": answer["SubscriptionArn"] ?? NSNull()])
    }

    func publish(_ body: [String: Any]) async throws(ConsoleError) -> Response {
        var request: [String: Any] = ["TopicArn": topicARN, "Message": try body.string("message")!]
        if let subject = try body.string("subject", required: false), !subject.isEmpty { request["Subject"] = subject }
        let answer = try await backend.object(SNSAction.publish, to: .notifier, request)
        return ConsoleHeaders.json(object: ["MessageId": answer["MessageId"] ?? NSNull()])
    }

    /// The local mail sink's last 100 mails, newest first, with the links in each.
    func inbox() -> Response {
        let mails = Mailboxes.recent(in: backend.mailDirectory, limit: 100)
        return ConsoleHeaders.json(object: ["mails": mails.map(\.jsonObject)])
    }

    // MARK: The lab's order, traced

    func labOrder(_ body: [String: Any]) async throws(ConsoleError) -> Response {
        let trace = try await traces.start(body: body["body"], send: send)
        return ConsoleHeaders.json(object: ["traceId": trace.id, "messageId": trace.messageID, "postedAt": trace.postedAt])
    }

    func labTrace(_ query: Parameters) throws(ConsoleError) -> Response {
        guard let id = query["traceId"].map(String.init), !id.isEmpty else { throw .validation("traceId is required") }
        guard let trace = traces.trace(id) else { throw .notFound("no trace \(id) (the last \(LabTraces.keep) are kept)") }
        return ConsoleHeaders.json(object: trace.jsonObject)
    }
}
