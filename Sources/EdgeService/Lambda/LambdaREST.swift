import Foundation
import NimbusRuntime

/// Lambda's REST API (`/2015-03-31/functions/...`, AWS Lambda API reference 2015-03-31): the routes the
/// edge serves, each turned into the nimbus/1 request of the worker that hosts the function. The
/// workers answer in Lambda's JSON shapes (FunctionRuntime's `LambdaAction`, `LambdaAPI.swift`); the edge
/// resolves names and ARNs, picks the worker, pages lists and moves Invoke's parts between headers and
/// body. The action a request is forwarded as is "lambda:" and the IAM action that authorizes it.
///
/// A function is hosted by the worker kind the lab names after it (`ServiceKind.labName`: POC-Lambda-1
/// is ingest-worker's), at instance 1; a trigger change goes to every instance of the kind, since each
/// runs pollers.
public struct LambdaREST: Sendable {
    public init() {}

    public typealias Send = @Sendable (_ action: String, _ kind: ServiceKind, _ instance: Int, _ body: Data) async throws -> Data
    /// Authorizes the caller for an action on "*" when no worker is asked (and so none authorizes).
    public typealias Authorize = @Sendable (_ action: String) async throws -> Void

    /// Whether `request` is a Lambda REST call (by its path).
    public static func matches(_ request: EdgeRequest) -> Bool {
        request.rawPath.hasPrefix("/2015-03-31/") || request.rawPath.hasPrefix("/2014-11-13/") || request.rawPath.hasPrefix("/2019-09-25/")
            || request.rawPath.hasPrefix("/2017-03-31/") || request.rawPath.hasPrefix("/2018-10-31/")
    }

    /// Serves one Lambda REST request; `send` forwards a nimbus/1 request (action, node kind and
    /// instance, body) on the caller's behalf.
    public func handle(_ request: EdgeRequest, cluster: ClusterConfig, send: @escaping Send,
                       authorize: @escaping Authorize = { _ in }) async -> EdgeResponse {
        let context = Context(request: request, cluster: cluster, send: send, authorize: authorize)
        do {
            switch try Route(method: request.method, rawPath: request.rawPath) {
            case .listFunctions: return try await context.listFunctions()
            case .getFunction(let name): return try await context.getFunction(name, action: "lambda:GetFunction")
            case .getFunctionConfiguration(let name): return try await context.getFunction(name, action: "lambda:GetFunctionConfiguration")
            case .invoke(let name): return try await context.invoke(name)
            case .invokeAsync(let name): return try await context.invokeAsync(name)
            case .listEventSourceMappings: return try await context.listEventSourceMappings()
            case .getEventSourceMapping(let uuid): return try await context.getEventSourceMapping(uuid)
            case .updateEventSourceMapping(let uuid): return try await context.updateEventSourceMapping(uuid)
            case .notYet(let operation):
                let what = operation.contains("EventSourceMapping") ? "the triggers" : "the functions"
                throw EdgeError("InvalidParameterValueException", "Nimbus runs \(what) its stack declares; \(operation) is not supported yet")
            case .unknown:
                throw EdgeError("UnknownOperationException", "Nimbus does not serve Lambda's \(request.method) \(request.path)", status: 404)
            }
        } catch let error as EdgeError {
            return Self.error(error, requestID: request.requestID)
        } catch let error as WireError {
            return Self.error(EdgeError.from(error), requestID: request.requestID)
        } catch {
            return Self.error(EdgeError("ServiceException", "\(error)", status: 500, sender: false), requestID: request.requestID)
        }
    }

