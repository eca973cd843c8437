import Foundation

// The bodies and answers of the Lambda actions a function's worker serves (`LambdaAction`), in the
// shapes of the AWS Lambda API reference (2015-03-31), so that the AWS endpoint hands them to the
// SDKs as they are. Optional members left nil are left out of the JSON, as Lambda leaves them out.

/// FunctionConfiguration: what GetFunction, GetFunctionConfiguration and ListFunctions say of a function.
public struct FunctionConfiguration: Codable, Sendable, Equatable {
    public var FunctionName: String
    public var FunctionArn: String
    public var Runtime: String?
    public var Role: String?
    public var Handler: String?
    public var CodeSize: Int
    public var Description: String
    public var Timeout: Int
    public var MemorySize: Int
    /// `2024-05-01T12:00:00.000+0000`, as Lambda writes it (a string, not a timestamp).
    public var LastModified: String
    public var Version = "$LATEST"
    public var Environment: EnvironmentResponse?
    public var TracingConfig = TracingConfigResponse()
    public var RevisionId: String
    public var State = "Active"
    public var LastUpdateStatus = "Successful"
    public var PackageType = "Zip"
    public var Architectures: [String]
    public var EphemeralStorage = EphemeralStorageResponse()
    public var LoggingConfig: LoggingConfigResponse

    public struct EnvironmentResponse: Codable, Sendable, Equatable { public var Variables: [String: String] }
    public struct TracingConfigResponse: Codable, Sendable, Equatable { public var Mode = "PassThrough" }
    public struct EphemeralStorageResponse: Codable, Sendable, Equatable { public var Size = 512 }
    public struct LoggingConfigResponse: Codable, Sendable, Equatable {
        public var LogFormat = "Text"
        public var LogGroup: String
    }

    /// The configuration of `definition` as the worker hosting it reports it. `lastModified`: when the
    /// stack declaring it last changed; `codeSize`: the worker executable's size (the function's code).
    public init(_ definition: FunctionDefinition, region: String, account: String, lastModified: Date, codeSize: Int) {
        FunctionName = definition.name
        FunctionArn = LambdaARN.function(definition.name, region: region, account: account)
        Runtime = definition.runtime
        Role = definition.roleARN
        Handler = definition.handler
        CodeSize = codeSize
        Description = definition.description
        Timeout = Int(definition.timeoutSeconds.rounded(.up))
        MemorySize = definition.memorySize
        LastModified = LambdaTime.functionTimestamp(lastModified)
        Environment = definition.environment.isEmpty ? nil : EnvironmentResponse(Variables: definition.environment)
        #if arch(arm64)
        Architectures = ["arm64"]
        #else
        Architectures = ["x86_64"]
        #endif
        LoggingConfig = LoggingConfigResponse(LogGroup: "/aws/lambda/\(definition.name)")
        RevisionId = StableID.uuid(of: "\(FunctionArn)|\(LastModified)|\(Timeout)|\(MemorySize)|\(Handler ?? "")")
    }
}

/// FunctionCodeLocation. Nimbus's functions are compiled into their worker: the location is the
/// worker's executable.
public struct FunctionCodeLocation: Codable, Sendable, Equatable {
    public var RepositoryType = "Nimbus"
    public var Location: String
}

/// GetFunction's answer.
public struct GetFunctionAnswer: Codable, Sendable, Equatable {
    public var Configuration: FunctionConfiguration
    public var Code: FunctionCodeLocation
}

/// ListFunctions' answer from one worker: the function it hosts.
public struct ListFunctionsAnswer: Codable, Sendable, Equatable {
    public var Functions: [FunctionConfiguration]
}

/// The body of GetFunction, GetFunctionConfiguration and ListFunctions: the function's plain name
/// (the endpoint resolves ARNs and qualifiers), absent for ListFunctions.
public struct FunctionNameRequest: Codable, Sendable, Equatable {
    public var FunctionName: String?
}

/// lambda:InvokeFunction's body: Invoke's headers and the event as text.
public struct InvokeFunctionRequest: Codable, Sendable, Equatable {
    public var FunctionName: String?
    /// RequestResponse (default), Event or DryRun.
    public var InvocationType: String?
    /// None or Tail; the answer carries the log's tail either way, Tail decides whether the caller sees it.
    public var LogType: String?
    /// The event, a JSON document as text.
    public var Payload: String?

    public init(FunctionName: String? = nil, InvocationType: String? = nil, LogType: String? = nil, Payload: String? = nil) {
        self.FunctionName = FunctionName
        self.InvocationType = InvocationType
        self.LogType = LogType
        self.Payload = Payload
    }
}

/// lambda:InvokeFunction's answer: Invoke's status code and headers, and the function's result as text.
public struct InvokeFunctionAnswer: Codable, Sendable, Equatable {
    /// 200 (RequestResponse), 202 (Event) or 204 (DryRun).
    public var StatusCode: Int
    public var ExecutedVersion: String?
    /// "Unhandled" when the function failed (the payload then says how).
    public var FunctionError: String?
    /// Base64 of the last 4 KB of the invocation's log (RequestResponse only).
    public var LogResult: String?
    public var Payload: String?
}

