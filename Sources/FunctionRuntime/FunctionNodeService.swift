import Foundation
import Logging
import NimbusProtocol
import NimbusRuntime
import NimbusStack
import ServiceLifecycle

/// A worker node hosting one function: its event source mappings (from the stack) feed it, and
/// `lambda:Invoke` runs it once with a given event (the console's Test button).
public struct FunctionNodeService: NodeService {
    let functionName: String
    let handler: FunctionHandler
    let configuration: NodeConfiguration
    /// The lease table stream workers share (declared in the stack).
    let leaseTable: String
    private let state = FunctionState()

    public init(configuration: NodeConfiguration, functionName: String, handler: FunctionHandler, leaseTable: String = StreamLeases.defaultTable) {
        self.configuration = configuration
        self.functionName = functionName
        self.handler = handler
        self.leaseTable = leaseTable
    }

    public var actions: Set<String> { [LambdaAction.invoke] }

    public func resourceARN(for request: InboundRequest, runtime: NodeRuntime) -> String? {
        "arn:aws:lambda:\(configuration.cluster.region):\(configuration.cluster.account):function:\(functionName)"
    }

    public func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data {
        guard let invoker = await state.invoker else {
            throw WireError(.serviceUnavailable, "\(functionName) is still starting (its definition is not loaded yet)")
        }
        // As Lambda's log stream shows a test: START, the function's own lines, END and REPORT
        // (the console returns the lines written meanwhile). Only for Invoke, not for the pollers.
        let requestID = UUID().uuidString.lowercased()
        let started = ContinuousClock.now
        runtime.logger.info("START RequestId: \(requestID) Version: $LATEST")
        defer {
            let spent = (ContinuousClock.now - started).components
            let millis = Double(spent.seconds) * 1000 + Double(spent.attoseconds) / 1e15
            runtime.logger.info("END RequestId: \(requestID)")
            runtime.logger.info("REPORT RequestId: \(requestID) Duration: \((millis * 100).rounded() / 100) ms")
        }
        // Lambda's Invoke answers 200 with FunctionError set when the function itself fails.
        do {
            let response: BatchResponse
            switch handler {
            case .sqs(let function):
                let event = try JSONDecoder().decode(SQSEvent.self, from: request.body)
                response = try await invoker.invoke(records: event.Records.count) { try await function.handle(event, context: $0) }
            case .stream(let function):
                let event = try JSONDecoder().decode(DynamoDBStreamEvent.self, from: request.body)
                response = try await invoker.invoke(records: event.Records.count) { try await function.handle(event, context: $0) }
            }
            struct Answer: Encodable { var StatusCode = 200; var ExecutedVersion = "$LATEST"; var Payload: BatchResponse }
            return try JSONEncoder().encode(Answer(Payload: response))
        } catch let error as DecodingError {
            throw WireError(code: "InvalidRequestContentException", message: "the event does not fit \(functionName)'s trigger: \(Self.describe(error))")
        } catch {
            struct Failure: Encodable {
                var StatusCode = 200
                var FunctionError = "Unhandled"
                var Payload: [String: String]
            }
            let type = (error as? WireError)?.code ?? String(describing: Swift.type(of: error))
            return try JSONEncoder().encode(Failure(Payload: ["errorMessage": "\(error)", "errorType": type]))
        }
    }

    static func describe(_ error: DecodingError) -> String {
        // Records[0].eventID, as a person would write the path.
        func path(_ keys: [any CodingKey]) -> String {
            keys.reduce("") { out, key in key.intValue.map { out + "[\($0)]" } ?? (out.isEmpty ? key.stringValue : out + "." + key.stringValue) }
        }
        switch error {
        case .keyNotFound(let key, let context): return "missing \(path(context.codingPath + [key]))"
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            return "bad value at \(path(context.codingPath)) (\(context.debugDescription))"
        @unknown default: return "\(error)"
        }
    }

