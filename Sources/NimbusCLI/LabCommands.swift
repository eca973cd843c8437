import ArgumentParser
import Foundation
import FunctionRuntime
import NimbusConfig
import NimbusProtocol
import NimbusRuntime
import NotifierCore
import SupervisorCore
import TableCore

// The lab's console steps as commands: run a function with a console test event, explore a table's
// items, manage POC-Topic's subscriptions.

/// A request to one service of the cluster, with the standalone client closed afterwards.
func ask(_ located: LocatedConfig, _ action: String, to kind: ServiceKind, _ body: Data, timeout: Duration = .seconds(5)) async throws -> Data {
    let client = try NimbusClient.standalone(name: located.cliName, cluster: located.config,
                                                credentials: CredentialSource(file: CredentialSource.file(dataDirectory: located.dataDirectory, name: "root")))
    defer { Task { await client.close() } }
    do {
        return try await client.request(action, to: kind, body: body, timeout: timeout, attempts: 1)
    } catch let error as WireError where error.code == ErrorCode.serviceUnavailable.rawValue && error.message.contains(" cannot ") {
        // The node answered: it is up but cannot serve, and says why ("table cannot authorize you:
        // iam unreachable for 3 s").
        throw CLIError(error.message)
    } catch let error as WireError where error.code == ErrorCode.requestTimeout.rawValue || error.code == ErrorCode.serviceUnavailable.rawValue {
        throw CLIError("\(kind.rawValue) does not answer at \(located.config.endpoint(kind)) \(await whyNoAnswer(located, kind))")
    }
}

/// What the supervisor says of a process that did not answer: restarting, crash-looping, or not
/// running at all.
func whyNoAnswer(_ located: LocatedConfig, _ kind: ServiceKind) async -> String {
    guard let control = try? Control(located) else { return "(is the cluster up? ./Scripts/cluster status)" }
    defer { Task { await control.client.close() } }
    guard let status = await control.status() else { return "(the cluster is not running: ./Scripts/cluster up)" }
    guard let process = status.processes.first(where: { $0.kind == kind.rawValue }) else { return "(no \(kind.rawValue) process is configured)" }
    return "(supervisor: \(process.name) is \(process.stateDescription))"
}

struct Invoke: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a worker's function once with an event, like the Lambda console's Test button.",
        discussion: """
            Templates: sqs (a message "Hello from SQS!", lab step 4.4) for ingest-worker, dynamodb-update \
            (an INSERT, a MODIFY and a REMOVE record, lab step 7.4) for stream-worker. The templates keep \
            their fixed ids, so running one twice shows the functions' idempotency: the order is written \
            once, the notification sent once.
            """)

    @OptionGroup var cluster: ClusterOptions

    @Argument(help: "ingest-worker or stream-worker (or an instance, e.g. ingest-worker-2).")
    var worker: String

    @Option(help: "A console test event: sqs or dynamodb-update.")
    var template: String?

    @Option(help: "A file with the event JSON (instead of --template).")
    var event: String?

    func run() async throws {
        do {
            let located = try cluster.load()
            guard let (kind, index) = ServiceKind(rawValue: worker).map({ ($0, 1) }) ?? ServiceKind.parse(instanceName: worker), kind.isWorker else {
                throw CLIError("\(worker) is not a worker; use ingest-worker or stream-worker")
            }
            let body: Data
            switch (template, event) {
            case (let name?, nil):
                guard let text = TestEvents.named(name, region: located.config.region, account: located.config.account) else {
                    throw CLIError("unknown template \(name); use \(TestEvents.names.joined(separator: " or "))")
                }
                body = Data(text.utf8)
            case (nil, let path?):
                guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("cannot read \(path)") }
                body = data
            default: throw CLIError("give exactly one of --template and --event")
            }
            let client = try NimbusClient.standalone(name: located.cliName, cluster: located.config,
                                                credentials: CredentialSource(file: CredentialSource.file(dataDirectory: located.dataDirectory, name: "root")))
            let answer = try await client.request(LambdaAction.invoke, to: kind, instance: index, body: body, timeout: .seconds(10), attempts: 1)
            await client.close()
            let object = try JSONSerialization.jsonObject(with: answer) as? [String: Any] ?? [:]
            let failed = object["FunctionError"] != nil
            print(failed ? "Execution result: failed" : "Execution result: succeeded")
            let pretty = try JSONSerialization.data(withJSONObject: object["Payload"] ?? [:], options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: pretty, as: UTF8.self))
            if failed { throw ExitCode(2) }
        } catch let exit as ExitCode {
            throw exit
        } catch { Self.fail(error) }
    }
}

