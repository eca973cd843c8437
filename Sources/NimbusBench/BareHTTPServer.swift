import ArgumentParser
import Hummingbird

/// The smallest Hummingbird 2 server: a POST route that reads the body and answers "ok", with no
/// middleware and no work behind it. Under the gateway's wrk load its rate, and the CPU it takes per
/// request, are what any gateway built on Hummingbird starts from on this machine
/// (`Scripts/bench floors` runs it).
struct BareHTTPServer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bare-http", abstract: "Serve a bare Hummingbird POST route on 127.0.0.1 (a floor for the gateway's numbers).")

    @Option(help: "Port on 127.0.0.1.") var port = 18181

    func run() async throws {
        let router = Router()
        router.post("/") { request, _ -> String in
            _ = try await request.body.collect(upTo: 1 << 20)
            return "ok"
        }
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
        try await app.runService()
    }
}
