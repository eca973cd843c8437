import Foundation
import Testing
@testable import NimbusConfig

@Suite struct ConsoleConfigTests {
    @Test func onAtSlashConsoleByDefault() throws {
        let config = try ClusterConfig.parse("")
        #expect(config.console.enabled)
        #expect(config.console.path == "/console/")
    }

    @Test func offOrElsewhere() throws {
        #expect(try ClusterConfig.parse("console: {enabled: false}").console.enabled == false)
        #expect(try ClusterConfig.parse("console: {path: /ops/console/}").console.path == "/ops/console/")
        // The trailing slash is implied.
        #expect(try ClusterConfig.parse("console: {path: /admin}").console.path == "/admin/")
    }

    @Test(arguments: ["/", "console/", "/sns/", "/orders/", "/health/", "/a b/", "/../", "/a//b/", "/ü/", "/x?y/"])
    func pathsThatCannotBeServedAreRefused(path: String) {
        #expect(throws: ConfigError.self) { try ClusterConfig.parse("console: {path: \"\(path)\"}") }
    }

    @Test func aMisspeltKeyIsNamed() {
        #expect(throws: ConfigError.self) { try ClusterConfig.parse("console: {enable: false}") }
    }
}
