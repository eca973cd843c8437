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
        #expect(defaults.notifier.smtpTLS == .off && defaults.notifier.smtpCAFile == nil)
        // Any readable file will do as the CA file here: its contents are OpenSSL's to judge.
        let caFile = #filePath
        let c = try ClusterConfig.parse("""
            dataDirectory: /var/nimbus
            services: {mail-sink: {instances: 0}}
            notifier: {smtpHost: mail.local, smtpPort: 25, fromAddress: orders@shop.example, smtpUsername: u, smtpPassword: p,
                       publicBaseURL: "https://nimbus.example", mailSinkDirectory: inbox, smtpTLS: starttls, smtpCAFile: "\(caFile)"}
            """)
        #expect(c.notifier.smtpTLS == .starttls && c.notifier.smtpCAFile == caFile)
        #expect(try ClusterConfig.parse("services: {mail-sink: {instances: 0}}\nnotifier: {smtpTLS: tls}").notifier.smtpTLS == .tls)
        #expect(c.notifier.smtpHost == "mail.local" && c.notifier.smtpPort == 25)
        #expect(c.notifier.smtpUsername == "u" && c.notifier.smtpPassword == "p")
        #expect(c.mailSinkDirectoryURL(relativeTo: URL(fileURLWithPath: "/etc")).path == "/var/nimbus/inbox")
    }

    @Test func mistakesAreReported() {
        for bad in ["notifier: {smtpPort: 0}", "notifier: {fromAddress: nobody}", "notifier: {smtpUsername: u}",
                    "notifier: {publicBaseURL: ftp://x}", "notifier: {smtpHost: \"\"}",
                    "notifier: {smtpTLS: yes}", "notifier: {smtpTLS: STARTTLS}", "notifier: {smtpCAFile: /no/such/ca.pem}",
                    "notifier: {smtpCAFile: relative/ca.pem}",
                    // The local mail sink (instances: 1 by default) speaks plain SMTP only.
                    "notifier: {smtpTLS: starttls}"] {
            #expect(throws: ConfigError.self, "\(bad)") { try ClusterConfig.parse(bad) }
        }
    }
}