/// EventSourceMappingConfiguration: a trigger as the mapping actions answer it.
public struct EventSourceMappingConfiguration: Codable, Sendable, Equatable {
    public var UUID: String
    public var EventSourceMappingArn: String
    public var EventSourceArn: String
    public var FunctionArn: String
    public var BatchSize: Int
    public var MaximumBatchingWindowInSeconds: Int
    public var StartingPosition: String?
    /// Enabled, Disabled, or Enabling, Disabling, Updating while the pollers change.
    public var State: String
    public var StateTransitionReason = "USER_INITIATED"
    /// Seconds since 1970 (a timestamp: rest-json's default is epoch seconds).
    public var LastModified: Double
    public var FunctionResponseTypes: [String]
    public var MaximumRetryAttempts: Int?
    public var MaximumRecordAgeInSeconds: Int?
    public var BisectBatchOnFunctionError: Bool?
    public var ParallelizationFactor: Int?
    public var TumblingWindowInSeconds: Int?
    public var DestinationConfig: DestinationConfiguration?
    public var ScalingConfig: Scaling?

    public struct DestinationConfiguration: Codable, Sendable, Equatable {
        public var OnFailure: OnFailureDestination
        public struct OnFailureDestination: Codable, Sendable, Equatable { public var Destination: String? }
    }

    public struct Scaling: Codable, Sendable, Equatable { public var MaximumConcurrency: Int }
}

/// ListEventSourceMappings' body: Lambda's two filters (the function by its plain name).
public struct ListEventSourceMappingsRequest: Codable, Sendable, Equatable {
    public var FunctionName: String?
    public var EventSourceArn: String?
}

public struct ListEventSourceMappingsAnswer: Codable, Sendable, Equatable {
    public var EventSourceMappings: [EventSourceMappingConfiguration]
}

/// GetEventSourceMapping's body.
public struct EventSourceMappingRequest: Codable, Sendable, Equatable {
    public var UUID: String
}

/// UpdateEventSourceMapping's body: what Nimbus changes of a trigger. Any other member Lambda knows
/// is kept in `otherMembers`, to be refused by name rather than ignored.
public struct UpdateEventSourceMappingRequest: Decodable, Sendable, Equatable {
    public var UUID: String
    public var FunctionName: String?
    public var Enabled: Bool?
    public var BatchSize: Int?
    public var MaximumBatchingWindowInSeconds: Int?
    public var otherMembers: [String] = []

    public init(UUID: String, FunctionName: String? = nil, Enabled: Bool? = nil, BatchSize: Int? = nil,
                MaximumBatchingWindowInSeconds: Int? = nil) {
        self.UUID = UUID
        self.FunctionName = FunctionName
        self.Enabled = Enabled
        self.BatchSize = BatchSize
        self.MaximumBatchingWindowInSeconds = MaximumBatchingWindowInSeconds
    }

    private enum Known: String, CodingKey, CaseIterable { case UUID, FunctionName, Enabled, BatchSize, MaximumBatchingWindowInSeconds }

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        let known = try decoder.container(keyedBy: Known.self)
        UUID = try known.decode(String.self, forKey: .UUID)
        FunctionName = try known.decodeIfPresent(String.self, forKey: .FunctionName)
        Enabled = try known.decodeIfPresent(Bool.self, forKey: .Enabled)
        BatchSize = try known.decodeIfPresent(Int.self, forKey: .BatchSize)
        MaximumBatchingWindowInSeconds = try known.decodeIfPresent(Int.self, forKey: .MaximumBatchingWindowInSeconds)
        let names = Set(Known.allCases.map(\.rawValue))
        otherMembers = try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue).filter { !names.contains($0) }.sorted()
    }
}

/// Lambda's ARNs.
public enum LambdaARN {
    public static func function(_ name: String, region: String, account: String) -> String {
        "arn:aws:lambda:\(region):\(account):function:\(name)"
    }

    public static func eventSourceMapping(_ uuid: String, region: String, account: String) -> String {
        "arn:aws:lambda:\(region):\(account):event-source-mapping:\(uuid)"
    }
}

enum LambdaTime {
    /// FunctionConfiguration.LastModified's format: `yyyy-MM-ddTHH:mm:ss.SSS+0000`.
    static func functionTimestamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSS'+0000'"
        return formatter.string(from: date)
    }
}

/// A UUID-shaped identifier that is the same every time for the same text: a trigger keeps its UUID
/// across restarts and across the instances of its worker, as a Lambda mapping keeps its own.
public enum StableID {
    public static func uuid(of text: String) -> String {
        // Two FNV-1a hashes with different offsets: 128 bits, no cryptography needed (nothing is secret).
        func fnv(_ basis: UInt64) -> UInt64 {
            var hash = basis
            for byte in text.utf8 {
                hash ^= UInt64(byte)
                hash = hash &* 0x0000_0100_0000_01B3
            }
            return hash
        }
        var high = fnv(0xCBF2_9CE4_8422_2325)
        var low = fnv(0x6C62_272E_07BB_0142)
        // RFC 9562's version 8 (custom) and variant bits, so the text reads as a well-formed UUID.
        high = (high & ~0xF000) | 0x8000
        low = (low & ~(0xC << 60)) | (0x8 << 60)
        let hex = String(format: "%016llx%016llx", high, low)
        let c = Array(hex)
        return "\(String(c[0..<8]))-\(String(c[8..<12]))-\(String(c[12..<16]))-\(String(c[16..<20]))-\(String(c[20..<32]))"
    }
}