    /// Lambda's error shape: `x-amzn-ErrorType` and a JSON body with `Type` and the message, spelled
    /// `Message` or `message` as Lambda's model spells it for that error (the SDKs read either).
    public static func error(_ error: EdgeError, requestID: String) -> EdgeResponse {
        let code: String
        var status = error.status
        switch error.code {
        case "InvalidClientTokenId": code = "UnrecognizedClientException"
        case "SignatureDoesNotMatch", "RequestExpired", "IncompleteSignature": code = "InvalidSignatureException"
        case "AccessDenied": code = "AccessDeniedException"
        case "ServiceException", "ServiceUnavailable", "RequestTimeout", "InternalFailure", "InternalError", "InternalServerError":
            code = "ServiceException"
            status = max(status, 500)
        case "ThrottlingException", "Throttling", "RequestThrottled", "TooManyRequestsException":
            code = "TooManyRequestsException"
            status = 429
        case "NotFound", "NoSuchEntity", "ResourceNotFoundException":
            code = "ResourceNotFoundException"
            status = 404
        case "InvalidParameterValue", "MissingParameter", "SerializationException", "InvalidParameterCombination":
            code = "InvalidParameterValueException"
        default:
            code = error.code
            // A worker's own Lambda error comes through nimbus/1 without its status: Lambda's model has it.
            if let modelled = Self.modelledStatus[code] { status = modelled }
        }
        let messageKey = Self.capitalMessage.contains(code) ? "Message" : "message"
        let object: [String: String] = ["Type": status < 500 ? "User" : "Service", messageKey: error.message]
        let body = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return EdgeResponse(status: status, headers: [("Content-Type", "application/json"), ("x-amzn-ErrorType", code),
                                                      ("x-amzn-RequestId", requestID)], body: body)
    }

    /// The errors whose model member is `Message` (the others' is `message`).
    static let capitalMessage: Set<String> = ["ResourceNotFoundException", "ServiceException", "ResourceInUseException",
                                              "InvalidRuntimeException", "RecursiveInvocationException"]

    static let modelledStatus: [String: Int] = [
        "ResourceConflictException": 409, "RequestTooLargeException": 413, "UnsupportedMediaTypeException": 415,
        "ResourceNotReadyException": 502, "InvalidRuntimeException": 502,
    ]
}

// MARK: Routes

extension LambdaREST {
    /// The operation a method and path name, with its path parameters decoded.
    enum Route: Equatable {
        case listFunctions
        case getFunction(String)
        case getFunctionConfiguration(String)
        case invoke(String)
        /// The 2014-11-13 InvokeAsync: an Event invocation.
        case invokeAsync(String)
        case listEventSourceMappings
        case getEventSourceMapping(String)
        case updateEventSourceMapping(String)
        /// An operation of Lambda's that Nimbus does not serve yet (it names it).
        case notYet(String)
        case unknown

        init(method: String, rawPath: String) throws(EdgeError) {
            // Split before decoding: an encoded "/" inside a name must not make a new segment.
            var segments: [String] = []
            for raw in rawPath.split(separator: "/", omittingEmptySubsequences: true) {
                guard let decoded = String(raw).removingPercentEncoding else {
                    throw EdgeError("ValidationException", "The path \(rawPath) is not validly percent-encoded")
                }
                segments.append(decoded)
            }
            guard let version = segments.first else { self = .unknown; return }
            let rest = Array(segments.dropFirst())
            switch (version, method, rest.first, rest.count) {
            case ("2015-03-31", "GET", "functions", 1): self = .listFunctions
            case ("2015-03-31", "POST", "functions", 1): self = .notYet("CreateFunction")
            case ("2015-03-31", "GET", "functions", 2): self = .getFunction(rest[1])
            case ("2015-03-31", "DELETE", "functions", 2): self = .notYet("DeleteFunction")
            case ("2015-03-31", _, "functions", 3):
                switch (method, rest[2]) {
                case ("GET", "configuration"): self = .getFunctionConfiguration(rest[1])
                case ("PUT", "configuration"): self = .notYet("UpdateFunctionConfiguration")
                case ("PUT", "code"): self = .notYet("UpdateFunctionCode")
                case ("POST", "invocations"): self = .invoke(rest[1])
                default: self = .unknown
                }
            case ("2014-11-13", "POST", "functions", 3) where rest[2] == "invoke-async": self = .invokeAsync(rest[1])
            case ("2015-03-31", "GET", "event-source-mappings", 1): self = .listEventSourceMappings
            case ("2015-03-31", "POST", "event-source-mappings", 1): self = .notYet("CreateEventSourceMapping")
            case ("2015-03-31", "GET", "event-source-mappings", 2): self = .getEventSourceMapping(rest[1])
            case ("2015-03-31", "PUT", "event-source-mappings", 2): self = .updateEventSourceMapping(rest[1])
            case ("2015-03-31", "DELETE", "event-source-mappings", 2): self = .notYet("DeleteEventSourceMapping")
            default: self = .unknown
            }
        }
    }

