import Foundation
import Logging
import NimbusProtocol
import Synchronization

/// Asks a mapping's pollers to stop once the batch in hand is done.
public final class PollerStop: Sendable {
    private let flag = Atomic<Bool>(false)

    public init() {}

    public func request() { flag.store(true, ordering: .relaxed) }

    public var requested: Bool { flag.load(ordering: .relaxed) }
}

/// The function's triggers while its worker runs: their settings (the stack's, with the changes
/// UpdateEventSourceMapping made), their state, and the pollers that serve them. A change stops the
/// mapping's pollers (they finish the batch in hand) and, when it stays enabled, starts new ones with
/// the new settings; meanwhile the mapping is Enabling, Disabling or Updating, as in Lambda.
///
/// Changes are kept in `<data>/functions/<function>.mappings.json`, so a restarted worker keeps a
/// disabled trigger disabled; a stack file changed after them wins (it was deployed later).
public actor EventSourceMappingController {
    /// Runs a mapping's pollers until they are asked to stop (or cancelled at shutdown).
    public typealias Poller = @Sendable (EventSourceMapping, PollerStop) async -> Void

    struct Live {
        var mapping: EventSourceMapping
        let uuid: String
        var lastModified: Date
        var state: String
        var poller: Task<Void, Never>?
        var stop: PollerStop?
        /// The change under way: waits for the old pollers, then starts the new ones.
        var settling: Task<Void, Never>?
        var generation = 0
    }

    private var live: [Live]
    private let functionName: String
    private let region: String
    private let account: String
    private let changesFile: URL?
    private let poller: Poller
    private let logger: Logger

    /// `declaredAt`: when the stack file was last changed. `changesFile`: where changes are kept (nil: not kept).
    public init(definition: FunctionDefinition, region: String, account: String, declaredAt: Date, changesFile: URL?,
                logger: Logger, poller: @escaping Poller) {
        functionName = definition.name
        self.region = region
        self.account = account
        self.changesFile = changesFile
        self.poller = poller
        self.logger = logger
        let changes = changesFile.flatMap { try? JSONDecoder().decode([String: SavedChange].self, from: Data(contentsOf: $0)) } ?? [:]
        live = definition.mappings.map { declared in
            let uuid = Self.uuid(function: definition.name, mapping: declared)
            var mapping = declared
            var lastModified = declaredAt
            if let change = changes[uuid], change.LastModified > declaredAt.timeIntervalSince1970 {
                if let enabled = change.Enabled { mapping.enabled = enabled }
                if let size = change.BatchSize { mapping.batchSize = size }
                if let window = change.MaximumBatchingWindowInSeconds { mapping.maximumBatchingWindowSeconds = Double(window) }
                lastModified = Date(timeIntervalSince1970: change.LastModified)
            }
            return Live(mapping: mapping, uuid: uuid, lastModified: lastModified, state: mapping.enabled ? "Enabled" : "Disabled")
        }
    }

    /// A mapping's UUID: from the function and the mapping's logical ID in the stack (not its source
    /// ARN: a table's stream ARN changes when the table is made anew).
    public static func uuid(function: String, mapping: EventSourceMapping) -> String {
        StableID.uuid(of: "\(function)|\(mapping.logicalID.isEmpty ? mapping.eventSourceARN : mapping.logicalID)")
    }

    /// Starts the pollers of the enabled mappings.
    public func start() {
        for index in live.indices where live[index].mapping.enabled { startPoller(index) }
    }

    /// Stops every poller (node shutdown) and waits for them.
    public func stopAll() async {
        let tasks = live.flatMap { [$0.poller, $0.settling].compactMap { $0 } }
        for index in live.indices { live[index].generation += 1 }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }

    public var mappings: [EventSourceMapping] { live.map(\.mapping) }

    /// The mappings as Lambda describes them, optionally only those of `eventSourceARN`.
    public func configurations(eventSourceARN: String? = nil) -> [EventSourceMappingConfiguration] {
        live.filter { eventSourceARN == nil || $0.mapping.eventSourceARN == eventSourceARN }.map(configuration)
    }

    public func configuration(uuid: String) throws(WireError) -> EventSourceMappingConfiguration {
        guard let entry = live.first(where: { $0.uuid == uuid }) else { throw Self.notFound }
        return configuration(entry)
    }

    /// Applies UpdateEventSourceMapping: Enabled, BatchSize, MaximumBatchingWindowInSeconds.
    public func update(_ request: UpdateEventSourceMappingRequest) throws(WireError) -> EventSourceMappingConfiguration {
        guard let index = live.firstIndex(where: { $0.uuid == request.UUID }) else { throw Self.notFound }
        if let other = request.otherMembers.first {
            throw WireError(code: "InvalidParameterValueException",
                            message: "Nimbus does not change \(other) of an event source mapping yet; it changes Enabled, BatchSize and MaximumBatchingWindowInSeconds")
        }
        if let name = request.FunctionName, name != functionName {
            throw WireError(code: "InvalidParameterValueException",
                            message: "Nimbus runs each trigger with the function its stack gives it; \(request.UUID) belongs to \(functionName), not \(name)")
        }
        let before = live[index].mapping
        var after = before
        if let enabled = request.Enabled { after.enabled = enabled }
        if let size = request.BatchSize { after.batchSize = size }
        if let window = request.MaximumBatchingWindowInSeconds { after.maximumBatchingWindowSeconds = Double(window) }
        try Self.validate(after, changingBatching: request.BatchSize != nil || request.MaximumBatchingWindowInSeconds != nil)
        live[index].mapping = after
        live[index].lastModified = Date()
        save()
        let restart = before.enabled != after.enabled
            || (after.enabled && (before.batchSize != after.batchSize || before.maximumBatchingWindowSeconds != after.maximumBatchingWindowSeconds))
        if restart { change(index, from: before) }
        logger.info("event source mapping \(request.UUID) (\(after.eventSourceARN)): \(after.enabled ? "enabled" : "disabled"), BatchSize \(after.batchSize), window \(Int(after.maximumBatchingWindowSeconds)) s")
        return configuration(live[index])
    }

    /// Lambda's limits on a mapping's batching.
    static func validate(_ mapping: EventSourceMapping, changingBatching: Bool) throws(WireError) {
        func invalid(_ message: String) -> WireError { WireError(code: "InvalidParameterValueException", message: message) }
        guard (1...10_000).contains(mapping.batchSize) else { throw invalid("BatchSize must be between 1 and 10000") }
        guard (0...300).contains(mapping.maximumBatchingWindowSeconds) else {
            throw invalid("MaximumBatchingWindowInSeconds must be between 0 and 300")
        }
        if changingBatching && !mapping.isStream && mapping.batchSize > 10 && mapping.maximumBatchingWindowSeconds < 1 {
            throw invalid("Maximum batch window in seconds must be greater than 0 if maximum batch size is greater than 10")
        }
    }

    static var notFound: WireError {
        WireError(code: "ResourceNotFoundException", message: "The resource you requested does not exist.")
    }

    // MARK: Pollers

    private func startPoller(_ index: Int) {
        let stop = PollerStop()
        let mapping = live[index].mapping
        let poller = self.poller
        live[index].stop = stop
        live[index].poller = Task { await poller(mapping, stop) }
        live[index].state = "Enabled"
    }

    /// Stops the old pollers, then (still enabled) starts new ones; the state says which is under way.
    private func change(_ index: Int, from before: EventSourceMapping) {
        let old = live[index].poller
        let previous = live[index].settling
        live[index].stop?.request()
        live[index].poller = nil
        live[index].stop = nil
        live[index].generation += 1
        let enabled = live[index].mapping.enabled
        live[index].state = !enabled ? "Disabling" : before.enabled ? "Updating" : "Enabling"
        let generation = live[index].generation
        let uuid = live[index].uuid
        live[index].settling = Task {
            await previous?.value
            await old?.value
            await self.settle(uuid, generation: generation)
        }
    }

    private func settle(_ uuid: String, generation: Int) {
        guard let index = live.firstIndex(where: { $0.uuid == uuid }), live[index].generation == generation else { return }
        live[index].settling = nil
        if live[index].mapping.enabled { startPoller(index) } else { live[index].state = "Disabled" }
    }

    // MARK: Description and persistence

    private func configuration(_ entry: Live) -> EventSourceMappingConfiguration {
        let m = entry.mapping
        return EventSourceMappingConfiguration(
            UUID: entry.uuid, EventSourceMappingArn: LambdaARN.eventSourceMapping(entry.uuid, region: region, account: account),
            EventSourceArn: m.eventSourceARN, FunctionArn: LambdaARN.function(functionName, region: region, account: account),
            BatchSize: m.batchSize, MaximumBatchingWindowInSeconds: Int(m.maximumBatchingWindowSeconds),
            StartingPosition: m.isStream ? (m.startingPosition ?? "TRIM_HORIZON") : nil,
            State: entry.state, LastModified: (entry.lastModified.timeIntervalSince1970 * 1000).rounded() / 1000,
            FunctionResponseTypes: m.reportBatchItemFailures ? ["ReportBatchItemFailures"] : [],
            MaximumRetryAttempts: m.isStream ? m.maximumRetryAttempts : nil,
            MaximumRecordAgeInSeconds: m.isStream ? -1 : nil,
            BisectBatchOnFunctionError: m.isStream ? false : nil,
            ParallelizationFactor: m.isStream ? 1 : nil,
            TumblingWindowInSeconds: m.isStream ? 0 : nil,
            DestinationConfig: m.isStream ? .init(OnFailure: .init(Destination: m.onFailureDestination)) : nil,
            ScalingConfig: m.isStream ? nil : .init(MaximumConcurrency: m.concurrency))
    }

    /// What UpdateEventSourceMapping changed of one mapping, as kept on disk.
    struct SavedChange: Codable {
        var Enabled: Bool?
        var BatchSize: Int?
        var MaximumBatchingWindowInSeconds: Int?
        var LastModified: Double
    }

    private func save() {
        guard let changesFile else { return }
        var saved: [String: SavedChange] = [:]
        for entry in live {
            saved[entry.uuid] = SavedChange(Enabled: entry.mapping.enabled, BatchSize: entry.mapping.batchSize,
                                            MaximumBatchingWindowInSeconds: Int(entry.mapping.maximumBatchingWindowSeconds),
                                            LastModified: entry.lastModified.timeIntervalSince1970)
        }
        do {
            try FileManager.default.createDirectory(at: changesFile.deletingLastPathComponent(), withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
            try encoder.encode(saved).write(to: changesFile, options: .atomic)
        } catch {
            // The change holds while the worker runs; only a restart would forget it.
            logger.error("event source mapping changes not saved to \(changesFile.path): \(error)")
        }
    }
}
