import ArgumentParser
import Foundation
import MailSink

/// nimbus-mail-sink: a local SMTP server that writes every mail it receives into a folder as
/// .eml files (one per recipient). For development and tests; it accepts any sender, recipient and
/// credentials, and speaks plain SMTP only (no TLS).
struct MailSinkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nimbus-mail-sink",
                                                    abstract: "A local SMTP server that writes received mail as .eml files.")

    @Option(help: "Port to listen on (127.0.0.1 unless --host).") var port: Int = 2525
    @Option(help: "Folder the .eml files go into (created if missing).") var dir: String = "mail"
    @Option(help: "IPv4 address to listen on.") var host: String = "127.0.0.1"

    func run() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        signal(SIGPIPE, SIG_IGN)
        let server = try MailSinkServer(host: host, port: port, directory: URL(fileURLWithPath: dir))
        server.run()
    }
}

MailSinkCommand.main()
