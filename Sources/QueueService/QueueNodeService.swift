import Foundation
import Logging
import NimbusRuntime
import NimbusStack
import QueueCore
import ServiceLifecycle
import Synchronization

final class ARNsByURL: Sendable {
    private let cache = Mutex<[String: String]>([:])
    func withLock<R>(_ body: (inout [String: String]) -> R) -> R { cache.withLock { body(&$0) } }
}

/// The queue broker as a Nimbus node: SQS's actions in SQS's JSON shapes, over the runtime.
public struct QueueNodeService: NodeService {
    let engine: QueueEngine
    let configuration: NodeConfiguration
    /// The queues' access policies by queue name.
    let policies = ResourcePolicies()
    /// Every request names its queue by URL; the ARN the authorizer needs is built once per URL.
    let arnsByURL = ARNsByURL()

    /// Opens (or creates) the broker's database under the data directory and loads it.
    public init(configuration: NodeConfiguration, logger: Logger = Logger(label: "queue")) throws {
        self.configuration = configuration
        let store = try QueueStore(path: configuration.stateFile("queue"))
        let now = QueueEngine.now()
        let (queues, messages, sends) = try store.load(now: now)
        var broker = QueueBroker(region: configuration.cluster.region, account: configuration.cluster.account)
        broker.restore(queues: queues, messages: messages, idempotentSends: sends, now: now)
        policies.replace(broker.policiesByQueueName)
        engine = QueueEngine(broker: broker, store: store, logger: logger)
    }

    public var actions: Set<String> { SQSAction.all }

    /// Refused while the disk or memory alarm is raised; receives, reads and deletes go on.
    public var growingActions: Set<String> { [SQSAction.sendMessage, SQSAction.sendMessageBatch] }

    /// The queue a request names: its QueueUrl, or its QueueName (CreateQueue, GetQueueUrl);
    /// ListQueues is on no one queue.
    public func resourceARN(for request: InboundRequest, runtime: NodeRuntime) -> String? {
        let cluster = configuration.cluster
        if let url = JSONFields.topLevelString("QueueUrl", in: request.body) {
            if let arn = arnsByURL.withLock({ $0[url] }) { return arn }
            // https://sqs.REGION.amazonaws.com/ACCOUNT/NAME
            guard let slash = url.lastIndex(of: "/"), let accountSlash = url[..<slash].lastIndex(of: "/") else { return nil }
            let arn = SQSNames.arn(region: cluster.region, account: String(url[url.index(after: accountSlash)..<slash]),
                                   name: String(url[url.index(after: slash)...]))
            arnsByURL.withLock { cache in
                if cache.count >= 1024 { cache.removeAll() }
                cache[url] = arn
            }
            return arn
        }
        if let name = JSONFields.topLevelString("QueueName", in: request.body) {
            return SQSNames.arn(region: cluster.region, account: cluster.account, name: name)
        }
        return nil
    }

    public func resourcePolicy(for resourceARN: String) async -> ResourcePolicy? {
        guard resourceARN.hasPrefix("arn:aws:sqs:"), let colon = resourceARN.lastIndex(of: ":") else { return nil }
        return policies.policy(String(resourceARN[resourceARN.index(after: colon)...]))
    }

    /// After anything that may create, change or delete a queue policy.
    private func refreshPolicies() async {
        policies.replace(await engine.read { broker, _ in broker.policiesByQueueName })
    }

