import Foundation
@testable import FunctionRuntime
import NimbusStack
import Testing

/// Lambda's Runtime API as a state machine (Python/RuntimeAPI.swift): what a runtime process sees
/// over HTTP (`next`, `/response`, `/error`, `/init/error`) and what the worker's invocation gets,
/// with no process and no socket.
@Suite struct RuntimeAPITests {
    static let arn = "arn:aws:lambda:us-east-1:000000000000:function:f"
    static let next = "/2018-06-01/runtime/invocation/next"

    static func path(_ id: String, _ what: String) -> String { "/2018-06-01/runtime/invocation/\(id)/\(what)" }

    static func json(_ reply: RuntimeAPIReply) -> [String: String] {
        (try? JSONSerialization.jsonObject(with: reply.body) as? [String: String]) ?? [:]
    }

    /// Starts an invocation in the background and returns its task.
    static func invoke(_ api: RuntimeAPI, _ payload: String, id: String, timeout: Duration = .seconds(30)) -> Task<RuntimeOutcome, Never> {
        Task { await api.invoke(Data(payload.utf8), requestID: id, functionARN: arn, timeout: timeout) }
    }

    /// Waits (bounded) until the runtime side can take the invocation with `next`.
    static func take(_ api: RuntimeAPI) async -> RuntimeAPIReply {
        await api.route(method: "GET", path: next, headers: [:], body: Data())
    }

    @Test func nextHandsOutTheInvocationWithLambdasHeadersAndTheResponseEndsIt() async throws {
        let api = RuntimeAPI()
        let invocation = Self.invoke(api, #"{"Records": []}"#, id: "req-1", timeout: .seconds(3))
        let before = Int64(Date().timeIntervalSince1970 * 1000)
        let taken = await Self.take(api)
        #expect(taken.status == 200)
        #expect(taken.body == Data(#"{"Records": []}"#.utf8))
        #expect(taken.headers["Lambda-Runtime-Aws-Request-Id"] == "req-1")
        #expect(taken.headers["Lambda-Runtime-Invoked-Function-Arn"] == Self.arn)
        #expect(taken.headers["Content-Type"] == "application/json")
        #expect(taken.headers["Lambda-Runtime-Trace-Id"]?.hasPrefix("Root=1-") == true)
        // The deadline is the timeout from the moment the runtime took the invocation.
        let deadline = try #require(taken.headers["Lambda-Runtime-Deadline-Ms"].flatMap { Int64($0) })
        #expect(deadline >= before + 3000 && deadline <= before + 3000 + 5000)
        #expect(api.isInitialized)

        let answered = await api.route(method: "POST", path: Self.path("req-1", "response"), headers: [:], body: Data("null".utf8))
        #expect(answered.status == 202)
        #expect(await invocation.value == .response(Data("null".utf8)))
        // Answering twice: the id is no longer known, as Lambda answers.
        let again = await api.route(method: "POST", path: Self.path("req-1", "response"), headers: [:], body: Data("{}".utf8))
        #expect(again.status == 400)
        #expect(Self.json(again) == ["errorType": "InvalidRequestID", "errorMessage": "Invalid request ID"])
    }

    @Test func anInvocationIdThatDoesNotExistIsRefusedWith400() async {
        let api = RuntimeAPI()
        for what in ["response", "error"] {
            let reply = await api.route(method: "POST", path: Self.path("no-such-id", what), headers: [:], body: Data("{}".utf8))
            #expect(reply.status == 400)
            #expect(Self.json(reply)["errorType"] == "InvalidRequestID")
        }
        // An invocation not yet taken by the runtime cannot be answered either.
        let waiting = Self.invoke(api, "{}", id: "queued")
        try? await Task.sleep(for: .milliseconds(50))
        let early = await api.route(method: "POST", path: Self.path("queued", "response"), headers: [:], body: Data("{}".utf8))
        #expect(early.status == 400)
        #expect(await Self.take(api).headers["Lambda-Runtime-Aws-Request-Id"] == "queued")
        #expect(await api.route(method: "POST", path: Self.path("queued", "response"), headers: [:], body: Data("1".utf8)).status == 202)
        #expect(await waiting.value == .response(Data("1".utf8)))
    }

    @Test func anErrorPostedForAnInvocationFailsItWithTheFunctionsReport() async {
        let api = RuntimeAPI()
        let invocation = Self.invoke(api, "{}", id: "req-2")
        _ = await Self.take(api)
        let body = #"{"errorMessage": "boom", "errorType": "Exception", "requestId": "req-2", "stackTrace": ["  File \"/var/task/index.py\", line 3\n"]}"#
        let reply = await api.route(method: "POST", path: Self.path("req-2", "error"),
                                    headers: ["lambda-runtime-function-error-type": "Unhandled"], body: Data(body.utf8))
        #expect(reply.status == 202)
        guard case .failed(let report) = await invocation.value else { Issue.record("expected a failure"); return }
        #expect(report.errorType == "Exception")
        #expect(report.errorMessage == "boom")
        #expect(report.stackTrace.count == 1)
        // The body's type wins; the header names it when the body is not Lambda's error document.
        #expect(FunctionErrorReport.parse(Data("oops".utf8), typeHeader: "Runtime.Custom") ==
                FunctionErrorReport(errorType: "Runtime.Custom", errorMessage: "oops"))
    }

