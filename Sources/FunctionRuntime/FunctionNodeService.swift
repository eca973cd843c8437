import Foundation
import Logging
import NimbusProtocol
import NimbusRuntime
import NimbusStack
import ServiceLifecycle
import Synchronization

/// A worker node hosting one function: its event source mappings (from the stack) feed it, and
/// Lambda's actions (`LambdaAction`) describe it, run it once with a given event (`lambda:Invoke`,
/// the console's Test button; `lambda:InvokeFunction`, Lambda's Invoke API) and enable, disable or
/// resize its triggers.
public struct FunctionNodeService: NodeService {
    let functionName: String
    let handler: FunctionHandler
    let configuration: NodeConfiguration
    /// The lease table stream workers share (declared in the stack).
    let leaseTable: String
    private let state = FunctionState()
    private let eventInvocations = EventInvocations()

    public init(configuration: NodeConfiguration, functionName: String, handler: FunctionHandler, leaseTable: String = StreamLeases.defaultTable) {
        self.configuration = configuration
        self.functionName = functionName
        self.handler = handler
        self.leaseTable = leaseTable
    }

    public var actions: Set<String> { LambdaAction.served }

    private var region: String { configuration.cluster.region }
    private var account: String { configuration.cluster.account }
    private var functionARN: String { LambdaARN.function(functionName, region: region, account: account) }

    /// As IAM authorizes Lambda: the function's ARN, a mapping's ARN for the actions on one mapping,
    /// "*" for the lists.
    public func resourceARN(for request: InboundRequest, runtime: NodeRuntime) -> String? {
        switch request.header.action {
        case LambdaAction.listFunctions, LambdaAction.listEventSourceMappings:
            return nil
        case LambdaAction.getEventSourceMapping, LambdaAction.updateEventSourceMapping:
            // A small body, on a rare action: read once here, decoded properly in `handle`.
            let object = try? JSONSerialization.jsonObject(with: request.body) as? [String: Any]
            guard let uuid = object?["UUID"] as? String else { return nil }
            return LambdaARN.eventSourceMapping(uuid, region: region, account: account)
        default:
            return functionARN
        }
    }