    public func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data {
        let sender = request.header.sender?.name ?? configuration.cluster.account
        let encoder = JSONEncoder()
        switch request.header.action {
        case SQSAction.createQueue:
            let r = try request.decode(CreateQueueRequest.self)
            let url = try await engine.perform { broker, now, changes in
                try broker.createQueue(r.QueueName, attributes: r.Attributes ?? [:], tags: r.tags ?? [:], now: now, changes: &changes)
            }
            await refreshPolicies()
            return try encoder.encode(QueueURLResponse(QueueUrl: url))
        case SQSAction.getQueueUrl:
            let r = try request.decode(GetQueueUrlRequest.self)
            return try encoder.encode(QueueURLResponse(QueueUrl: try await engine.read { broker, _ in try broker.getQueueUrl(r.QueueName) }))
        case SQSAction.listQueues:
            let r = try request.decode(ListQueuesRequest.self)
            return try encoder.encode(try await engine.read { broker, _ in
                try broker.listQueues(prefix: r.QueueNamePrefix, maxResults: r.MaxResults, nextToken: r.NextToken)
            })
        case SQSAction.getQueueAttributes:
            let r = try request.decode(GetQueueAttributesRequest.self)
            let attributes = try await engine.read { broker, now in
                try broker.getQueueAttributes(r.QueueUrl, names: r.AttributeNames ?? ["All"], now: now)
            }
            return try encoder.encode(AttributesResponse(Attributes: attributes))
        case SQSAction.setQueueAttributes:
            let r = try request.decode(SetQueueAttributesRequest.self)
            try await engine.perform { broker, now, changes in try broker.setQueueAttributes(r.QueueUrl, r.Attributes, now: now, changes: &changes) }
            await refreshPolicies()
            return Data("{}".utf8)
        case SQSAction.sendMessage:
            let r = try SQSFastJSON.decodeSendMessage(request.body) ?? request.decode(SendMessageRequest.self)
            let sent = try await engine.perform(fromState: r.NimbusIdempotencyKey != nil) { broker, now, changes in
                try broker.sendMessage(r.QueueUrl, .init(body: r.MessageBody, delaySeconds: r.DelaySeconds, attributes: r.MessageAttributes,
                                                         idempotencyKey: r.NimbusIdempotencyKey, deduplicationId: r.MessageDeduplicationId),
                                       senderId: sender, now: now, changes: &changes)
            }
            return SQSFastJSON.encode(sent)
        case SQSAction.sendMessageBatch:
            let r = try SQSFastJSON.decodeSendMessageBatch(request.body) ?? request.decode(SendMessageBatchRequest.self)
            let sent = try await engine.perform(fromState: r.Entries.contains { $0.NimbusIdempotencyKey != nil }) { broker, now, changes in
                try broker.sendMessageBatch(r.QueueUrl, r.Entries, senderId: sender, now: now, changes: &changes)
            }
            return try SQSFastJSON.encode(sent) ?? encoder.encode(sent)
        case SQSAction.receiveMessage:
            let r = try request.decode(ReceiveMessageRequest.self)
            var options = QueueBroker.ReceiveOptions()
            options.maxMessages = r.MaxNumberOfMessages ?? 1
            options.visibilityTimeout = r.VisibilityTimeout
            options.attributeNames = (r.AttributeNames ?? []) + (r.MessageSystemAttributeNames ?? [])
            options.messageAttributeNames = r.MessageAttributeNames ?? []
            let receive = options
            let (name, wait) = try await engine.read { broker, _ in try broker.validateReceive(r.QueueUrl, receive, waitSeconds: r.WaitTimeSeconds) }
            let messages = try await engine.receive(name, receive, wait: wait)
            let response = ReceiveMessageResponse(Messages: messages)
            return try SQSFastJSON.encode(response) ?? encoder.encode(response)
        case SQSAction.deleteMessage:
            let r = try request.decode(DeleteMessageRequest.self)
            try await engine.perform { broker, _, changes in try broker.deleteMessage(r.QueueUrl, receiptHandle: r.ReceiptHandle, changes: &changes) }
            return Data("{}".utf8)
        case SQSAction.deleteMessageBatch:
            let r = try SQSFastJSON.decodeDeleteMessageBatch(request.body) ?? request.decode(HandleBatchRequest.self)
            let deleted = try await engine.perform { broker, _, changes in
                try broker.deleteMessageBatch(r.QueueUrl, r.Entries, changes: &changes)
            }
            return try SQSFastJSON.encode(deleted) ?? encoder.encode(deleted)
        case SQSAction.changeMessageVisibility:
            let r = try request.decode(ChangeMessageVisibilityRequest.self)
            try await engine.perform { broker, now, changes in
                try broker.changeMessageVisibility(r.QueueUrl, receiptHandle: r.ReceiptHandle, timeout: r.VisibilityTimeout, now: now, changes: &changes)
            }
            return Data("{}".utf8)
        case SQSAction.changeMessageVisibilityBatch:
            let r = try request.decode(HandleBatchRequest.self)
            return try encoder.encode(try await engine.perform { broker, now, changes in
                try broker.changeMessageVisibilityBatch(r.QueueUrl, r.Entries, now: now, changes: &changes)
            })
        case SQSAction.purgeQueue:
            let r = try request.decode(QueueURLRequest.self)
            try await engine.perform { broker, now, changes in try broker.purgeQueue(r.QueueUrl, now: now, changes: &changes) }
            return Data("{}".utf8)
        case SQSAction.deleteQueue:
            let r = try request.decode(QueueURLRequest.self)
            try await engine.perform { broker, _, changes in try broker.deleteQueue(r.QueueUrl, changes: &changes) }
            await refreshPolicies()
            return Data("{}".utf8)
        default:
            throw WireError(.invalidAction, "\(request.header.action ?? "") is not an SQS action")
        }
    }

