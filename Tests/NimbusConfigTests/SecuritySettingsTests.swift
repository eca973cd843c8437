import Foundation
import Testing
import NimbusConfig

@Suite struct SecuritySettingsTests {
    @Test func curveIsAutoByDefaultAndEachModeParses() throws {
        #expect(ClusterConfig().security.curve == .auto)
        #expect(try ClusterConfig.parse("security: {curve: always}").security.curve == .always)
        // YAML 1.1 would read a bare `off` as false: it must still mean the mode.
        #expect(try ClusterConfig.parse("security: {curve: off}").security.curve == .off)
        #expect(try ClusterConfig.parse("security:\n  curve: auto\n").security.curve == .auto)
    }

    @Test func aWrongModeOrKeyIsRefusedByName() throws {
        #expect(throws: ConfigError.self) { try ClusterConfig.parse("security: {curve: on}") }
        do {
            _ = try ClusterConfig.parse("security: {curve: sometimes}")
            Issue.record("accepted curve: sometimes")
        } catch let error as ConfigError {
            #expect(error.description.contains("security.curve must be one of auto, always, off"))
        }
        do {
            _ = try ClusterConfig.parse("security: {curv: always}")
            Issue.record("accepted security.curv")
        } catch let error as ConfigError {
            #expect(error.description.contains("security.curv (did you mean security.curve?)"))
        }
    }

    @Test(arguments: [
        ("127.0.0.1", true), ("127.1.2.3", true), ("localhost", true), ("LocalHost", true), ("::1", true), ("[::1]", true),
        ("10.0.0.5", false), ("0.0.0.0", false), ("*", false), ("queue", false), ("127.0.0.256", false), ("128.0.0.1", false),
        ("127.0.0", false), ("::", false),
    ])
    func loopbackHosts(host: String, loopback: Bool) {
        #expect(ClusterConfig.isLoopback(host: host) == loopback)
    }

    @Test func autoEncryptsExactlyTheLinksThatLeaveTheHost() throws {
        let config = try ClusterConfig.parse("""
            services:
              queue: { endpoint: tcp://10.0.0.5:7102 }
              table: { endpoint: tcp://127.0.0.1:7103, bind: tcp://0.0.0.0:7103 }
              ingest-worker: { endpoint: tcp://node-7:7110, instances: 2 }
            """)
        #expect(config.curveApplies(toProcess: "queue") == true)
        #expect(config.curveApplies(toProcess: "table") == true)  // bound to every interface
        #expect(config.curveApplies(toProcess: "iam") == false)
        #expect(config.curveApplies(toProcess: "supervisor") == false)
        #expect(config.curveApplies(toProcess: "ingest-worker-3") == true)
        #expect(config.curveApplies(toProcess: "nobody") == nil)
        #expect(config.curveInUse)
        #expect(!ClusterConfig().curveInUse)  // the default cluster is all loopback: nothing changes
        var always = ClusterConfig()
        always.security.curve = .always
        #expect(always.curveApplies(toProcess: "iam") == true)
        #expect(always.curveInUse)
        var off = config
        off.security.curve = .off
        #expect(off.curveApplies(toProcess: "queue") == false)
        #expect(!off.curveInUse)
    }

    @Test func everyEndpointNamesItsProcess() throws {
        let config = try ClusterConfig.parse("""
            supervisor: { endpoint: tcp://127.0.0.1:9100 }
            services:
              stream-worker: { endpoint: tcp://127.0.0.1:9120, instances: 2 }
            """)
        #expect(config.processName(forEndpoint: "tcp://127.0.0.1:9100") == "supervisor")
        #expect(config.processName(forEndpoint: "tcp://127.0.0.1:7102") == "queue")
        #expect(config.processName(forEndpoint: "tcp://127.0.0.1:7106") == "mail-sink")
        #expect(config.processName(forEndpoint: "tcp://127.0.0.1:9120") == "stream-worker-1")
        #expect(config.processName(forEndpoint: "tcp://127.0.0.1:9124") == "stream-worker-5")  // a scaled-up instance
        #expect(config.processName(forEndpoint: "tcp://127.0.0.1:9999") == nil)
        #expect(config.processName(forEndpoint: "not an endpoint") == nil)
    }
}