    /// A function named by its name, partial ARN (`ACCOUNT:function:NAME`) or ARN, each with an
    /// optional `:QUALIFIER`.
    struct FunctionName: Equatable {
        var name: String
        var qualifier: String?

        init(name: String, qualifier: String?) {
            self.name = name
            self.qualifier = qualifier
        }

        init(_ text: String, region: String, account: String) throws(EdgeError) {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            let notFound = EdgeError("ResourceNotFoundException", "Function not found: \(text)", status: 404)
            var rest: ArraySlice<String>
            if parts.first == "arn" {
                guard parts.count >= 7, parts[1].hasPrefix("aws"), parts[2] == "lambda", parts[5] == "function" else { throw Self.invalid(text) }
                guard parts[3] == region, parts[4] == account else { throw notFound }
                rest = parts[6...]
            } else if parts.count >= 3, parts[1] == "function" {
                guard parts[0].count == 12, parts[0].allSatisfy(\.isNumber) else { throw Self.invalid(text) }
                guard parts[0] == account else { throw notFound }
                rest = parts[2...]
            } else {
                rest = parts[...]
            }
            guard (1...2).contains(rest.count), let name = rest.first, Self.isName(name) else { throw Self.invalid(text) }
            self.name = name
            qualifier = rest.count == 2 ? rest.last : nil
            if let qualifier, qualifier.isEmpty || qualifier.count > 128 { throw Self.invalid(text) }
        }

        /// Lambda's function names: letters, digits, hyphens and underscores, at most 64.
        static func isName(_ text: String) -> Bool {
            (1...64).contains(text.count) && text.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_"
            }
        }

        static func invalid(_ text: String) -> EdgeError {
            EdgeError("ValidationException",
                      "1 validation error detected: Value '\(text)' at 'functionName' failed to satisfy constraint: Member must be a function "
                      + "name (letters, digits, - and _, up to 64 characters), a partial ARN (ACCOUNT:function:NAME) or a function ARN, "
                      + "each with an optional :QUALIFIER")
        }
    }
}

// MARK: Operations

extension LambdaREST {
    /// One request being served: what the operations share.
    struct Context {
        let request: EdgeRequest
        let cluster: ClusterConfig
        let send: Send
        let authorize: Authorize

        var query: [(String, String)] { request.queryParameters }

        func queryValue(_ name: String) -> String? { query.last { $0.0 == name }?.1 }

        func functionARN(_ name: String, qualifier: String? = nil) -> String {
            "arn:aws:lambda:\(cluster.region):\(cluster.account):function:\(name)" + (qualifier.map { ":\($0)" } ?? "")
        }

        /// The worker kinds that host functions.
        static var workerKinds: [ServiceKind] { ServiceKind.allCases.filter(\.isWorker) }

        /// The worker kind hosting function `name`: the one the lab names after it.
        static func host(of name: String) -> ServiceKind? { workerKinds.first { $0.labName == name } }

