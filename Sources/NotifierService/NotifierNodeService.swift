import Foundation
import Logging
import NimbusRuntime
import NimbusStack
import NotifierCore
import ServiceLifecycle
import Synchronization

/// The notifier as a Nimbus node: SNS's actions in SNS's JSON shapes, and a delivery loop that
/// carries the outbox to the endpoints.
public struct NotifierNodeService: NodeService {
    let engine: NotifierEngine
    let store: NotifierStore
    let senders: DeliverySenders
    /// The topics' access policies by topic ARN.
    let policies = ResourcePolicies()
    let configuration: NodeConfiguration
    /// Messages accepted by Publish and PublishBatch since the process started (health: `published`).
    let published = PublishedCount()

    /// Opens (or creates) the notifier's database under the data directory and loads it: the
    /// outbox left by a previous run (even one ended by SIGKILL) is delivered by this one.
    public init(configuration: NodeConfiguration, logger: Logger = Logger(label: "notifier")) throws {
        self.configuration = configuration
        let cluster = configuration.cluster
        let settings = cluster.notifier
        store = try NotifierStore(path: configuration.stateFile("notifier"))
        let loaded = try store.load()
        var topics = SNSTopics(region: cluster.region, account: cluster.account, publicBaseURL: settings.publicBaseURL)
        topics.restore(topics: loaded.topics, subscriptions: loaded.subscriptions, outbox: loaded.outbox, dedupe: loaded.dedupe,
                       delivered: loaded.delivered, failed: loaded.failed)
        policies.replace(topics.policiesByTopicArn)
        engine = NotifierEngine(topics: topics, store: store, logger: logger)
        let heloName = settings.fromAddress.split(separator: "@").last.map(String.init) ?? "nimbus.local"
        // A few connections in parallel: one SMTP conversation is a chain of round trips.
        senders = DeliverySenders(
            smtp: (0..<Self.smtpConnections).map { _ in
                SMTPClient(settings: .init(host: settings.smtpHost, port: settings.smtpPort, username: settings.smtpUsername,
                                           password: settings.smtpPassword, heloName: heloName, security: SMTPClient.Security(settings.smtpTLS),
                                           caFile: settings.smtpCAFile))
            },
            fromAddress: settings.fromAddress)
    }

    public var actions: Set<String> { SNSAction.all }

    /// Refused while the disk or memory alarm is raised; receives, reads and deletes go on.
    public var growingActions: Set<String> { [SNSAction.publish, SNSAction.publishBatch] }

    /// The topic a request acts on: TopicArn, or the topic of a SubscriptionArn (TOPIC_ARN:ID).
    public func resourceARN(for request: InboundRequest, runtime: NodeRuntime) -> String? {
        if let topic = JSONFields.topLevelString("TopicArn", in: request.body) { return topic }
        if let subscription = JSONFields.topLevelString("SubscriptionArn", in: request.body),
           let cut = subscription.lastIndex(of: ":") { return String(subscription[..<cut]) }
        return nil
    }

    /// A topic's access policy takes part in authorization as its resource policy, as in AWS
    /// (an Allow for another principal grants; a Deny wins over any identity policy).
    public func resourcePolicy(for resourceARN: String) async -> ResourcePolicy? {
        resourceARN.hasPrefix("arn:aws:sns:") ? policies.policy(resourceARN) : nil
    }

    /// After anything that may create, change or delete a topic policy.
    private func refreshPolicies() async {
        policies.replace(await engine.read { sns in sns.policiesByTopicArn })
    }

