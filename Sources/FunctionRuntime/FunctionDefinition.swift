import Foundation
import NimbusStack

/// A function and its event source mappings as the stack declares them (AWS::Lambda::Function,
/// AWS::Lambda::EventSourceMapping): what the worker hosting the function needs to know.
public struct FunctionDefinition: Sendable, Equatable {
    public var name: String
    public var roleARN: String?
    public var environment: [String: String] = [:]
    /// Seconds a single invocation may take (Lambda's Timeout, default 3).
    public var timeoutSeconds: Double = 3
    /// Lambda's Code: what a Python function runs (inline ZipFile text or a local folder;
    /// Python/FunctionCode.swift).
    public var code: FunctionCode?
    /// What GetFunction reports of the declaration (Lambda's defaults when the stack leaves them out).
    public var runtime: String?
    public var handler: String?
    public var description = ""
    public var memorySize = 128
    public var mappings: [EventSourceMapping] = []

    public init(name: String) { self.name = name }
}

/// Lambda's event source mapping settings that Nimbus honours.
public struct EventSourceMapping: Sendable, Equatable {
    /// The stack's logical ID of the AWS::Lambda::EventSourceMapping (what its UUID is made from).
    public var logicalID = ""
    public var eventSourceARN: String
    public var enabled = true
    public var batchSize: Int
    public var maximumBatchingWindowSeconds: Double = 0
    /// Streams only: TRIM_HORIZON or LATEST.
    public var startingPosition: String?
    /// ReportBatchItemFailures lets a handler name the records to retry.
    public var reportBatchItemFailures = false
    /// Streams: retries of a failing batch before it goes to `onFailureDestination` (-1: until the
    /// records expire, Lambda's default).
    public var maximumRetryAttempts = -1
    /// Streams: an SQS queue ARN that receives a failed batch's metadata.
    public var onFailureDestination: String?
    /// SQS: concurrent pollers per worker process (Lambda's ScalingConfig.MaximumConcurrency caps the
    /// whole mapping; here it is per instance, and scaling the worker kind adds pollers).
    public var concurrency = 4

    public var isStream: Bool { eventSourceARN.contains(":dynamodb:") }

    public init(eventSourceARN: String, batchSize: Int) {
        self.eventSourceARN = eventSourceARN
        self.batchSize = batchSize
    }
}

public struct FunctionDefinitionError: Error, CustomStringConvertible {
    public var description: String
}

extension FunctionDefinition {
    /// Reads function `name` from the template. `resolver` resolves intrinsics (a stream ARN needs
    /// the table node's answer, so the caller supplies it).
    public static func load(_ name: String, template: StackTemplate, resolver: StackResolver) throws -> FunctionDefinition {
        var definition = FunctionDefinition(name: name)
        var logicalIDs: Set<String> = []
        for resource in template.resources(ofType: "AWS::Lambda::Function") {
            guard let declared = resource.properties["FunctionName"], try resolver.string(declared) == name else { continue }
            logicalIDs.insert(resource.logicalID)
            definition.roleARN = try resource.properties["Role"].map { try resolver.string($0) }
            if case .map(let env)? = resource.properties["Environment"], case .map(let variables)? = env["Variables"] {
                for (key, value) in variables { definition.environment[key] = try resolver.string(value) }
            }
            if let t = resource.properties["Timeout"] { definition.timeoutSeconds = try number(t, resolver, "Timeout") }
            try definition.loadRuntime(resource, resolver: resolver)
            definition.runtime = try resource.properties["Runtime"].map { try resolver.string($0) }
            definition.handler = try resource.properties["Handler"].map { try resolver.string($0) }
            if let d = resource.properties["Description"] { definition.description = try resolver.string(d) }
            if let m = resource.properties["MemorySize"] { definition.memorySize = Int(try number(m, resolver, "MemorySize")) }
        }
        guard !logicalIDs.isEmpty else { throw FunctionDefinitionError(description: "the stack declares no AWS::Lambda::Function named \(name)") }
        for resource in template.resources(ofType: "AWS::Lambda::EventSourceMapping") {
            let p = resource.properties
            guard let target = p["FunctionName"], try resolver.string(target) == name else { continue }
            guard let source = p["EventSourceArn"] else {
                throw FunctionDefinitionError(description: "\(resource.logicalID): EventSourceArn is required")
            }
            let arn = try resolver.string(source)
            let isStream = arn.contains(":dynamodb:")
            var mapping = EventSourceMapping(eventSourceARN: arn, batchSize: isStream ? 100 : 10)
            mapping.logicalID = resource.logicalID
            if let v = p["BatchSize"] { mapping.batchSize = Int(try number(v, resolver, "BatchSize")) }
            // Lambda's limit for both SQS and stream sources (here a stream batch holds at most the 1,000
            // records of one GetRecords call).
            guard (1...10_000).contains(mapping.batchSize) else {
                throw FunctionDefinitionError(description: "\(resource.logicalID): BatchSize must be 1..10000")
            }
            if let v = p["Enabled"] { mapping.enabled = try resolver.string(v).lowercased() != "false" }
            if let v = p["MaximumBatchingWindowInSeconds"] {
                mapping.maximumBatchingWindowSeconds = try number(v, resolver, "MaximumBatchingWindowInSeconds")
                guard (0...300).contains(mapping.maximumBatchingWindowSeconds) else {
                    throw FunctionDefinitionError(description: "\(resource.logicalID): MaximumBatchingWindowInSeconds must be 0..300")
                }
            }
            if let v = p["StartingPosition"] { mapping.startingPosition = try resolver.string(v) }
            if isStream && !["TRIM_HORIZON", "LATEST"].contains(mapping.startingPosition ?? "") {
                throw FunctionDefinitionError(description: "\(resource.logicalID): StartingPosition TRIM_HORIZON or LATEST is required for a stream")
            }
            if case .list(let types)? = p["FunctionResponseTypes"] {
                mapping.reportBatchItemFailures = try types.contains { try resolver.string($0) == "ReportBatchItemFailures" }
            }
            if let v = p["MaximumRetryAttempts"] { mapping.maximumRetryAttempts = Int(try number(v, resolver, "MaximumRetryAttempts")) }
            if case .map(let destination)? = p["DestinationConfig"], case .map(let onFailure)? = destination["OnFailure"],
               let target = onFailure["Destination"] {
                mapping.onFailureDestination = try resolver.string(target)
            }
            if case .map(let scaling)? = p["ScalingConfig"], let v = scaling["MaximumConcurrency"] {
                mapping.concurrency = max(1, Int(try number(v, resolver, "MaximumConcurrency")))
            }
            definition.mappings.append(mapping)
        }
        return definition
    }

    private static func number(_ value: StackValue, _ resolver: StackResolver, _ key: String) throws -> Double {
        guard let n = Double(try resolver.string(value)) else { throw FunctionDefinitionError(description: "\(key) must be a number") }
        return n
    }
}