        /// The function a path or parameter names, with its host; unknown or qualified by anything but
        /// $LATEST (Nimbus publishes no versions or aliases), ResourceNotFoundException.
        func resolve(_ text: String) throws(EdgeError) -> (name: String, kind: ServiceKind) {
            var function = try FunctionName(text, region: cluster.region, account: cluster.account)
            if let given = queryValue("Qualifier") {
                if let derived = function.qualifier, derived != given {
                    throw EdgeError("InvalidParameterValueException", "The derived qualifier from the function name does not match the specified qualifier.")
                }
                function.qualifier = given
            }
            guard let kind = Self.host(of: function.name), function.qualifier == nil || function.qualifier == "$LATEST" else {
                throw EdgeError("ResourceNotFoundException", "Function not found: \(functionARN(function.name, qualifier: function.qualifier))", status: 404)
            }
            return (function.name, kind)
        }

        /// Forwards to instance `instance` of `kind`; a kind with no instances, or a worker that does not
        /// answer, is ServiceException 503 naming it (the function's configuration lives with its worker).
        func ask(_ action: String, _ kind: ServiceKind, instance: Int = 1, _ body: Any, about what: String) async throws -> Data {
            guard cluster.instances(kind) >= instance else {
                throw EdgeError("ServiceException", "\(what) runs in \(kind.rawValue), of which this cluster runs no instance "
                                + "(services.\(kind.rawValue).instances: \(cluster.instances(kind))); its configuration lives with that worker",
                                status: 503, sender: false)
            }
            let data = try JSONSerialization.data(withJSONObject: body, options: [.withoutEscapingSlashes])
            do {
                return try await send(action, kind, instance, data)
            } catch let error as WireError where ["ServiceUnavailable", "RequestTimeout"].contains(error.code) {
                throw EdgeError("ServiceException", "\(kind.instanceName(instance)), which hosts \(what), is unavailable: \(error.message)",
                                status: 503, sender: false)
            }
        }

        static func object(_ data: Data) throws -> [String: Any] {
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw EdgeError("ServiceException", "a worker answered with something other than a JSON object", status: 500, sender: false)
            }
            return object
        }

        func json(_ object: Any, status: Int = 200) throws -> EdgeResponse {
            let body = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            return json(body, status: status)
        }

        func json(_ body: Data, status: Int = 200) -> EdgeResponse {
            EdgeResponse(status: status, headers: [("Content-Type", "application/json"), ("x-amzn-RequestId", request.requestID)], body: body)
        }

        /// MaxItems: 1 up to `limit` (more is answered as `limit`, as Lambda caps ListFunctions at 50).
        func maxItems(default fallback: Int, limit: Int) throws(EdgeError) -> Int {
            guard let text = queryValue("MaxItems") else { return fallback }
            guard let value = Int(text), value >= 1 else {
                throw EdgeError("ValidationException", "1 validation error detected: Value '\(text)' at 'maxItems' failed to satisfy constraint: "
                                + "Member must have value greater than or equal to 1")
            }
            return min(value, limit)
        }

        /// One page of `items` (sorted by `key`): from the first whose key is at least the Marker, at
        /// most `size`; the next page's marker is the key of its first item.
        static func page(_ items: [[String: Any]], key: String, marker: String?, size: Int) -> (items: [[String: Any]], next: String?) {
            let keyed = items.map { ($0[key] as? String ?? "", $0) }.sorted { $0.0 < $1.0 }
            let start = marker.map { marker in keyed.firstIndex { $0.0 >= marker } ?? keyed.count } ?? 0
            let end = min(keyed.count, start + size)
            return (keyed[start..<end].map(\.1), end < keyed.count ? keyed[end].0 : nil)
        }

        // MARK: Functions