    public func healthDetails() async -> [String: String] {
        guard let invoker = await state.invoker else { return ["function": functionName, "state": "loading"] }
        let s = invoker.statistics
        return ["function": functionName, "invocations": "\(s.invocations)", "errors": "\(s.errors)", "records": "\(s.records)",
                "failedRecords": "\(s.failedRecords)", "mappings": "\(invoker.definition.mappings.count)",
                "busyMicroseconds": "\(invoker.busyMicroseconds)"]
    }

    public func run(runtime: NodeRuntime) async throws {
        let services = ClusterServices(client: runtime.client)
        let definition: FunctionDefinition
        do {
            // Resolving the stack's references (a table's StreamArn) is CloudFormation's work, not the
            // function's: done with the platform's identity.
            definition = try await loadDefinition(services: ClusterServices(client: runtime.platformClient), logger: runtime.logger)
        } catch {
            runtime.logger.error("function \(functionName): \(error)")
            try? await gracefulShutdown()
            return
        }
        let invoker = FunctionInvoker(definition: definition, region: configuration.cluster.region, account: configuration.cluster.account,
                                      services: services, logger: runtime.logger)
        await state.set(invoker)
        await withTaskGroup(of: Void.self) { group in
            for mapping in definition.mappings where mapping.enabled {
                switch handler {
                case .sqs(let function) where !mapping.isStream:
                    group.addTask {
                        await SQSEventSource(mapping: mapping, function: function, invoker: invoker, logger: runtime.logger).run()
                    }
                case .stream(let function) where mapping.isStream:
                    let leases = StreamLeases(table: leaseTable, owner: runtime.identity.name + "/" + runtime.identity.incarnation,
                                               // Lambda's own bookkeeping: the service's identity, not the function's role.
                                               services: ClusterServices(client: runtime.platformClient))
                    group.addTask {
                        await StreamEventSource(mapping: mapping, function: function, invoker: invoker, leases: leases, logger: runtime.logger).run()
                    }
                default:
                    runtime.logger.error("mapping \(mapping.eventSourceARN) does not fit \(functionName)'s handler; ignored")
                }
            }
            // Pollers stop when the node shuts down.
            group.addTask { try? await gracefulShutdown() }
            await group.next()
            group.cancelAll()
        }
    }

    /// The function's definition from the stack; a table's StreamArn needs the table node's answer.
    func loadDefinition(services: any ServiceCalling, logger: Logger) async throws -> FunctionDefinition {
        guard let file = configuration.stackFile else { throw FunctionDefinitionError(description: "no stack file configured") }
        let template = try StackTemplate.load(path: file.path)
        var streamARNs: [String: String] = [:]
        for table in template.resources(ofType: "AWS::DynamoDB::Table") {
            guard case .map(let spec)? = table.properties["StreamSpecification"], !spec.isEmpty,
                  case .string(let name)? = table.properties["TableName"] else { continue }
            streamARNs[table.logicalID] = try await latestStreamARN(name, services: services, logger: logger)
        }
        let resolver = StackResolver(template: template, region: configuration.cluster.region, account: configuration.cluster.account,
                                     getAtt: { id, attribute in attribute == "StreamArn" ? streamARNs[id] : nil })
        return try FunctionDefinition.load(functionName, template: template, resolver: resolver)
    }

    private func latestStreamARN(_ table: String, services: any ServiceCalling, logger: Logger) async throws -> String {
        struct Answer: Decodable { var Streams: [Stream]; struct Stream: Decodable { var StreamArn: String } }
        var delay = Duration.milliseconds(100)
        while true {
            try Task.checkCancellation()
            if let arn = try? await services.call("dynamodb:ListStreams", ["TableName": table], as: Answer.self).Streams.last?.StreamArn {
                return arn
            }
            logger.info("waiting for table \(table)'s stream")
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
        }
    }
}

/// The invoker, once the definition is loaded (health and Invoke may be asked before).
private actor FunctionState {
    var invoker: FunctionInvoker?
    func set(_ invoker: FunctionInvoker) { self.invoker = invoker }
}
