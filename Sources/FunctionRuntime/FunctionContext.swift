import Foundation
import Logging
import NimbusConfig
import NimbusRuntime
import NimbusProtocol
import QueueCore

/// How a function reaches the other services: one call per action, AWS JSON in and out. The worker
/// uses the node's Nimbus client; unit tests use a fake.
public protocol ServiceCalling: Sendable {
    /// Sends `body` as `action` (`dynamodb:PutItem`) to the service that owns the action and returns
    /// the answer's JSON; an AWS error is thrown as `WireError` with its code.
    func call(_ action: String, body: Data, timeout: Duration) async throws -> Data
}

/// A request a worker sends on every batch, written without JSONEncoder (a quarter of an ingest
/// worker's CPU went to Foundation's JSON coders); nil takes JSONEncoder.
public protocol HandWrittenRequest: Encodable {
    var handWrittenJSON: Data? { get }
}

/// An answer a worker reads on every batch without JSONDecoder; nil (anything outside the fast
/// reader's subset) takes JSONDecoder, so errors are still JSONDecoder's.
public protocol HandReadAnswer: Decodable {
    static func handRead(_ json: Data) -> Self?
}

extension ServiceCalling {
    public func call<Request: Encodable>(_ action: String, _ request: Request, timeout: Duration = .seconds(3)) async throws -> Data {
        let body = try (request as? any HandWrittenRequest)?.handWrittenJSON ?? JSONEncoder().encode(request)
        return try await call(action, body: body, timeout: timeout)
    }

    public func call<Request: Encodable, Response: Decodable>(_ action: String, _ request: Request, as: Response.Type,
                                                               timeout: Duration = .seconds(3)) async throws -> Response {
        let answer = try await call(action, request, timeout: timeout)
        if let reader = Response.self as? any HandReadAnswer.Type, let value = reader.handRead(answer) as? Response { return value }
        return try JSONDecoder().decode(Response.self, from: answer)
    }
}

extension ReceiveMessageResponse: HandReadAnswer {
    public static func handRead(_ json: Data) -> ReceiveMessageResponse? { SQSFastJSON.decodeReceiveMessageResponse(json) }
}

extension HandleBatchRequest: HandWrittenRequest {
    public var handWrittenJSON: Data? { SQSFastJSON.encode(self) }
}

/// Routes each action to the node that serves its service prefix, over the node's own client.
public struct ClusterServices: ServiceCalling {
    let client: NimbusClient

    public init(client: NimbusClient) { self.client = client }

    public func call(_ action: String, body: Data, timeout: Duration) async throws -> Data {
        let kind: ServiceKind
        switch action.prefix(while: { $0 != ":" }) {
        case "sqs": kind = .queue
        case "dynamodb": kind = .table
        case "sns": kind = .notifier
        case "iam", "sts": kind = .iam
        default: throw WireError(.invalidAction, "no Nimbus service answers \(action)")
        }
        return try await client.request(action, to: kind, body: body, timeout: timeout, attempts: 2)
    }
}

/// What Lambda's context object gives a handler, plus its way to the other services.
public struct FunctionContext: Sendable {
    public var functionName: String
    public var functionARN: String
    public var requestID: String
    /// The function's environment variables (from the stack's AWS::Lambda::Function).
    public var environment: [String: String]
    public var region: String
    public var account: String
    public var logger: Logger
    public var services: any ServiceCalling

    public init(functionName: String, functionARN: String, requestID: String = UUID().uuidString.lowercased(),
                environment: [String: String], region: String, account: String, logger: Logger, services: any ServiceCalling) {
        self.functionName = functionName
        self.functionARN = functionARN
        self.requestID = requestID
        self.environment = environment
        self.region = region
        self.account = account
        self.logger = logger
        self.services = services
    }
}

/// A function fed by a queue. Throwing fails the whole batch (nothing is deleted); returning failures
/// (with ReportBatchItemFailures) retries only those messages.
public protocol SQSFunction: Sendable {
    func handle(_ event: SQSEvent, context: FunctionContext) async throws -> BatchResponse
}

/// A function fed by a DynamoDB stream. Throwing retries the batch (the shard waits: order is kept);
/// returning failures (sequence numbers) checkpoints before the first and retries from it.
public protocol StreamFunction: Sendable {
    func handle(_ event: DynamoDBStreamEvent, context: FunctionContext) async throws -> BatchResponse
}

/// The handler a worker hosts.
public enum FunctionHandler: Sendable {
    case sqs(any SQSFunction)
    case stream(any StreamFunction)
}
