import Foundation
import NimbusRuntime
import Synchronization
import Testing
@testable import EdgeService

/// Lambda's REST API at the edge: routes, function names and ARNs, which worker each request goes to
/// (a fake `send` stands in for the workers), and how answers and errors are shaped for the SDKs
/// (botocore's rest-json parser: status, x-amzn-ErrorType, Invoke's X-Amz-* headers).
@Suite struct LambdaRESTTests {
    static let region = "us-east-1"
    static let account = "000000000000"
    static let arn1 = "arn:aws:lambda:us-east-1:000000000000:function:POC-Lambda-1"

    /// What the fake workers were asked, in order.
    final class Calls: Sendable {
        struct Call: Sendable {
            var action: String
            var kind: ServiceKind
            var instance: Int
            var body: [String: String]
            var raw: Data
        }

        private let list = Mutex<[Call]>([])
        func append(_ call: Call) { list.withLock { $0.append(call) } }
        var all: [Call] { list.withLock { $0 } }
    }

    static func request(_ method: String, _ path: String, query: String = "", headers: [String: String] = [:], body: String = "") -> EdgeRequest {
        EdgeRequest(method: method, rawPath: path, rawQuery: query, headers: headers, rawBody: Data(body.utf8), requestID: "req-1")
    }

    static func cluster(instances: [ServiceKind: Int] = [:]) -> ClusterConfig {
        var config = ClusterConfig()
        for (kind, count) in instances { config.services[kind]?.instances = count }
        return config
    }

    /// Serves `request` against fake workers: `answer` gives each worker's reply (or throws its error).
    static func serve(_ request: EdgeRequest, cluster: ClusterConfig = cluster(), calls: Calls = Calls(),
                      answer: @escaping @Sendable (String, ServiceKind, Int, [String: Any]) throws -> Any = LambdaRESTTests.labWorkers)
        async -> EdgeResponse {
        await LambdaREST().handle(request, cluster: cluster) { action, kind, instance, body in
            let object = (try? JSONSerialization.jsonObject(with: body) as? [String: Any]) ?? [:]
            calls.append(.init(action: action, kind: kind, instance: instance, body: object.compactMapValues { $0 as? String }, raw: body))
            let reply = try answer(action, kind, instance, object)
            if let data = reply as? Data { return data }
            return try JSONSerialization.data(withJSONObject: reply)
        }
    }

    static func configuration(_ name: String) -> [String: Any] {
        ["FunctionName": name, "FunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:\(name)", "Timeout": 3, "State": "Active"]
    }

    static func mapping(_ uuid: String, function: String) -> [String: Any] {
        ["UUID": uuid, "FunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:\(function)", "State": "Enabled", "BatchSize": 10]
    }