    public func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data {
        let encoder = JSONEncoder()
        switch request.header.action {
        case SNSAction.createTopic:
            let r = try request.decode(CreateTopicRequest.self)
            let arn = try await engine.perform { sns, now, changes in
                try sns.createTopic(name: r.Name, attributes: r.Attributes ?? [:], now: now, changes: &changes)
            }
            if r.Attributes?["Policy"] != nil { await refreshPolicies() }
            return try encoder.encode(TopicArnResponse(TopicArn: arn))
        case SNSAction.deleteTopic:
            let r = try request.decode(TopicArnRequest.self)
            try await engine.perform { sns, _, changes in try sns.deleteTopic(r.TopicArn, changes: &changes) }
            await refreshPolicies()
            return Data("{}".utf8)
        case SNSAction.listTopics:
            let r = try request.decode(NextTokenRequest.self)
            let page = try await engine.read { sns in try sns.listTopics(nextToken: r.NextToken) }
            return try encoder.encode(ListTopicsResponse(Topics: page.arns.map { .init(TopicArn: $0) }, NextToken: page.nextToken))
        case SNSAction.getTopicAttributes:
            let r = try request.decode(TopicArnRequest.self)
            return try encoder.encode(AttributesResponse(Attributes: try await engine.read { sns in try sns.getTopicAttributes(r.TopicArn) }))
        case SNSAction.setTopicAttributes:
            let r = try request.decode(SetTopicAttributesRequest.self)
            try await engine.perform { sns, _, changes in
                try sns.setTopicAttributes(r.TopicArn, name: r.AttributeName, value: r.AttributeValue, changes: &changes)
            }
            if r.AttributeName == "Policy" { await refreshPolicies() }
            return Data("{}".utf8)
        case SNSAction.subscribe:
            let r = try request.decode(SubscribeRequest.self)
            let arn = try await engine.perform { sns, now, changes in
                try sns.subscribe(topicArn: r.TopicArn, protocol: r.Protocol, endpoint: r.Endpoint,
                                  returnSubscriptionArn: r.ReturnSubscriptionArn ?? false, attributes: r.Attributes ?? [:],
                                  now: now, changes: &changes)
            }
            return try encoder.encode(SubscriptionArnResponse(SubscriptionArn: arn))
        case SNSAction.confirmSubscription:
            let r = try request.decode(ConfirmSubscriptionRequest.self)
            let arn = try await engine.perform { sns, now, changes in
                try sns.confirmSubscription(topicArn: r.TopicArn, token: r.Token, now: now, changes: &changes)
            }
            return try encoder.encode(SubscriptionArnResponse(SubscriptionArn: arn))
        case SNSAction.getSubscriptionAttributes:
            let r = try request.decode(SubscriptionArnRequest.self)
            return try encoder.encode(AttributesResponse(Attributes: try await engine.read { sns in
                try sns.getSubscriptionAttributes(r.SubscriptionArn)
            }))
        case SNSAction.setSubscriptionAttributes:
            let r = try request.decode(SetSubscriptionAttributesRequest.self)
            try await engine.perform { sns, _, changes in
                try sns.setSubscriptionAttributes(r.SubscriptionArn, name: r.AttributeName, value: r.AttributeValue, changes: &changes)
            }
            return Data("{}".utf8)
        case SNSAction.unsubscribe:
            let r = try request.decode(SubscriptionArnRequest.self)
            try await engine.perform { sns, now, changes in try sns.unsubscribe(r.SubscriptionArn, now: now, changes: &changes) }
            return Data("{}".utf8)
        case SNSAction.listSubscriptions:
            let r = try request.decode(NextTokenRequest.self)
            let page = try await engine.read { sns in try sns.listSubscriptions(nextToken: r.NextToken) }
            return try encoder.encode(ListSubscriptionsResponse(Subscriptions: page.subscriptions, NextToken: page.nextToken))
        case SNSAction.listSubscriptionsByTopic:
            let r = try request.decode(ListSubscriptionsByTopicRequest.self)
            let page = try await engine.read { sns in try sns.listSubscriptionsByTopic(r.TopicArn, nextToken: r.NextToken) }
            return try encoder.encode(ListSubscriptionsResponse(Subscriptions: page.subscriptions, NextToken: page.nextToken))
        case SNSAction.publish:
            let r = try request.decode(PublishRequest.self)
            if r.PhoneNumber != nil {
                throw SNSError(.invalidParameter, "Invalid parameter: PhoneNumber Reason: SMS is not supported by Nimbus")
            }
            if let topic = r.TopicArn, let target = r.TargetArn, topic != target {
                throw SNSError(.invalidParameter, "Invalid parameter: TopicArn Reason: Only one of TopicArn or TargetArn may be given")
            }
            let input = PublishInput(message: r.Message, subject: r.Subject, messageStructure: r.MessageStructure,
                                     messageAttributes: r.MessageAttributes, deduplicationId: r.MessageDeduplicationId)
            // Answered only once the outbox rows are committed: an acknowledged publish is never lost.
            let id = try await engine.perform { sns, now, changes in
                try sns.publish(topicArn: r.TopicArn ?? r.TargetArn, input, now: now, changes: &changes)
            }
            published.add(1)
            return try encoder.encode(PublishResponse(MessageId: id))
        case SNSAction.publishBatch:
            let r = try PublishBatchRequest.fast(request.body) ?? request.decode(PublishBatchRequest.self)
            let result = try await engine.perform { sns, now, changes in
                try sns.publishBatch(topicArn: r.TopicArn, entries: r.PublishBatchRequestEntries, now: now, changes: &changes)
            }
            published.add(result.Successful.count)
            return try encoder.encode(result)
        default:
            throw WireError(.invalidAction, "\(request.header.action ?? "") is not an SNS action")
        }
    }

