import Foundation
import MailSink
import NimbusRuntime

/// The local SMTP sink as a cluster node: the supervisor starts, health-checks and restarts it like
/// any other process. It listens on `notifier.smtpHost:smtpPort` and appends every mail it receives to
/// the recipient's mbox file, `<dataDirectory>/<notifier.mailSinkDirectory>/<address>.mbox`. Plain SMTP,
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
        ["smtp": "\(server.port)", "directory": server.directory.path, "mails": "\(server.mailsStored)",
         "duplicatesCollapsed": "\(server.duplicates)"]
    }
}

await NodeMain.run(kind: .mailSink) { configuration in try MailSinkService(configuration: configuration) }