    /// The lab's two workers: ingest-worker hosts POC-Lambda-1 (mapping aaaa...), stream-worker
    /// POC-Lambda-2 (mapping bbbb...).
    @Sendable static func labWorkers(_ action: String, _ kind: ServiceKind, _ instance: Int, _ body: [String: Any]) throws -> Any {
        let function = kind == .ingestWorker ? "POC-Lambda-1" : "POC-Lambda-2"
        let uuid = kind == .ingestWorker ? "aaaaaaaa-0000-8000-8000-000000000001" : "bbbbbbbb-0000-8000-8000-000000000002"
        switch action {
        case "lambda:ListFunctions": return ["Functions": [configuration(function)]]
        case "lambda:GetFunction": return ["Configuration": configuration(function), "Code": ["RepositoryType": "Nimbus", "Location": "file:///bin"]]
        case "lambda:GetFunctionConfiguration": return configuration(function)
        case "lambda:InvokeFunction":
            switch body["InvocationType"] as? String {
            case "Event": return ["StatusCode": 202]
            case "DryRun": return ["StatusCode": 204]
            default:
                return ["StatusCode": 200, "ExecutedVersion": "$LATEST", "LogResult": Data("START RequestId: r\n".utf8).base64EncodedString(),
                        "Payload": #"{"batchItemFailures":[]}"#]
            }
        case "lambda:ListEventSourceMappings":
            if let name = body["FunctionName"] as? String, name != function { return ["EventSourceMappings": [Any]()] }
            return ["EventSourceMappings": [mapping(uuid, function: function)]]
        case "lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping":
            guard body["UUID"] as? String == uuid else {
                throw WireError(code: "ResourceNotFoundException", message: "The resource you requested does not exist.")
            }
            var m = mapping(uuid, function: function)
            if body["Enabled"] as? Bool == false { m["State"] = "Disabling" }
            return m
        default:
            throw WireError(code: "InvalidAction", message: "no \(action)")
        }
    }

    static func object(_ response: EdgeResponse) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: response.body) as? [String: Any]) ?? [:]
    }

    static func header(_ response: EdgeResponse, _ name: String) -> String? {
        response.headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// The error as botocore reads it: code from x-amzn-ErrorType, message from `message` or `Message`.
    static func error(_ response: EdgeResponse) -> (status: Int, code: String?, message: String?) {
        let body = object(response)
        return (response.status, header(response, "x-amzn-ErrorType"), (body["message"] ?? body["Message"]) as? String)
    }

    // MARK: Routes

    @Test func routesByMethodAndPath() throws {
        typealias Route = LambdaREST.Route
        #expect(try Route(method: "GET", rawPath: "/2015-03-31/functions/") == .listFunctions)
        #expect(try Route(method: "GET", rawPath: "/2015-03-31/functions") == .listFunctions)
        #expect(try Route(method: "GET", rawPath: "/2015-03-31/functions/POC-Lambda-1") == .getFunction("POC-Lambda-1"))
        #expect(try Route(method: "GET", rawPath: "/2015-03-31/functions/POC-Lambda-1/configuration") == .getFunctionConfiguration("POC-Lambda-1"))
        #expect(try Route(method: "POST", rawPath: "/2015-03-31/functions/POC-Lambda-1/invocations") == .invoke("POC-Lambda-1"))
        #expect(try Route(method: "POST", rawPath: "/2014-11-13/functions/POC-Lambda-1/invoke-async/") == .invokeAsync("POC-Lambda-1"))
        #expect(try Route(method: "GET", rawPath: "/2015-03-31/event-source-mappings/") == .listEventSourceMappings)
        #expect(try Route(method: "GET", rawPath: "/2015-03-31/event-source-mappings/abc") == .getEventSourceMapping("abc"))
        #expect(try Route(method: "PUT", rawPath: "/2015-03-31/event-source-mappings/abc") == .updateEventSourceMapping("abc"))
        #expect(try Route(method: "POST", rawPath: "/2015-03-31/functions") == .notYet("CreateFunction"))
        #expect(try Route(method: "DELETE", rawPath: "/2015-03-31/functions/f") == .notYet("DeleteFunction"))
        #expect(try Route(method: "POST", rawPath: "/2015-03-31/event-source-mappings/") == .notYet("CreateEventSourceMapping"))
        #expect(try Route(method: "DELETE", rawPath: "/2015-03-31/event-source-mappings/abc") == .notYet("DeleteEventSourceMapping"))
        #expect(try Route(method: "GET", rawPath: "/2017-03-31/tags/x") == .unknown)
        #expect(try Route(method: "PATCH", rawPath: "/2015-03-31/functions/f") == .unknown)
    }

    @Test func anARNInThePathIsDecodedAfterSplitting() throws {
        let path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3APOC-Lambda-1/invocations"
        #expect(try LambdaREST.Route(method: "POST", rawPath: path) == .invoke(Self.arn1))
        // An encoded "/" stays inside its segment (and then is no valid name).
        #expect(try LambdaREST.Route(method: "GET", rawPath: "/2015-03-31/functions/a%2Fb") == .getFunction("a/b"))
        #expect(throws: EdgeError.self) { try LambdaREST.Route(method: "GET", rawPath: "/2015-03-31/functions/%zz") }
    }

    @Test func functionNamesPartialARNsAndARNs() throws {
        typealias Name = LambdaREST.FunctionName
        #expect(try Name("POC-Lambda-1", region: Self.region, account: Self.account) == .init(name: "POC-Lambda-1", qualifier: nil))
        #expect(try Name("POC-Lambda-1:$LATEST", region: Self.region, account: Self.account) == .init(name: "POC-Lambda-1", qualifier: "$LATEST"))
        #expect(try Name("000000000000:function:POC-Lambda-1", region: Self.region, account: Self.account).name == "POC-Lambda-1")
        #expect(try Name(Self.arn1, region: Self.region, account: Self.account).name == "POC-Lambda-1")
        #expect(try Name(Self.arn1 + ":prod", region: Self.region, account: Self.account).qualifier == "prod")
        // Another account's or region's function is not here.
        let elsewhere = { (text: String) -> EdgeError? in
            do { _ = try Name(text, region: Self.region, account: Self.account); return nil } catch let error as EdgeError { return error } catch { return nil }
        }
        #expect(elsewhere("arn:aws:lambda:eu-west-1:000000000000:function:POC-Lambda-1")?.code == "ResourceNotFoundException")
        #expect(elsewhere("111111111111:function:POC-Lambda-1")?.code == "ResourceNotFoundException")
        for bad in ["", "a b", "a/b", String(repeating: "x", count: 65), "arn:aws:s3:::bucket", "a:b:c:d", "f:"] {
            #expect(elsewhere(bad)?.code == "ValidationException", "\(bad)")
        }
    }

    // MARK: Functions

    @Test func listFunctionsAsksEachWorkerKindAndSortsByName() async throws {
        let calls = Calls()
        let response = await Self.serve(Self.request("GET", "/2015-03-31/functions/"), calls: calls)
        #expect(response.status == 200)
        let names = (Self.object(response)["Functions"] as? [[String: Any]])?.compactMap { $0["FunctionName"] as? String }
        #expect(names == ["POC-Lambda-1", "POC-Lambda-2"])
        #expect(Self.object(response)["NextMarker"] == nil)
        #expect(Set(calls.all.map(\.kind)) == [.ingestWorker, .streamWorker])
        #expect(calls.all.allSatisfy { $0.action == "lambda:ListFunctions" && $0.instance == 1 })
    }

    @Test func listFunctionsPagesWithMarkerAndMaxItems() async throws {
        let first = await Self.serve(Self.request("GET", "/2015-03-31/functions/", query: "MaxItems=1"))
        #expect((Self.object(first)["Functions"] as? [[String: Any]])?.first?["FunctionName"] as? String == "POC-Lambda-1")
        let marker = try #require(Self.object(first)["NextMarker"] as? String)
        let second = await Self.serve(Self.request("GET", "/2015-03-31/functions/", query: "MaxItems=1&Marker=\(marker)"))
        #expect((Self.object(second)["Functions"] as? [[String: Any]])?.first?["FunctionName"] as? String == "POC-Lambda-2")
        #expect(Self.object(second)["NextMarker"] == nil)
        let bad = await Self.serve(Self.request("GET", "/2015-03-31/functions/", query: "MaxItems=0"))
        #expect(Self.error(bad).status == 400 && Self.error(bad).code == "ValidationException")
    }

    @Test func aWorkerKindWithNoInstancesIsLeftOutOfTheList() async throws {
        let calls = Calls()
        let response = await Self.serve(Self.request("GET", "/2015-03-31/functions/"), cluster: Self.cluster(instances: [.streamWorker: 0]), calls: calls)
        let names = (Self.object(response)["Functions"] as? [[String: Any]])?.compactMap { $0["FunctionName"] as? String }
        #expect(names == ["POC-Lambda-1"])
        #expect(calls.all.map(\.kind) == [.ingestWorker])
    }

    @Test func getFunctionGoesToTheHostingWorkerByNameOrARN() async throws {
        for name in ["POC-Lambda-2", "arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3APOC-Lambda-2", "POC-Lambda-2%3A%24LATEST"] {
            let calls = Calls()
            let response = await Self.serve(Self.request("GET", "/2015-03-31/functions/\(name)"), calls: calls)
            #expect(response.status == 200)
            #expect((Self.object(response)["Configuration"] as? [String: Any])?["FunctionName"] as? String == "POC-Lambda-2")
            #expect(calls.all.count == 1)
            #expect(calls.all.first?.kind == .streamWorker && calls.all.first?.action == "lambda:GetFunction")
            #expect(calls.all.first?.body["FunctionName"] == "POC-Lambda-2")
        }
        let configuration = await Self.serve(Self.request("GET", "/2015-03-31/functions/POC-Lambda-1/configuration"))
        #expect(Self.object(configuration)["FunctionArn"] as? String == Self.arn1)
    }

    @Test func anUnknownFunctionIsResourceNotFoundWithItsARN() async throws {
        let calls = Calls()
        for request in [Self.request("GET", "/2015-03-31/functions/no-such-function"),
                        Self.request("GET", "/2015-03-31/functions/no-such-function/configuration"),
                        Self.request("POST", "/2015-03-31/functions/no-such-function/invocations", body: "{}"),
                        Self.request("GET", "/2015-03-31/functions/POC-Lambda-1", query: "Qualifier=prod")] {
            let response = await Self.serve(request, calls: calls)
            let error = Self.error(response)
            #expect(error.status == 404 && error.code == "ResourceNotFoundException")
            #expect(error.message?.hasPrefix("Function not found: arn:aws:lambda:us-east-1:000000000000:function:") == true)
            // Lambda's model spells this error's member "Message".
            #expect(Self.object(response)["Message"] != nil && Self.object(response)["Type"] as? String == "User")
        }
        #expect(calls.all.isEmpty)
    }

    @Test func aFunctionWhoseWorkerIsDownOrAbsentIsServiceException503NamingIt() async throws {
        let absent = await Self.serve(Self.request("GET", "/2015-03-31/functions/POC-Lambda-1"), cluster: Self.cluster(instances: [.ingestWorker: 0]))
        #expect(Self.error(absent).status == 503 && Self.error(absent).code == "ServiceException")
        #expect(Self.error(absent).message?.contains("ingest-worker") == true)
        let down = await Self.serve(Self.request("GET", "/2015-03-31/functions/POC-Lambda-1")) { _, _, _, _ in
            throw WireError(code: "RequestTimeout", message: "no answer in 10 s")
        }
        #expect(Self.error(down).status == 503 && Self.error(down).code == "ServiceException")
        #expect(Self.error(down).message?.contains("ingest-worker-1") == true)
        #expect(Self.object(down)["Type"] as? String == "Service")
    }

    @Test func createAndDeleteAreRefusedByName() async throws {
        let calls = Calls()
        let create = await Self.serve(Self.request("POST", "/2015-03-31/functions", body: #"{"FunctionName":"f"}"#), calls: calls)
        #expect(Self.error(create).status == 400 && Self.error(create).code == "InvalidParameterValueException")
        #expect(Self.error(create).message == "Nimbus runs the functions its stack declares; CreateFunction is not supported yet")
        #expect(Self.object(create)["message"] != nil)
        let delete = await Self.serve(Self.request("DELETE", "/2015-03-31/event-source-mappings/abc"), calls: calls)
        #expect(Self.error(delete).message?.contains("DeleteEventSourceMapping") == true)
        let unknown = await Self.serve(Self.request("GET", "/2015-03-31/functions/f/aliases"), calls: calls)
        #expect(Self.error(unknown).status == 404 && Self.error(unknown).code == "UnknownOperationException")
        #expect(calls.all.isEmpty)
    }

    // MARK: Invoke

    @Test func invokeRequestResponseCarriesStatusHeadersAndPayload() async throws {
        let calls = Calls()
        let event = #"{"Records":[{"body":"Hello from SQS!"}]}"#
        let response = await Self.serve(Self.request("POST", "/2015-03-31/functions/POC-Lambda-1/invocations",
                                                     headers: ["x-amz-log-type": "Tail"], body: event), calls: calls)
        #expect(response.status == 200)
        #expect(String(decoding: response.body, as: UTF8.self) == #"{"batchItemFailures":[]}"#)
        #expect(Self.header(response, "X-Amz-Executed-Version") == "$LATEST")
        #expect(Self.header(response, "X-Amz-Function-Error") == nil)
        let log = try #require(Self.header(response, "X-Amz-Log-Result").flatMap { Data(base64Encoded: $0) })
        #expect(String(decoding: log, as: UTF8.self).hasPrefix("START RequestId"))
        let call = try #require(calls.all.first)
        #expect(call.action == "lambda:InvokeFunction" && call.kind == .ingestWorker && call.instance == 1)
        #expect(call.body == ["FunctionName": "POC-Lambda-1", "InvocationType": "RequestResponse", "LogType": "Tail", "Payload": event])
    }

    @Test func theLogTailIsReturnedOnlyWhenAskedFor() async throws {
        let response = await Self.serve(Self.request("POST", "/2015-03-31/functions/POC-Lambda-1/invocations", body: "{}"))
        #expect(response.status == 200 && Self.header(response, "X-Amz-Log-Result") == nil)
    }

    @Test func aFailedFunctionIs200WithFunctionError() async throws {
        let response = await Self.serve(Self.request("POST", "/2015-03-31/functions/POC-Lambda-1/invocations", body: "{}")) { _, _, _, _ in
            ["StatusCode": 200, "ExecutedVersion": "$LATEST", "FunctionError": "Unhandled",
             "Payload": #"{"errorMessage":"boom","errorType":"Error"}"#]
        }
        #expect(response.status == 200 && Self.header(response, "X-Amz-Function-Error") == "Unhandled")
        #expect(Self.object(response)["errorMessage"] as? String == "boom")
    }

    @Test func eventIs202AndDryRun204WithEmptyBodies() async throws {
        let calls = Calls()
        let event = await Self.serve(Self.request("POST", "/2015-03-31/functions/POC-Lambda-1/invocations",
                                                  headers: ["x-amz-invocation-type": "Event"], body: "{}"), calls: calls)
        #expect(event.status == 202 && event.body.isEmpty)
        let dryRun = await Self.serve(Self.request("POST", "/2015-03-31/functions/POC-Lambda-2/invocations",
                                                   headers: ["x-amz-invocation-type": "DryRun"], body: "{}"), calls: calls)
        #expect(dryRun.status == 204 && dryRun.body.isEmpty)
        #expect(calls.all.map { $0.body["InvocationType"] } == ["Event", "DryRun"])
        let legacy = await Self.serve(Self.request("POST", "/2014-11-13/functions/POC-Lambda-1/invoke-async/", body: "{}"))
        #expect(legacy.status == 202 && Self.object(legacy)["Status"] as? Int == 202)
    }

    @Test func invokeRefusesBadHeadersAndPayloadsBeforeAskingTheWorker() async throws {
        let calls = Calls()
        let badType = await Self.serve(Self.request("POST", "/2015-03-31/functions/POC-Lambda-1/invocations",
                                                    headers: ["x-amz-invocation-type": "Later"], body: "{}"), calls: calls)
        #expect(Self.error(badType).status == 400 && Self.error(badType).code == "ValidationException")
        let badLog = await Self.serve(Self.request("POST", "/2015-03-31/functions/POC-Lambda-1/invocations",
                                                   headers: ["x-amz-log-type": "Everything"], body: "{}"), calls: calls)
        #expect(Self.error(badLog).code == "ValidationException")
        var notUTF8 = Self.request("POST", "/2015-03-31/functions/POC-Lambda-1/invocations")
        notUTF8.body = Data([0xFF, 0xFE, 0x00])
        #expect(Self.error(await Self.serve(notUTF8, calls: calls)).code == "InvalidRequestContentException")
        var large = Self.request("POST", "/2015-03-31/functions/POC-Lambda-1/invocations", headers: ["x-amz-invocation-type": "Event"])
        large.body = Data(repeating: 0x20, count: 1_048_577)
        let tooLarge = await Self.serve(large, calls: calls)
        #expect(Self.error(tooLarge).status == 413 && Self.error(tooLarge).code == "RequestTooLargeException")
        #expect(calls.all.isEmpty)
    }

    @Test func aWorkersLambdaErrorKeepsItsCodeAndGetsItsStatus() async throws {
        let response = await Self.serve(Self.request("POST", "/2015-03-31/functions/POC-Lambda-1/invocations", body: "{nope")) { _, _, _, _ in
            throw WireError(code: "InvalidRequestContentException", message: "Could not parse request body into json")
        }
        #expect(Self.error(response).status == 400 && Self.error(response).code == "InvalidRequestContentException")
        #expect(Self.object(response)["message"] as? String == "Could not parse request body into json")
        let throttled = await Self.serve(Self.request("POST", "/2015-03-31/functions/POC-Lambda-1/invocations", body: "{}")) { _, _, _, _ in
            throw WireError(code: "ThrottlingException", message: "busy")
        }
        #expect(Self.error(throttled).status == 429 && Self.error(throttled).code == "TooManyRequestsException")
        let denied = await Self.serve(Self.request("GET", "/2015-03-31/functions/POC-Lambda-1")) { _, _, _, _ in
            throw WireError(code: "AccessDenied", message: "not allowed")
        }
        #expect(Self.error(denied).status == 403 && Self.error(denied).code == "AccessDeniedException")
    }

    // MARK: Event source mappings

    @Test func listEventSourceMappingsByFunctionAsksOnlyItsWorker() async throws {
        let calls = Calls()
        let response = await Self.serve(Self.request("GET", "/2015-03-31/event-source-mappings/", query: "FunctionName=\(Self.arn1)"), calls: calls)
        let mappings = try #require(Self.object(response)["EventSourceMappings"] as? [[String: Any]])
        #expect(mappings.count == 1 && mappings.first?["FunctionArn"] as? String == Self.arn1)
        #expect(calls.all.map(\.kind) == [.ingestWorker])
        #expect(calls.all.first?.body == ["FunctionName": "POC-Lambda-1"])
        let all = await Self.serve(Self.request("GET", "/2015-03-31/event-source-mappings/", query: "EventSourceArn=arn%3Aaws%3Asqs%3Aus-east-1%3A000000000000%3AQ"),
                                   calls: calls)
        #expect((Self.object(all)["EventSourceMappings"] as? [[String: Any]])?.count == 2)
        #expect(calls.all.last?.body["EventSourceArn"] == "arn:aws:sqs:us-east-1:000000000000:Q")
        let unknown = await Self.serve(Self.request("GET", "/2015-03-31/event-source-mappings/", query: "FunctionName=nope"))
        #expect(Self.error(unknown).status == 404)
    }

    @Test func getEventSourceMappingFindsTheWorkerHoldingIt() async throws {
        let found = await Self.serve(Self.request("GET", "/2015-03-31/event-source-mappings/bbbbbbbb-0000-8000-8000-000000000002"))
        #expect(found.status == 200 && Self.object(found)["UUID"] as? String == "bbbbbbbb-0000-8000-8000-000000000002")
        let missing = await Self.serve(Self.request("GET", "/2015-03-31/event-source-mappings/cccccccc-0000-8000-8000-000000000003"))
        #expect(Self.error(missing).status == 404 && Self.error(missing).code == "ResourceNotFoundException")
        // When a worker that may hold it does not answer, the answer is not a false 404.
        let unsure = await Self.serve(Self.request("GET", "/2015-03-31/event-source-mappings/cccccccc-0000-8000-8000-000000000003")) { action, kind, i, body in
            if kind == .streamWorker { throw WireError(code: "ServiceUnavailable", message: "down") }
            return try Self.labWorkers(action, kind, i, body)
        }
        #expect(Self.error(unsure).status == 503 && Self.error(unsure).message?.contains("stream-worker-1") == true)
    }

    @Test func updateEventSourceMappingReachesEveryInstanceOfItsWorker() async throws {
        let calls = Calls()
        let uuid = "aaaaaaaa-0000-8000-8000-000000000001"
        let response = await Self.serve(Self.request("PUT", "/2015-03-31/event-source-mappings/\(uuid)",
                                                     body: #"{"Enabled": false, "FunctionName": "\#(Self.arn1)"}"#),
                                        cluster: Self.cluster(instances: [.ingestWorker: 3]), calls: calls)
        #expect(response.status == 202)
        #expect(Self.object(response)["State"] as? String == "Disabling")
        let updates = calls.all.filter { $0.action == "lambda:UpdateEventSourceMapping" && $0.kind == .ingestWorker }
        #expect(updates.map(\.instance) == [1, 2, 3])
        let sent = try #require(try JSONSerialization.jsonObject(with: updates[0].raw) as? [String: Any])
        #expect(sent["UUID"] as? String == uuid && sent["Enabled"] as? Bool == false && sent["FunctionName"] as? String == "POC-Lambda-1")
    }

    @Test func anUpdateAnInstanceMissedIsServiceExceptionNamingIt() async throws {
        let uuid = "aaaaaaaa-0000-8000-8000-000000000001"
        let response = await Self.serve(Self.request("PUT", "/2015-03-31/event-source-mappings/\(uuid)", body: #"{"BatchSize": 5}"#),
                                        cluster: Self.cluster(instances: [.ingestWorker: 2])) { action, kind, instance, body in
            if instance == 2 { throw WireError(code: "RequestTimeout", message: "no answer") }
            return try Self.labWorkers(action, kind, instance, body)
        }
        #expect(Self.error(response).status == 503 && Self.error(response).message?.contains("ingest-worker-2") == true)
    }

    @Test func anUpdateWithABodyThatIsNotJSONIsRefused() async throws {
        let response = await Self.serve(Self.request("PUT", "/2015-03-31/event-source-mappings/x", body: "[1"))
        #expect(Self.error(response).code == "InvalidRequestContentException")
    }
}