    public func healthDetails() async -> [String: String] {
        var details = await engine.health()
        details["published"] = String(published.value)
        return details
    }

    /// Email goes out through the SMTP server: the notifier is not ready while nothing takes a
    /// connection there (mails wait in the outbox meanwhile).
    public func readinessProbes(runtime: NodeRuntime) -> [ReadinessProbe] {
        let settings = configuration.cluster.notifier
        guard !settings.smtpHost.isEmpty else { return [] }
        let queue = DispatchQueue(label: "nimbus-smtp-probe")
        return [ReadinessProbe(name: "smtp \(settings.smtpHost):\(settings.smtpPort)") {
            (try? await BlockingTCP.run(on: queue) { () -> Bool in
                guard case .success(let fd) = BlockingTCP.connect(host: settings.smtpHost, port: settings.smtpPort, timeout: 1) else { return false }
                close(fd)
                return true
            }) ?? false
        }]
    }

    public func run(runtime: NodeRuntime) async throws {
        do { try await applyStack(logger: runtime.logger) } catch { runtime.logger.error("stack: \(error)") }
        await refreshPolicies()
        let (httpDeliveries, httpQueue) = AsyncStream.makeStream(of: Delivery.self)
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                for lane in DeliveryLane.allCases { group.addTask { await deliveryLoop(lane, http: httpQueue, runtime: runtime) } }
                group.addTask { await postLoop(httpDeliveries, runtime: runtime) }
                group.addTask { await housekeeping(runtime: runtime) }
            }
        }
        for client in senders.smtp { await client.close() }
        senders.http.close()
    }

    // MARK: Delivery

    /// Sends what is due in `lane`, reports each outcome to the engine (which backs off failures),
    /// and sleeps until the lane's next entry falls due or a commit rings its doorbell. Mail goes over
    /// `smtpConnections` connections, one message at a time on each; a round's queue deliveries go
    /// concurrently. The lanes run apart: a slow relay holds up mail, not the queues and HTTP
    /// endpoints (a round waits for its slowest delivery). HTTP deliveries are handed to `http`
    /// (`postLoop`) and not waited for: an endpoint that takes its time, or never answers (15 s
    /// until the client gives up), would otherwise hold up every other endpoint and queue. The
    /// engine hands a delivery out once until its outcome is reported, so none goes out twice.
    func deliveryLoop(_ lane: DeliveryLane, http: AsyncStream<Delivery>.Continuation, runtime: NodeRuntime) async {
        let doorbell = engine.doorbells[lane.rawValue]
        while !Task.isCancelled {
            let due = await engine.takeDue(limit: 256, lane: lane)
            if due.isEmpty {
                let wait = await engine.secondsUntilNextDue(lane: lane) ?? 60
                await withTaskCancellationHandler {
                    await doorbell.wait(upTo: min(wait, 60))
                } onCancel: {
                    doorbell.ring()
                }
                continue
            }
            await withTaskGroup(of: Void.self) { group in
                let mails = due.filter { $0.deliveryProtocol == .email || $0.deliveryProtocol == .emailJSON }
                let lanes = senders.smtp.count
                for lane in 0..<lanes where lane < mails.count {
                    group.addTask {
                        // Outcomes are committed sixteen at a time: a commit per mail was a tenth of
                        // the node's CPU. A crash before the commit resends those mails, with the
                        // same Message-ID (at least once, as before).
                        var done: [(Delivery, NotifierEngine.Outcome)] = []
                        for delivery in stride(from: lane, to: mails.count, by: lanes).map({ mails[$0] }) {
                            let outcome = await attempt(delivery, lane: lane, runtime: runtime)
                            // Shutting down: this mail's outcome is unknown; it is sent again after the restart.
                            if Task.isCancelled { break }
                            done.append((delivery, outcome))
                            if done.count == 16 {
                                await record(done, runtime: runtime)
                                done = []
                            }
                        }
                        if !done.isEmpty { await record(done, runtime: runtime) }
                    }
                }
                // Queue deliveries go ten to a SendMessageBatch per queue: one request and one
                // commit at the queue node instead of ten.
                let queued = Dictionary(grouping: due.filter { $0.deliveryProtocol == .sqs }, by: \.endpoint)
                for batch in queued.values.flatMap({ DeliverySenders.queueBatches($0) }) {
                    group.addTask { await attemptQueueBatch(batch, runtime: runtime) }
                }
                for delivery in due where delivery.deliveryProtocol == .http || delivery.deliveryProtocol == .https {
                    http.yield(delivery)
                }
            }
        }
    }

    /// POSTs each http/https delivery handed over by the delivery loop as soon as it comes, and
    /// reports its outcome. The HTTP client keeps a few connections per endpoint; what is sent to
    /// one endpoint waits only for that endpoint. At shutdown an attempt still waiting for its
    /// endpoint is left unreported (its row stays in the outbox and is sent again after the
    /// restart): a stuck endpoint does not hold up the node's exit for the client's 15 s.
    func postLoop(_ deliveries: AsyncStream<Delivery>, runtime: NodeRuntime) async {
        await withDiscardingTaskGroup { group in
            for await delivery in deliveries {
                group.addTask {
                    let outcome = await attempt(delivery, runtime: runtime)
                    if !Task.isCancelled { await record([(delivery, outcome)], runtime: runtime) }
                }
            }
        }
    }

    /// SMTP connections the notifier keeps open.
    static let smtpConnections = 4

    /// One attempt at a delivery; its outcome for the engine.
    func attempt(_ delivery: Delivery, lane: Int = 0, runtime: NodeRuntime) async -> NotifierEngine.Outcome {
        do {
            try await senders.send(delivery, client: runtime.client, lane: lane)
            return NotifierEngine.Outcome(id: delivery.id, error: nil)
        } catch let error as SMTPError {
            return NotifierEngine.Outcome(id: delivery.id, error: error.description, permanent: error.permanent)
        } catch {
            return NotifierEngine.Outcome(id: delivery.id, error: "\(error)")
        }
    }

    func attemptQueueBatch(_ deliveries: [Delivery], runtime: NodeRuntime) async {
        let failures = await senders.sendToQueue(deliveries, client: runtime.client)
        await record(deliveries.map { ($0, NotifierEngine.Outcome(id: $0.id, error: failures[$0.id])) }, runtime: runtime)
    }

    /// Commits outcomes together (the engine backs off the failures) and logs the failures.
    func record(_ attempts: [(Delivery, NotifierEngine.Outcome)], runtime: NodeRuntime) async {
        do {
            let gaveUp = try await engine.report(attempts.map(\.1))
            for ((delivery, outcome), given) in zip(attempts, gaveUp) {
                if let failure = outcome.error { logOutcome(delivery, failure: failure, gaveUp: given, runtime: runtime) }
            }
        } catch {
            runtime.logger.error("recording the outcomes of \(attempts.count) deliveries failed: \(error)")
        }
    }

    private func logOutcome(_ delivery: Delivery, failure: String, gaveUp: Bool, runtime: NodeRuntime) {
        let what = "\(delivery.kind.rawValue) \(delivery.messageId) to \(delivery.deliveryProtocol.rawValue) \(delivery.endpoint)"
        if gaveUp {
            runtime.logger.error("gave up \(what) after \(delivery.attempts + 1) attempts: \(failure)")
        } else {
            runtime.logger.warning("\(what) failed (attempt \(delivery.attempts + 1)), will retry: \(failure)")
        }
    }

    /// Forgets old idempotency keys and trims the delivery log, hourly.
    func housekeeping(runtime: NodeRuntime) async {
        while !Task.isCancelled {
            do {
                try await engine.perform { sns, now, changes in sns.expireDedupe(now: now, changes: &changes) }
                try await store.trimLog(keep: 100_000)
            } catch {
                runtime.logger.warning("housekeeping: \(error)")
            }
            try? await Task.sleep(for: .seconds(3600))
        }
    }

    // MARK: Stack

    /// Creates the stack's AWS::SNS::Topic resources through CreateTopic (idempotent by name) and
    /// its AWS::SNS::Subscription resources through Subscribe, once: a subscription that already
    /// exists, pending or confirmed, is left alone so a restart does not mail its confirmation again.
    /// A subscription whose Endpoint resolves to "" (an unset parameter) is skipped.
    func applyStack(logger: Logger) async throws {
        guard let file = configuration.stackFile, FileManager.default.fileExists(atPath: file.path) else { return }
        let template = try StackTemplate.load(path: file.path)
        let cluster = configuration.cluster
        let resolver = StackResolver(template: template, region: cluster.region, account: cluster.account)
        for resource in template.resources {
            switch resource.type {
            case "AWS::SNS::Topic":
                var name = resource.logicalID
                var attributes: [String: String] = [:]
                for (key, value) in resource.properties {
                    switch key {
                    case "TopicName": name = try resolver.string(value)
                    case "DisplayName": attributes["DisplayName"] = try resolver.string(value)
                    default: logger.info("stack: \(resource.logicalID).\(key) is not supported; ignored")
                    }
                }
                let (topicName, topicAttributes) = (name, attributes)
                _ = try await engine.perform { sns, now, changes in
                    // Attributes only when new: a DisplayName changed later through SetTopicAttributes survives restarts.
                    let exists = sns.topics[sns.topicArn(topicName)] != nil
                    return try sns.createTopic(name: topicName, attributes: exists ? [:] : topicAttributes, now: now, changes: &changes)
                }
            case "AWS::SNS::Subscription":
                guard let topicValue = resource.properties["TopicArn"], let protocolValue = resource.properties["Protocol"],
                      let endpointValue = resource.properties["Endpoint"] else {
                    throw StackError("\(resource.logicalID) needs TopicArn, Protocol and Endpoint")
                }
                let topicArn = try resolver.string(topicValue)
                let deliveryProtocol = try resolver.string(protocolValue)
                let endpoint = try resolver.string(endpointValue)
                let attributes = try resource.properties["RawMessageDelivery"].map { ["RawMessageDelivery": try resolver.string($0)] } ?? [:]
                if resource.properties["FilterPolicy"] != nil {
                    // Ignoring it would deliver everything; the stack's YAML scalars lose their JSON types.
                    throw StackError("\(resource.logicalID).FilterPolicy is not supported in a Nimbus stack: set it with SetSubscriptionAttributes")
                }
                if endpoint.isEmpty {
                    logger.info("stack: \(resource.logicalID) has no Endpoint (parameter not set); not subscribed")
                    continue
                }
                try await engine.perform { sns, now, changes in
                    let exists = sns.subscriptions.values.contains {
                        $0.topicArn == topicArn && $0.deliveryProtocol.rawValue == deliveryProtocol.lowercased() && $0.endpoint == endpoint
                    }
                    if !exists {
                        _ = try sns.subscribe(topicArn: topicArn, protocol: deliveryProtocol, endpoint: endpoint, attributes: attributes,
                                              now: now, changes: &changes)
                    }
                }
            default:
                continue
            }
        }
    }
}

extension SMTPClient.Security {
    init(_ mode: ClusterConfig.SMTPTLSMode) {
        switch mode {
        case .off: self = .none
        case .starttls: self = .startTLS
        case .tls: self = .implicitTLS
        }
    }
}

/// A counter bumped from concurrent handlers.
final class PublishedCount: Sendable {
    private let count = Atomic<Int>(0)
    func add(_ n: Int) { count.wrappingAdd(n, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}
