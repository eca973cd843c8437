import Foundation
import Testing
@testable import NimbusConfig

@Suite struct HostPlacementTests {
    static let spread = """
        dataDirectory: /srv/nimbus
        hosts:
          h1: {address: 10.77.0.1, dataDirectory: /data/h1}
          h2: {address: 10.77.0.2}
          h3: {address: 10.77.0.3}
        services:
          iam: {host: h1}
          queue: {host: h1}
          mail-sink: {host: h1}
          table: {host: h2}
          notifier: {host: h2}
          gateway: {host: h3}
          ingest-worker: {host: h3, instances: 2}
          stream-worker: {host: h3}
        """

    @Test func withoutHostsNothingChanges() throws {
        let config = try ClusterConfig.parse("")
        #expect(!config.isMultiHost)
        #expect(config.host(of: .queue) == nil)
        #expect(config.kinds(on: nil) == ServiceKind.allCases)
        #expect(config.supervisorEndpoint(host: nil) == config.supervisor.endpoint)
        #expect(config.boundEndpoints(on: nil).count == config.boundEndpoints().count)
    }

    @Test func aPlacedServiceBindsAndIsReachedAtItsHostsAddressOnItsOwnPort() throws {
        let config = try ClusterConfig.parse(Self.spread)
        #expect(config.endpoint(.queue).description == "tcp://10.77.0.1:7102")
        #expect(config.endpoint(.table).description == "tcp://10.77.0.2:7103")
        #expect(config.endpoint(.ingestWorker, instance: 2).description == "tcp://10.77.0.3:7111")
        #expect(config.bindEndpoint(.notifier).description == "tcp://10.77.0.2:7104")
        // The gateway's HTTP side, the notifier's links and the mail sink follow their hosts.
        #expect(config.gateway.http == "10.77.0.3:8080")
        #expect(config.notifier.publicBaseURL == "http://10.77.0.3:8080")
        #expect(config.notifier.smtpHost == "10.77.0.1")
        // One supervisor per host, at the host's address on the supervisor's port.
        #expect(config.supervisorEndpoint(host: "h2").description == "tcp://10.77.0.2:7100")
        #expect(config.supervisedHosts == ["h1", "h2", "h3"])
        #expect(config.kinds(on: "h2") == [.table, .notifier])
        #expect(config.host(ofProcess: "ingest-worker-2") == "h3")
    }

    @Test func eachHostHasItsDataDirectoryOrTheConfigs() throws {
        let config = try ClusterConfig.parse(Self.spread)
        let base = URL(fileURLWithPath: "/etc/nimbus")
        #expect(config.dataDirectoryURL(host: "h1", relativeTo: base).path == "/data/h1")
        #expect(config.dataDirectoryURL(host: "h2", relativeTo: base).path == "/srv/nimbus")
        // The mailboxes are the mail sink's host's.
        #expect(config.mailSinkDirectoryURL(relativeTo: base).path == "/data/h1/mail")
    }

    @Test func aPortIsTakenOncePerHostNotOnceInAll() throws {
        // table on the queue's port, on another host: allowed; on the same host: refused.
        let config = try ClusterConfig.parse(Self.spread.replacingOccurrences(of: "table: {host: h2}", with: "table: {host: h2, endpoint: tcp://x:7102}"))
        #expect(config.endpoint(.table).description == "tcp://10.77.0.2:7102")
        #expect(config.boundEndpoints(on: "h1").map(\.owner).contains("queue"))
        #expect(!config.boundEndpoints(on: "h1").map(\.owner).contains("table"))
        #expect(throws: ConfigError.self) {
            try ClusterConfig.parse(Self.spread.replacingOccurrences(of: "table: {host: h2}", with: "table: {host: h1, endpoint: tcp://x:7102}"))
        }
    }

    @Test func mistakesAreNamed() throws {
        let unknownHost = Self.spread.replacingOccurrences(of: "table: {host: h2}", with: "table: {host: h9}")
        #expect(throws: ConfigError("services.table.host: h9 is not a host (known: h1, h2, h3)")) { try ClusterConfig.parse(unknownHost) }
        let unplaced = Self.spread.replacingOccurrences(of: "  table: {host: h2}\n", with: "")
        #expect(throws: ConfigError("with several hosts every service names its host: services.table.host is missing; hosts: h1, h2, h3")) {
            try ClusterConfig.parse(unplaced)
        }
        #expect(throws: ConfigError.self) { try ClusterConfig.parse("hosts: {h1: {dataDirectory: /x}}") }
        #expect(throws: ConfigError.self) { try ClusterConfig.parse("hosts: {h1: {adress: 10.0.0.1}}") }
        #expect(throws: ConfigError.self) { try ClusterConfig.parse("hosts: {h1: {address: \"10.0.0.1:80\"}}") }
    }

    @Test func withOneHostEveryServiceIsThere() throws {
        let config = try ClusterConfig.parse("hosts: {solo: {address: 192.0.2.7}}")
        #expect(config.host(of: .queue) == "solo")
        #expect(config.endpoint(.iam).description == "tcp://192.0.2.7:7101")
        #expect(config.kinds(on: "solo") == ServiceKind.allCases)
    }
}