        func listFunctions() async throws -> EdgeResponse {
            let size = try maxItems(default: 50, limit: 50)
            var functions: [[String: Any]] = []
            let hosting = Self.workerKinds.filter { cluster.instances($0) > 0 }
            // With no worker to ask, none authorizes the list: the caller is checked here instead.
            if hosting.isEmpty { try await authorize("lambda:ListFunctions") }
            // A kind with no instances hosts nothing in this cluster: its function is not listed.
            for kind in hosting {
                let answer = try Self.object(try await ask("lambda:ListFunctions", kind, [String: Any](), about: "\(kind.labName)"))
                functions += answer["Functions"] as? [[String: Any]] ?? []
            }
            let (items, next) = Self.page(functions, key: "FunctionName", marker: queryValue("Marker"), size: size)
            var out: [String: Any] = ["Functions": items]
            if let next { out["NextMarker"] = next }
            return try json(out)
        }

        /// GetFunction or GetFunctionConfiguration: the worker answers Lambda's shape already.
        func getFunction(_ text: String, action: String) async throws -> EdgeResponse {
            let (name, kind) = try resolve(text)
            return json(try await ask(action, kind, ["FunctionName": name], about: name))
        }

        // MARK: Invoke

        /// Invoke: X-Amz-Invocation-Type and X-Amz-Log-Type in, the event as the body; the status
        /// (200, 202, 204), X-Amz-Executed-Version, X-Amz-Function-Error, X-Amz-Log-Result (Tail) and
        /// the function's result out.
        func invoke(_ text: String) async throws -> EdgeResponse {
            let type = request.headers["x-amz-invocation-type"] ?? "RequestResponse"
            guard ["RequestResponse", "Event", "DryRun"].contains(type) else {
                throw EdgeError("ValidationException", "1 validation error detected: Value '\(type)' at 'invocationType' failed to satisfy "
                                + "constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]")
            }
            let logType = request.headers["x-amz-log-type"] ?? "None"
            guard ["None", "Tail"].contains(logType) else {
                throw EdgeError("ValidationException", "1 validation error detected: Value '\(logType)' at 'logType' failed to satisfy "
                                + "constraint: Member must satisfy enum value set: [Tail, None]")
            }
            return try await invoke(text, type: type, logType: logType, async: false)
        }

        /// The 2014-11-13 InvokeAsync: an Event invocation answered `{"Status": 202}`.
        func invokeAsync(_ text: String) async throws -> EdgeResponse {
            try await invoke(text, type: "Event", logType: "None", async: true)
        }

        private func invoke(_ text: String, type: String, logType: String, async legacy: Bool) async throws -> EdgeResponse {
            let (name, kind) = try resolve(text)
            // Lambda's payload quotas: 6 MB for a synchronous invocation, 1 MB for an asynchronous one.
            let limit = type == "Event" ? 1_048_576 : 6_291_456
            guard request.body.count <= limit else {
                throw EdgeError("RequestTooLargeException", "Request must be smaller than \(limit) bytes for the \(legacy ? "InvokeAsync" : "InvokeFunction") operation",
                                status: 413)
            }
            guard let payload = String(data: request.body, encoding: .utf8) else {
                throw EdgeError("InvalidRequestContentException", "Could not parse request body into json: the payload is not UTF-8")
            }
            let body: [String: Any] = ["FunctionName": name, "InvocationType": type, "LogType": logType, "Payload": payload]
            let answer = try Self.object(try await ask("lambda:InvokeFunction", kind, body, about: name))
            let status = answer["StatusCode"] as? Int ?? 200
            if legacy { return try json(["Status": 202], status: 202) }
            var headers: [(String, String)] = [("Content-Type", "application/json"), ("x-amzn-RequestId", request.requestID)]
            if let version = answer["ExecutedVersion"] as? String { headers.append(("X-Amz-Executed-Version", version)) }
            if let failure = answer["FunctionError"] as? String { headers.append(("X-Amz-Function-Error", failure)) }
            if logType == "Tail", let log = answer["LogResult"] as? String { headers.append(("X-Amz-Log-Result", log)) }
            let result = type == "RequestResponse" ? Data((answer["Payload"] as? String ?? "").utf8) : Data()
            return EdgeResponse(status: status, headers: headers, body: result)
        }

        // MARK: Event source mappings

