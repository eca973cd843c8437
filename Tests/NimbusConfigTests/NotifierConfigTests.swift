import Foundation
import Testing
@testable import NimbusConfig

@Suite struct NotifierConfigTests {
    @Test func defaultsAndOverrides() throws {
        let defaults = try ClusterConfig.parse("")
        #expect(defaults.notifier.smtpHost == "127.0.0.1" && defaults.notifier.smtpPort == 2525)
        #expect(defaults.notifier.fromAddress == "no-reply@nimbus.local")
        #expect(defaults.notifier.publicBaseURL == "http://127.0.0.1:8080")
        #expect(defaults.notifier.smtpUsername == nil)
        let c = try ClusterConfig.parse("""
            dataDirectory: /var/nimbus
            notifier: {smtpHost: mail.local, smtpPort: 25, fromAddress: orders@shop.example, smtpUsername: u, smtpPassword: p,
                       publicBaseURL: "https://nimbus.example", mailSinkDirectory: inbox}
            """)
        #expect(c.notifier.smtpHost == "mail.local" && c.notifier.smtpPort == 25)
        #expect(c.notifier.smtpUsername == "u" && c.notifier.smtpPassword == "p")
        #expect(c.mailSinkDirectoryURL(relativeTo: URL(fileURLWithPath: "/etc")).path == "/var/nimbus/inbox")
    }

    @Test func mistakesAreReported() {
        for bad in ["notifier: {smtpPort: 0}", "notifier: {fromAddress: nobody}", "notifier: {smtpUsername: u}",
                    "notifier: {publicBaseURL: ftp://x}", "notifier: {smtpHost: \"\"}"] {
            #expect(throws: ConfigError.self, "\(bad)") { try ClusterConfig.parse(bad) }
        }
    }
}