struct Items: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List a table's items (the console's Explore items), orders by default.")

    @OptionGroup var cluster: ClusterOptions

    @Argument(help: "The table.")
    var table = "orders"

    @Flag(help: "Print the items as DynamoDB JSON, one per line.")
    var json = false

    @Option(help: "Stop after this many items.")
    var limit = 1000

    func run() async throws {
        do {
            let located = try cluster.load()
            var items: [[String: Any]] = []
            var start: Any?
            repeat {
                var request: [String: Any] = ["TableName": table, "Limit": min(500, limit - items.count)]
                if let start { request["ExclusiveStartKey"] = start }
                let answer = try await ask(located, DynamoDBAction.scan, to: .table, try JSONSerialization.data(withJSONObject: request))
                let page = try JSONSerialization.jsonObject(with: answer) as? [String: Any] ?? [:]
                items += page["Items"] as? [[String: Any]] ?? []
                start = page["LastEvaluatedKey"]
            } while start != nil && items.count < limit
            if json {
                for item in items {
                    print(String(decoding: try JSONSerialization.data(withJSONObject: item, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self))
                }
                return
            }
            print(ItemTable.render(items))
            print("\(items.count) item\(items.count == 1 ? "" : "s")")
        } catch { Self.fail(error) }
    }
}

/// Items as a text table: key attributes first, then the others, values shown plainly.
enum ItemTable {
    static func render(_ items: [[String: Any]]) -> String {
        var columns: [String] = []
        for item in items { for key in item.keys.sorted() where !columns.contains(key) { columns.append(key) } }
        if let id = columns.firstIndex(of: "orderID") { columns.insert(columns.remove(at: id), at: 0) }
        let rows = items.map { item in columns.map { plain(item[$0]) } }
        let widths = columns.indices.map { i in min(60, max(columns[i].count, rows.map { $0[i].count }.max() ?? 0)) }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { cell, width in
                let shown = cell.count > width ? String(cell.prefix(width - 1)) + "…" : cell
                return shown.padding(toLength: width, withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
        return ([line(columns)] + rows.map(line)).joined(separator: "\n")
    }

    /// `{"S": "x"}` → `x`; numbers, booleans and nested values as compact JSON.
    static func plain(_ value: Any?) -> String {
        guard let typed = value as? [String: Any], let (type, inner) = typed.first else { return "" }
        switch type {
        case "S", "N": return "\(inner)"
        case "NULL": return "null"
        case "BOOL": return (inner as? Bool).map { $0 ? "true" : "false" } ?? "\(inner)"
        default:
            let data = (try? JSONSerialization.data(withJSONObject: inner, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
    }
}

struct Subscribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Subscribe an endpoint to POC-Topic (email subscriptions get a confirmation mail first).")

    @OptionGroup var cluster: ClusterOptions

    @Argument(help: "email, email-json, http, https or sqs.")
    var `protocol`: String

    @Argument(help: "The address, URL or queue ARN.")
    var endpoint: String

    @Option(help: "The topic's name.")
    var topic = "POC-Topic"

    @Flag(help: "RawMessageDelivery (sqs, http, https): the endpoint gets the message itself, not SNS's JSON document.")
    var raw = false

    func run() async throws {
        do {
            let located = try cluster.load()
            let arn = "arn:aws:sns:\(located.config.region):\(located.config.account):\(topic)"
            struct Request: Encodable {
                var TopicArn: String
                var `Protocol`: String
                var Endpoint: String
                var ReturnSubscriptionArn = true
                var Attributes: [String: String]?
            }
            let request = Request(TopicArn: arn, Protocol: `protocol`, Endpoint: endpoint, Attributes: raw ? ["RawMessageDelivery": "true"] : nil)
            let answer = try await ask(located, SNSAction.subscribe, to: .notifier, try JSONEncoder().encode(request))
            let object = try JSONSerialization.jsonObject(with: answer) as? [String: Any] ?? [:]
            print(object["SubscriptionArn"] as? String ?? String(decoding: answer, as: UTF8.self))
            if ["email", "email-json", "http", "https"].contains(`protocol`) {
                print("nimbus: a confirmation was sent to \(endpoint); nothing is delivered until it is confirmed")
            }
        } catch { Self.fail(error) }
    }
}

struct Subscriptions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List POC-Topic's subscriptions and whether they are confirmed.")

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "The topic's name.")
    var topic = "POC-Topic"

    @Flag(help: "Print the answer as JSON.")
    var json = false

    func run() async throws {
        do {
            let located = try cluster.load()
            let arn = "arn:aws:sns:\(located.config.region):\(located.config.account):\(topic)"
            let answer = try await ask(located, SNSAction.listSubscriptionsByTopic, to: .notifier, try JSONEncoder().encode(["TopicArn": arn]))
            if json { print(String(decoding: answer, as: UTF8.self)); return }
            let object = try JSONSerialization.jsonObject(with: answer) as? [String: Any] ?? [:]
            let list = object["Subscriptions"] as? [[String: Any]] ?? []
            for s in list {
                print("\(s["Protocol"] as? String ?? "")  \(s["Endpoint"] as? String ?? "")  \(s["SubscriptionArn"] as? String ?? "")")
            }
            print("\(list.count) subscription\(list.count == 1 ? "" : "s") on \(topic)")
        } catch { Self.fail(error) }
    }
}