    public func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data {
        guard let hosted = await state.hosted else {
            throw WireError(.serviceUnavailable, "\(functionName) is still starting (its definition is not loaded yet)")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        switch request.header.action {
        case LambdaAction.invoke:
            return try await consoleInvoke(request.body, hosted: hosted, runtime: runtime)
        case LambdaAction.invokeFunction:
            let body = try request.decode(InvokeFunctionRequest.self)
            try checkName(body.FunctionName)
            return try encoder.encode(try await invoke(body, hosted: hosted, runtime: runtime))
        case LambdaAction.getFunction:
            try checkName(try request.decode(FunctionNameRequest.self).FunctionName)
            return try encoder.encode(GetFunctionAnswer(Configuration: hosted.configuration, Code: hosted.code))
        case LambdaAction.getFunctionConfiguration:
            try checkName(try request.decode(FunctionNameRequest.self).FunctionName)
            return try encoder.encode(hosted.configuration)
        case LambdaAction.listFunctions:
            return try encoder.encode(ListFunctionsAnswer(Functions: [hosted.configuration]))
        case LambdaAction.listEventSourceMappings:
            let filter = try request.decode(ListEventSourceMappingsRequest.self)
            let mappings = filter.FunctionName.map { $0 != functionName } ?? false
                ? [] : await hosted.mappings.configurations(eventSourceARN: filter.EventSourceArn)
            return try encoder.encode(ListEventSourceMappingsAnswer(EventSourceMappings: mappings))
        case LambdaAction.getEventSourceMapping:
            let uuid = try request.decode(EventSourceMappingRequest.self).UUID
            return try encoder.encode(try await hosted.mappings.configuration(uuid: uuid))
        case LambdaAction.updateEventSourceMapping:
            let change = try request.decode(UpdateEventSourceMappingRequest.self)
            return try encoder.encode(try await hosted.mappings.update(change))
        default:
            throw WireError(.invalidAction, "\(request.header.action ?? "") is not an action of \(functionName)'s worker")
        }
    }

    /// The endpoint resolves names and ARNs; a name that is not ours is another worker's function.
    private func checkName(_ name: String?) throws {
        if let name, name != functionName {
            throw WireError(code: "ResourceNotFoundException",
                            message: "Function not found: \(LambdaARN.function(name, region: region, account: account))")
        }
    }

    // MARK: Invocations

    /// An invocation ready to run: the event decoded for the function's trigger.
    typealias Prepared = (records: Int, run: @Sendable (FunctionContext) async throws -> BatchResponse)

    /// Decodes the event for the function's trigger; an event that does not fit is the caller's
    /// error (InvalidRequestContentException), as the console's Test button shows it.
    private func prepare(_ event: Data) throws -> Prepared {
        try Self.checkJSON(event)
        do {
            switch handler {
            case .sqs(let function):
                let decoded = try JSONDecoder().decode(SQSEvent.self, from: event)
                return (decoded.Records.count, { try await function.handle(decoded, context: $0) })
            case .stream(let function):
                let decoded = try JSONDecoder().decode(DynamoDBStreamEvent.self, from: event)
                return (decoded.Records.count, { try await function.handle(decoded, context: $0) })
            }
        } catch let error as DecodingError {
            throw WireError(code: "InvalidRequestContentException", message: "the event does not fit \(functionName)'s trigger: \(Self.describe(error))")
        }
    }

    /// Lambda takes any JSON document as an event, and nothing else.
    static func checkJSON(_ event: Data) throws {
        do {
            _ = try JSONSerialization.jsonObject(with: event, options: [.fragmentsAllowed])
        } catch {
            throw WireError(code: "InvalidRequestContentException", message: "Could not parse request body into json: the payload is not a JSON document")
        }
    }

    /// One run of the function, as Lambda's log stream shows it (START, the function's own lines, END,
    /// REPORT): its result as JSON, whether it failed, and its log.
    private func run(_ prepared: Prepared, hosted: Hosted,
                     runtime: NodeRuntime) async -> (payload: Data, failed: Bool, log: InvocationLog) {
        let requestID = UUID().uuidString.lowercased()
        let log = InvocationLog(requestID: requestID, upstream: runtime.logger)
        let started = ContinuousClock.now
        log.platform("START RequestId: \(requestID) Version: $LATEST")
        var payload: Data
        var failed = false
        do {
            let response = try await hosted.invoker.invoke(records: prepared.records, requestID: requestID, logger: log.functionLogger, prepared.run)
            payload = try JSONEncoder().encode(response)
        } catch {
            // Lambda's Invoke answers 200 with FunctionError set when the function itself fails.
            let type = (error as? WireError)?.code ?? String(describing: Swift.type(of: error))
            let message = (error as? WireError)?.message ?? "\(error)"
            log.append("\(Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)))\t\(requestID)\tERROR\t\(type): \(message)")
            payload = (try? JSONEncoder().encode(["errorMessage": message, "errorType": type])) ?? Data("{}".utf8)
            failed = true
        }
        let spent = (ContinuousClock.now - started).components
        let millis = Double(spent.seconds) * 1000 + Double(spent.attoseconds) / 1e15
        log.platform("END RequestId: \(requestID)")
        log.platform("REPORT RequestId: \(requestID)\tDuration: \((millis * 100).rounded() / 100) ms\tBilled Duration: \(Int(millis.rounded(.up))) ms\t"
                     + "Memory Size: \(hosted.invoker.definition.memorySize) MB")
        return (payload, failed, log)
    }

    /// lambda:Invoke: the body is the event; the answer keeps the shape the console and `nimbus invoke` read.
    private func consoleInvoke(_ event: Data, hosted: Hosted, runtime: NodeRuntime) async throws -> Data {
        let outcome = await run(try prepare(event), hosted: hosted, runtime: runtime)
        let failure = outcome.failed ? #""FunctionError":"Unhandled","# : ""
        return Data(#"{"StatusCode":200,\#(failure)"ExecutedVersion":"$LATEST","Payload":"#.utf8) + outcome.payload + Data("}".utf8)
    }

    /// lambda:InvokeFunction: Lambda's Invoke. Event runs the function after answering (retried twice
    /// on failure, a minute and then two apart, as Lambda retries asynchronous invocations); DryRun
    /// checks the event is JSON and the caller may invoke (already granted, to be here), and runs nothing.
    /// Like Lambda, Event and DryRun take any JSON event: one that does not fit the trigger fails the
    /// asynchronous invocation, in the worker's log.
    private func invoke(_ request: InvokeFunctionRequest, hosted: Hosted, runtime: NodeRuntime) async throws -> InvokeFunctionAnswer {
        let text = request.Payload ?? ""
        let event = Data((text.isEmpty ? "{}" : text).utf8)
        switch request.InvocationType ?? "RequestResponse" {
        case "RequestResponse":
            let outcome = await run(try prepare(event), hosted: hosted, runtime: runtime)
            return InvokeFunctionAnswer(StatusCode: 200, ExecutedVersion: "$LATEST", FunctionError: outcome.failed ? "Unhandled" : nil,
                                        LogResult: outcome.log.tailBase64, Payload: String(decoding: outcome.payload, as: UTF8.self))
        case "Event":
            try Self.checkJSON(event)
            guard eventInvocations.admit() else {
                throw WireError(code: "TooManyRequestsException",
                                message: "Rate Exceeded: \(functionName) has \(EventInvocations.limit) asynchronous invocations pending")
            }
            let admitted = eventInvocations
            let functionName = self.functionName
            let prepared: Prepared
            do {
                prepared = try prepare(event)
            } catch {
                admitted.finished()
                runtime.logger.warning("asynchronous invocation of \(functionName) failed: \((error as? WireError)?.message ?? "\(error)")")
                return InvokeFunctionAnswer(StatusCode: 202)
            }
            Task {
                defer { admitted.finished() }
                for (attempt, wait) in [0, 60, 120].enumerated() {
                    if wait > 0 { try? await Task.sleep(for: .seconds(wait)) }
                    let outcome = await run(prepared, hosted: hosted, runtime: runtime)
                    if !outcome.failed { return }
                    runtime.logger.warning("asynchronous invocation of \(functionName) failed (attempt \(attempt + 1) of 3): \(String(decoding: outcome.payload, as: UTF8.self))")
                }
            }
            return InvokeFunctionAnswer(StatusCode: 202)
        case "DryRun":
            try Self.checkJSON(event)
            return InvokeFunctionAnswer(StatusCode: 204)
        case let other:
            throw WireError(code: "InvalidParameterValueException", message: "InvocationType must be RequestResponse, Event or DryRun, not \(other)")
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
        guard let hosted = await state.hosted else { return ["function": functionName, "state": "loading"] }
        let invoker = hosted.invoker
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
        let invoker = FunctionInvoker(definition: definition, region: region, account: account, services: services, logger: runtime.logger)
        let python = PythonRuntime.start(definition, for: handler, configuration: configuration, logger: runtime.logger)
        // The stack's last change is when the function was last deployed (GetFunction's LastModified).
        let declaredAt = configuration.stackFile
            .flatMap { try? FileManager.default.attributesOfItem(atPath: $0.path)[.modificationDate] as? Date } ?? Date()
        let changesFile = configuration.dataDirectory.appendingPathComponent("functions").appendingPathComponent("\(functionName).mappings.json")
        let handler = self.handler
        let leaseTable = self.leaseTable
        let functionName = self.functionName
        let mappings = EventSourceMappingController(
            definition: definition, region: region, account: account, declaredAt: declaredAt, changesFile: changesFile,
            logger: runtime.logger
        ) { mapping, stop in
            switch handler {
            case .sqs(let function) where !mapping.isStream:
                var source = SQSEventSource(mapping: mapping, function: function, invoker: invoker, logger: runtime.logger)
                source.stop = stop
                await source.run()
            case .stream(let function) where mapping.isStream:
                let leases = StreamLeases(table: leaseTable, owner: runtime.identity.name + "/" + runtime.identity.incarnation,
                                          // Lambda's own bookkeeping: the service's identity, not the function's role.
                                          services: ClusterServices(client: runtime.platformClient))
                var source = StreamEventSource(mapping: mapping, function: function, invoker: invoker, leases: leases, logger: runtime.logger)
                source.stop = stop
                await source.run()
            default:
                runtime.logger.error("mapping \(mapping.eventSourceARN) does not fit \(functionName)'s handler; ignored")
            }
        }
        let executable = Bundle.main.executableURL ?? URL(fileURLWithPath: CommandLine.arguments[0])
        let codeSize = (try? FileManager.default.attributesOfItem(atPath: executable.path)[.size] as? NSNumber)?.intValue ?? 0
        let hosted = Hosted(invoker: invoker, mappings: mappings,
                            configuration: FunctionConfiguration(definition, region: region, account: account, lastModified: declaredAt,
                                                                 codeSize: codeSize),
                            code: FunctionCodeLocation(Location: executable.absoluteString))
        await mappings.start()
        await state.set(hosted)
        // Pollers stop when the node shuts down.
        try? await gracefulShutdown()
        await mappings.stopAll()
        python?.stop()
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

/// What the worker knows of its function once the definition is loaded (health and the actions may
/// be asked before).
struct Hosted: Sendable {
    let invoker: FunctionInvoker
    let mappings: EventSourceMappingController
    let configuration: FunctionConfiguration
    let code: FunctionCodeLocation
}

private actor FunctionState {
    var hosted: Hosted?
    func set(_ hosted: Hosted) { self.hosted = hosted }
}

/// Asynchronous invocations admitted and not yet finished (retries included), bounded so a burst of
/// Event invocations cannot pile up tasks without limit.
final class EventInvocations: Sendable {
    static let limit = 256
    private let pending = Atomic<Int>(0)

    func admit() -> Bool {
        if pending.wrappingAdd(1, ordering: .relaxed).newValue <= Self.limit { return true }
        pending.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    func finished() { pending.wrappingSubtract(1, ordering: .relaxed) }
}