        func listEventSourceMappings() async throws -> EdgeResponse {
            let size = try maxItems(default: 100, limit: 10_000)
            var filter: [String: Any] = [:]
            var kinds = Self.workerKinds.filter { cluster.instances($0) > 0 }
            var about = "the triggers"
            if let text = queryValue("FunctionName") {
                let (name, kind) = try resolve(text)
                filter["FunctionName"] = name
                kinds = [kind]
                about = name
            }
            if let source = queryValue("EventSourceArn") { filter["EventSourceArn"] = source }
            if kinds.isEmpty { try await authorize("lambda:ListEventSourceMappings") }
            var mappings: [[String: Any]] = []
            for kind in kinds {
                let answer = try Self.object(try await ask("lambda:ListEventSourceMappings", kind, filter, about: about))
                mappings += answer["EventSourceMappings"] as? [[String: Any]] ?? []
            }
            let (items, next) = Self.page(mappings, key: "UUID", marker: queryValue("Marker"), size: size)
            var out: [String: Any] = ["EventSourceMappings": items]
            if let next { out["NextMarker"] = next }
            return try json(out)
        }

        func getEventSourceMapping(_ uuid: String) async throws -> EdgeResponse {
            json(try await findMapping(uuid, action: "lambda:GetEventSourceMapping", body: ["UUID": uuid]).answer)
        }

        /// UpdateEventSourceMapping: at the worker kind whose trigger it is, on every instance (each
        /// runs pollers); answered with instance 1's view, 202 as Lambda does.
        func updateEventSourceMapping(_ uuid: String) async throws -> EdgeResponse {
            var body: [String: Any] = [:]
            if !request.body.isEmpty {
                guard let object = try? JSONSerialization.jsonObject(with: request.body) as? [String: Any] else {
                    throw EdgeError("InvalidRequestContentException", "Could not parse request body into json: the body must be a JSON object")
                }
                body = object
            }
            if let text = body["FunctionName"] as? String { body["FunctionName"] = try resolve(text).name }
            body["UUID"] = uuid
            let (kind, answer) = try await findMapping(uuid, action: "lambda:UpdateEventSourceMapping", body: body)
            var missed: [String] = []
            let instances = cluster.instances(kind)
            if instances > 1 {
                for instance in 2...instances {
                    do {
                        _ = try await ask("lambda:UpdateEventSourceMapping", kind, instance: instance, body, about: "trigger \(uuid)")
                    } catch {
                        missed.append("\(kind.instanceName(instance)) (\((error as? EdgeError)?.message ?? (error as? WireError)?.message ?? "\(error)"))")
                    }
                }
            }
            guard missed.isEmpty else {
                throw EdgeError("ServiceException", "The change to \(uuid) reached \(kind.instanceName(1)) but not \(missed.joined(separator: ", ")); "
                                + "send it again", status: 503, sender: false)
            }
            return json(answer, status: 202)
        }

        /// The worker kind holding mapping `uuid` and its answer to `action`: asked of each kind in turn
        /// (a kind that does not hold it answers ResourceNotFoundException, and changes nothing).
        func findMapping(_ uuid: String, action: String, body: [String: Any]) async throws -> (kind: ServiceKind, answer: Data) {
            var unanswered: [String] = []
            for kind in Self.workerKinds where cluster.instances(kind) > 0 {
                do {
                    return (kind, try await ask(action, kind, body, about: "\(kind.labName)'s triggers"))
                } catch let error as WireError where error.code == "ResourceNotFoundException" {
                    continue
                } catch let error as EdgeError where error.code == "ServiceException" && error.status == 503 {
                    unanswered.append(error.message)
                }
            }
            guard unanswered.isEmpty else {
                throw EdgeError("ServiceException", "Cannot tell whether event source mapping \(uuid) exists: \(unanswered.joined(separator: "; "))",
                                status: 503, sender: false)
            }
            throw EdgeError("ResourceNotFoundException", "The resource you requested does not exist.", status: 404)
        }
    }
}
