import Foundation
import FunctionRuntime
import NimbusRuntime
import NimbusStack
import SupervisorCore

/// How the console reaches the cluster: the same `nimbus/1` actions as the CLI, signed with the
/// account root's credentials (`<data>/credentials/root.json`), so IAM still applies. With
/// `iam.enforce` off nobody checks signatures, and nothing is signed.
struct ConsoleBackend: Sendable {
    /// Signs as the account root.
    let client: NimbusClient
    let cluster: ClusterConfig
    let dataDirectory: URL
    /// What the stack declares that the console shows: the table, topic, lease table, functions.
    let lab: LabResources

    init(runtime: NodeRuntime) {
        let configuration = runtime.configuration
        cluster = configuration.cluster
        dataDirectory = configuration.dataDirectory
        client = cluster.iam.enforce
            ? runtime.client.signing(with: CredentialSource(file: CredentialSource.file(dataDirectory: configuration.dataDirectory, name: "root")))
            : runtime.client
        lab = LabResources(stackFile: configuration.stackFile, cluster: cluster, logger: runtime)
    }

    /// One request to instance `instance` of `kind`; its failure as the console answers it.
    func call(_ action: String, to kind: ServiceKind, instance: Int = 1, body: Data = Data("{}".utf8),
              timeout: Duration = .seconds(3), attempts: Int = 1) async throws(ConsoleError) -> Data {
        let endpoint = cluster.endpoint(kind, instance: instance).description
        do {
            return try await client.request(action, to: endpoint, body: body, timeout: timeout, attempts: attempts)
        } catch {
            throw ConsoleError.from(error, node: kind.instanceName(instance), endpoint: endpoint)
        }
    }

    /// The same with a JSON object for a body and the answer read as one.
    func object(_ action: String, to kind: ServiceKind, instance: Int = 1, _ body: [String: Any],
                timeout: Duration = .seconds(3), attempts: Int = 1) async throws(ConsoleError) -> [String: Any] {
        let answer = try await call(action, to: kind, instance: instance, body: ConsoleJSON.data(body), timeout: timeout, attempts: attempts)
        return try ConsoleJSON.answer(answer, from: kind.instanceName(instance))
    }

    /// The same with typed bodies (the services' own request and answer shapes).
    func typed<Answer: Decodable>(_ action: String, to kind: ServiceKind, instance: Int = 1, _ body: some Encodable, as: Answer.Type,
                                  timeout: Duration = .seconds(3), attempts: Int = 1) async throws(ConsoleError) -> Answer {
        let data: Data
        do { data = try JSONEncoder().encode(body) } catch { throw ConsoleError.validation("cannot encode the request: \(error)") }
        let answer = try await call(action, to: kind, instance: instance, body: data, timeout: timeout, attempts: attempts)
        do {
            return try JSONDecoder().decode(Answer.self, from: answer)
        } catch {
            throw ConsoleError(.badGateway, "InternalFailure", "\(kind.instanceName(instance)) answered \(action) in an unexpected shape: \(error)")
        }
    }

    /// A request to the supervisor's control socket (Status, Scale, Kill, Restart).
    func supervisor<Answer: Decodable>(_ action: String, _ body: some Encodable, as: Answer.Type,
                                       timeout: Duration = .seconds(2)) async throws(ConsoleError) -> Answer {
        let endpoint = cluster.supervisor.endpoint.description
        let answer: Data
        do {
            answer = try await client.request(action, to: endpoint, body: try JSONEncoder().encode(body), timeout: timeout, attempts: 1)
        } catch {
            throw ConsoleError.from(error, node: "supervisor", endpoint: endpoint)
        }
        do {
            return try JSONDecoder().decode(Answer.self, from: answer)
        } catch {
            throw ConsoleError(.badGateway, "InternalFailure", "the supervisor answered \(action) in an unexpected shape: \(error)")
        }
    }

    /// The supervisor's status.
    func status(timeout: Duration = .seconds(2)) async throws(ConsoleError) -> StatusReply {
        try await supervisor(NimbusAction.status, [String: String](), as: StatusReply.self, timeout: timeout)
    }

    /// Where a process's log is: `<data>/logs/<name>.log`.
    func logFile(_ name: String) -> URL { dataDirectory.appendingPathComponent("logs").appendingPathComponent("\(name).log") }

    /// The local mail sink's folder (`notifier.mailSinkDirectory`, relative to the data directory).
    var mailDirectory: URL {
        let folder = cluster.notifier.mailSinkDirectory
        return folder.hasPrefix("/") ? URL(fileURLWithPath: folder) : dataDirectory.appendingPathComponent(folder)
    }
}

/// The lab's resources the console works with, from the stack when there is one (else the lab's
/// names): POC-Queue is `gateway.queueName`; the orders table is the one with a stream; the topic,
/// the lease table and the functions are the stack's.
struct LabResources: Sendable {
    let template: StackTemplate?
    let table: String
    let topicName: String
    let leaseTable: String

    init(stackFile: URL?, cluster: ClusterConfig, logger runtime: NodeRuntime?) {
        var template: StackTemplate?
        if let stackFile, FileManager.default.fileExists(atPath: stackFile.path) {
            do { template = try StackTemplate.load(path: stackFile.path) } catch {
                runtime?.logger.warning("console: cannot read the stack \(stackFile.path): \(error)")
            }
        }
        self.template = template
        var table = "orders", topic = "POC-Topic"
        if let template {
            for resource in template.resources(ofType: "AWS::DynamoDB::Table") {
                guard case .string(let name)? = resource.properties["TableName"],
                      case .map(let spec)? = resource.properties["StreamSpecification"], !spec.isEmpty else { continue }
                table = name
                break
            }
            if let resource = template.resources(ofType: "AWS::SNS::Topic").first, case .string(let name)? = resource.properties["TopicName"] {
                topic = name
            }
        }
        self.table = table
        topicName = topic
        // The stream workers' own bookkeeping table (FunctionNodeService's).
        leaseTable = StreamLeases.defaultTable
    }
}
