import Foundation
import MailSink
import NimbusRuntime

/// The local SMTP sink as a cluster node: the supervisor starts, health-checks and restarts it like
/// any other process. It listens on `notifier.smtpHost:smtpPort` and writes every mail it receives as
/// an .eml file (one per recipient) into `<dataDirectory>/<notifier.mailSinkDirectory>`. Plain SMTP,
/// any sender, recipient and credentials: for development and tests, not a mail server.
struct MailSinkService: NodeService {
    let server: MailSinkServer

    init(configuration: NodeConfiguration) throws {
        let settings = configuration.cluster.notifier
        let directory = settings.mailSinkDirectory.hasPrefix("/") ? URL(fileURLWithPath: settings.mailSinkDirectory)
            : configuration.dataDirectory.appendingPathComponent(settings.mailSinkDirectory)
        signal(SIGPIPE, SIG_IGN)
        server = try MailSinkServer(host: settings.smtpHost, port: settings.smtpPort, directory: directory)
        server.start()
    }

    var actions: Set<String> { [] }

    func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data {
        throw WireError(.invalidAction, "the mail sink answers only health")
    }

    func healthDetails() async -> [String: String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: server.directory.path))?.filter { $0.hasSuffix(".eml") }.count ?? 0
        return ["smtp": "\(server.port)", "directory": server.directory.path, "mails": "\(files)", "duplicatesCollapsed": "\(server.duplicates)"]
    }
}

await NodeMain.run(kind: .mailSink) { configuration in try MailSinkService(configuration: configuration) }