    @Test func nextIsALongPollThatWaitsForTheNextInvocation() async {
        let api = RuntimeAPI()
        let poll = Task { await Self.take(api) }
        try? await Task.sleep(for: .milliseconds(100))
        let invocation = Self.invoke(api, #"{"n": 1}"#, id: "later")
        let taken = await poll.value
        #expect(taken.status == 200 && taken.headers["Lambda-Runtime-Aws-Request-Id"] == "later")
        #expect(await api.route(method: "POST", path: Self.path("later", "response"), headers: [:], body: Data("2".utf8)).status == 202)
        #expect(await invocation.value == .response(Data("2".utf8)))
    }

    @Test func askingForTheNextInvocationBeforeAnsweringTheCurrentOneIsAnInvalidStateTransition() async {
        let api = RuntimeAPI()
        let invocation = Self.invoke(api, "{}", id: "current")
        _ = await Self.take(api)
        let early = await Self.take(api)
        #expect(early.status == 403)
        #expect(Self.json(early)["errorType"] == "InvalidStateTransition")
        _ = await api.route(method: "POST", path: Self.path("current", "response"), headers: [:], body: Data("{}".utf8))
        _ = await invocation.value
    }

    @Test func anInvocationPastItsTimeoutFailsAndItsLateResponseIsRefused() async {
        let api = RuntimeAPI()
        let invocation = Self.invoke(api, "{}", id: "slow", timeout: .milliseconds(200))
        let started = ContinuousClock.now
        _ = await Self.take(api)
        guard case .failed(let report) = await invocation.value else { Issue.record("expected a timeout"); return }
        #expect(ContinuousClock.now - started >= .milliseconds(200))
        #expect(report.errorType == FunctionErrorReport.timeoutType)
        #expect(report.errorMessage.contains("Task timed out after 0.20 seconds"))
        let late = await api.route(method: "POST", path: Self.path("slow", "response"), headers: [:], body: Data("{}".utf8))
        #expect(late.status == 400)
    }

    @Test func theTimeoutRunsFromWhenTheRuntimeTakesTheInvocationNotWhileItStarts() async {
        let api = RuntimeAPI()
        let invocation = Self.invoke(api, "{}", id: "cold", timeout: .milliseconds(300))
        // The runtime's init takes longer than the function's timeout.
        try? await Task.sleep(for: .milliseconds(500))
        #expect(await Self.take(api).status == 200)
        #expect(await api.route(method: "POST", path: Self.path("cold", "response"), headers: [:], body: Data("{}".utf8)).status == 202)
        #expect(await invocation.value == .response(Data("{}".utf8)))
    }

    @Test func aRuntimeThatNeverAsksFailsTheInvocationAtTheInitLimit() async {
        let api = RuntimeAPI(initLimit: .milliseconds(200))
        guard case .failed(let report) = await Self.invoke(api, "{}", id: "never").value else { Issue.record("expected a failure"); return }
        #expect(report.errorType == FunctionErrorReport.timeoutType)
        #expect(report.errorMessage.contains("init did not finish"))
    }

    @Test func anInitErrorFailsTheWaitingInvocationAndEveryLaterOne() async {
        let api = RuntimeAPI()
        let waiting = Self.invoke(api, "{}", id: "first")
        try? await Task.sleep(for: .milliseconds(50))
        let body = #"{"errorMessage": "Unable to import module 'index': No module named 'nope'", "errorType": "Runtime.ImportModuleError", "requestId": "", "stackTrace": []}"#
        let reply = await api.route(method: "POST", path: "/2018-06-01/runtime/init/error",
                                    headers: ["lambda-runtime-function-error-type": "Runtime.ImportModuleError"], body: Data(body.utf8))
        #expect(reply.status == 202)
        let expected = FunctionErrorReport(errorType: "Runtime.ImportModuleError", errorMessage: "Unable to import module 'index': No module named 'nope'")
        #expect(await waiting.value == .failed(expected))
        #expect(await Self.invoke(api, "{}", id: "second").value == .failed(expected))
        // The runtime then exits: the environment closes, still reporting why it could not start.
        api.close(FunctionErrorReport(errorType: "Runtime.ExitError", errorMessage: "Runtime exited with error: exit status 1"))
        #expect(await Self.invoke(api, "{}", id: "third").value == .failed(expected))
    }

    @Test func initErrorAfterTheFirstNextIsAnInvalidStateTransition() async {
        let api = RuntimeAPI()
        let invocation = Self.invoke(api, "{}", id: "x")
        _ = await Self.take(api)
        let reply = await api.route(method: "POST", path: "/2018-06-01/runtime/init/error", headers: [:], body: Data("{}".utf8))
        #expect(reply.status == 403)
        _ = await api.route(method: "POST", path: Self.path("x", "response"), headers: [:], body: Data("{}".utf8))
        _ = await invocation.value
    }

    @Test func closingTheEnvironmentFailsWaitingInvocationsAndAnswersAWaitingNext() async {
        let api = RuntimeAPI()
        let running = Self.invoke(api, "{}", id: "running")
        _ = await Self.take(api)
        let exit = FunctionErrorReport(errorType: "Runtime.ExitError", errorMessage: "Runtime exited with error: signal: killed")
        api.close(exit)
        #expect(await running.value == .failed(exit))
        #expect(await Self.take(api).status == 500)
        #expect(await Self.invoke(api, "{}", id: "after").value == .failed(exit))
    }

    @Test func aCancelledInvocationEndsAtOnce() async {
        let api = RuntimeAPI()
        let invocation = Self.invoke(api, "{}", id: "gone")
        try? await Task.sleep(for: .milliseconds(50))
        invocation.cancel()
        guard case .failed(let report) = await invocation.value else { Issue.record("expected a failure"); return }
        #expect(report.errorType == "Runtime.Cancelled")
        // Nothing is left for the runtime to take: its next waits (and is cancelled here).
        let poll = Task { await Self.take(api) }
        try? await Task.sleep(for: .milliseconds(50))
        poll.cancel()
        #expect(await poll.value.status == 500)
    }

    @Test func anOversizeResponseIs413AndFailsTheInvocation() async {
        let api = RuntimeAPI()
        let invocation = Self.invoke(api, "{}", id: "big")
        _ = await Self.take(api)
        let reply = await api.route(method: "POST", path: Self.path("big", "response"), headers: [:],
                                    body: Data(count: RuntimeAPI.maxResponseBytes + 1))
        #expect(reply.status == 413)
        guard case .failed(let report) = await invocation.value else { Issue.record("expected a failure"); return }
        #expect(report.errorType == "Function.ResponseSizeTooLarge")
    }

    @Test func unknownRoutesAre404AndWrongMethods405() async {
        let api = RuntimeAPI()
        #expect(await api.route(method: "GET", path: "/2018-06-01/runtime/nope", headers: [:], body: Data()).status == 404)
        #expect(await api.route(method: "GET", path: "/2020-01-01/runtime/invocation/next", headers: [:], body: Data()).status == 404)
        #expect(await api.route(method: "GET", path: "/", headers: [:], body: Data()).status == 404)
        #expect(await api.route(method: "POST", path: Self.next, headers: [:], body: Data()).status == 405)
        #expect(await api.route(method: "GET", path: Self.path("x", "response"), headers: [:], body: Data()).status == 405)
    }

    // MARK: What the stack gives a Python function

    static func definition(_ properties: String) throws -> FunctionDefinition {
        let yaml = """
            Resources:
              Topic: {Type: AWS::SNS::Topic, Properties: {TopicName: POC-Topic}}
              Fn:
                Type: AWS::Lambda::Function
                Properties:
                  FunctionName: f
            \(properties.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n"))
            """
        let template = try StackTemplate.parse(yaml + "\n")
        return try FunctionDefinition.load("f", template: template,
                                           resolver: StackResolver(template: template, region: "us-east-1", account: "000000000000"))
    }

    @Test func aPythonFunctionsCodeComesInlineWithSubOrFromAFolder() throws {
        let inline = try Self.definition("""
            Runtime: python3.11
            Handler: index.lambda_handler
            Code:
              ZipFile: !Sub |
                import boto3
                TOPIC = '${Topic}'
            """)
        #expect(inline.code == .inline("import boto3\nTOPIC = 'arn:aws:sns:us-east-1:000000000000:POC-Topic'\n"))
        let folder = try Self.definition("Runtime: python3.12\nHandler: app.handler\nCode: functions/app")
        #expect(folder.code == .folder("functions/app"))
        // A built-in function needs none of it.
        #expect(try Self.definition("Runtime: nimbus-swift\nHandler: LabFunctions.IngestOrders").code == nil)
        // As the lab's stack declares it: a custom runtime whose Code names the built-in handler.
        #expect(try Self.definition("Runtime: provided.al2023\nHandler: LabFunctions.IngestOrders\n"
                                    + "Code: {S3Bucket: nimbus-builtin, S3Key: LabFunctions.IngestOrders.zip}").code == nil)
        #expect(throws: FunctionDefinitionError.self) {
            try Self.definition("Runtime: provided.al2023\nHandler: bootstrap\nCode: {S3Bucket: my-bucket, S3Key: f.zip}")
        }
    }

    @Test func aPythonFunctionWithoutUsableCodeOrHandlerIsAClearError() throws {
        for (properties, words) in [
            ("Runtime: python3.11\nHandler: index.lambda_handler", "needs Code"),
            ("Runtime: python3.11\nHandler: lambda_handler\nCode: {ZipFile: x}", "MODULE.FUNCTION"),
            ("Runtime: python3.11\nHandler: index.h\nCode: {S3Bucket: b, S3Key: k}", "S3"),
            ("Runtime: nodejs20.x\nHandler: index.h\nCode: {ZipFile: x}", "nodejs20.x"),
            ("Runtime: python3.11\nHandler: index.h\nCode: {ZipFile: x}\nMemorySize: 64", "MemorySize"),
        ] {
            #expect(throws: FunctionDefinitionError.self) { try Self.definition(properties) }
            do { _ = try Self.definition(properties) } catch { #expect("\(error)".contains(words), "\(error)") }
        }
    }

    @Test func inlineCodeIsWrittenAsIndexPyAndAMissingFolderIsNamed() throws {
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-code-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: data) }
        let root = try FunctionCode.inline("print('hi')\n").taskRoot(function: "POC-Lambda-1", dataDirectory: data, stackDirectory: nil)
        #expect(root.path.hasSuffix("functions/POC-Lambda-1"))
        #expect(try String(contentsOf: root.appendingPathComponent("index.py"), encoding: .utf8) == "print('hi')\n")
        #expect(throws: FunctionDefinitionError.self) {
            try FunctionCode.folder("no/such/folder").taskRoot(function: "f", dataDirectory: data, stackDirectory: data)
        }
        let found = try FunctionCode.folder("functions/POC-Lambda-1").taskRoot(function: "f", dataDirectory: data, stackDirectory: data)
        #expect(found.path == root.standardizedFileURL.path)
    }

    @Test func aBatchAnswerIsReadAsLambdaReadsIt() throws {
        #expect(try PythonFunctionHost.batchResponse(Data("null".utf8)) == BatchResponse())
        #expect(try PythonFunctionHost.batchResponse(Data("{}".utf8)) == BatchResponse())
        #expect(try PythonFunctionHost.batchResponse(Data(#"{"batchItemFailures": null}"#.utf8)) == BatchResponse())
        #expect(try PythonFunctionHost.batchResponse(Data(#"{"batchItemFailures": [{"itemIdentifier": "m-2"}]}"#.utf8))
                == BatchResponse(failures: ["m-2"]))
        #expect(throws: FunctionErrorReport.self) { try PythonFunctionHost.batchResponse(Data(#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#.utf8)) }
    }
}