    public func run(runtime: NodeRuntime) async throws {
        do { try await applyStack() } catch { runtime.logger.error("stack: \(error)") }
        await refreshPolicies()
        // Retention: drop expired messages every minute until shutdown.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: .seconds(60))
                try await engine.perform { broker, now, changes in broker.expire(now: now, changes: &changes) }
            }
        }
        await engine.wakeAll()
    }

    /// Creates the stack's AWS::SQS::Queue resources through CreateQueue (idempotent: an existing
    /// queue with the same attributes is left as it is) and sets each AWS::SQS::QueuePolicy through
    /// SetQueueAttributes(Policy).
    func applyStack() async throws {
        guard let file = configuration.stackFile, FileManager.default.fileExists(atPath: file.path) else { return }
        let template = try StackTemplate.load(path: file.path)
        let cluster = configuration.cluster
        let resolver = StackResolver(template: template, region: cluster.region, account: cluster.account)
        for resource in template.resources {
            switch resource.type {
            case "AWS::SQS::Queue":
                var attributes: [String: String] = [:]
                var name = resource.logicalID
                for (key, value) in resource.properties {
                    switch key {
                    case "QueueName": name = try resolver.string(value)
                    case "RedrivePolicy": attributes[key] = try resolver.json(value)
                    case "Tags": continue
                    default: attributes[key] = try resolver.string(value)
                    }
                }
                let (queueName, queueAttributes) = (name, attributes)
                _ = try await engine.perform { broker, now, changes in
                    try broker.createQueue(queueName, attributes: queueAttributes, tags: [:], now: now, changes: &changes)
                }
            case "AWS::SQS::QueuePolicy":
                guard case .list(let queues)? = resource.properties["Queues"], let document = resource.properties["PolicyDocument"] else {
                    throw StackError("\(resource.logicalID) needs Queues and a PolicyDocument")
                }
                let policy = try resolver.jsonText(document)
                for queue in queues {
                    let url = try resolver.string(queue)
                    let name = String(url.split(separator: "/").last ?? "")
                    // Set once: a policy changed later through SetQueueAttributes survives restarts.
                    try await engine.perform { broker, now, changes in
                        if broker.policy(ofQueueNamed: name) == nil {
                            try broker.setQueueAttributes(url, ["Policy": policy], now: now, changes: &changes)
                        }
                    }
                }
            default:
                continue
            }
        }
    }
}
