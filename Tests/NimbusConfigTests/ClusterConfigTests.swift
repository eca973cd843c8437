import Foundation
import Testing
import NimbusConfig

@Suite struct ClusterConfigTests {
    @Test func anEmptyFileMeansTheDefaults() throws {
        #expect(try ClusterConfig.parse("") == ClusterConfig())
        #expect(try ClusterConfig.parse("{}") == ClusterConfig())
    }

    @Test func theShippedFileSaysWhatTheDefaultsAre() throws {
        let file = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../nimbus.yaml").path
        #expect(try ClusterConfig.load(path: file) == ClusterConfig())
    }

    @Test func valuesOverrideDefaultsAndWorkersTakeConsecutivePorts() throws {
        let config = try ClusterConfig.parse("""
            region: eu-west-1
            account: "123456789012"
            dataDirectory: /var/lib/nimbus
            heartbeat: { intervalMilliseconds: 500, liveness: 4 }
            storage: { minFreeDiskMB: 0 }
            services:
              queue: { endpoint: tcp://10.0.0.5:9002, bind: tcp://0.0.0.0:9002 }
              ingest-worker: { endpoint: tcp://127.0.0.1:9100, instances: 3 }
            """)
        #expect(config.region == "eu-west-1")
        #expect(config.heartbeat.liveness == 4)
        #expect(config.storage.minFreeDiskMB == 0)
        #expect(ClusterConfig().storage.minFreeDiskMB == 64)
        #expect(config.endpoint(.queue).description == "tcp://10.0.0.5:9002")
        #expect(config.bindEndpoint(.queue).description == "tcp://0.0.0.0:9002")
        #expect(config.instances(.ingestWorker) == 3)
        #expect(config.endpoint(.ingestWorker, instance: 3).description == "tcp://127.0.0.1:9102")
        #expect(config.endpoint(.table).description == "tcp://127.0.0.1:7103")
        #expect(config.dataDirectoryURL(relativeTo: URL(fileURLWithPath: "/x")).path == "/var/lib/nimbus")
        #expect(ClusterConfig().dataDirectoryURL(relativeTo: URL(fileURLWithPath: "/x")).path == "/x/.nimbus")
    }

    @Test(arguments: [
        ("services: { mailer: { endpoint: tcp://127.0.0.1:1 } }", "not a service kind"),
        ("services: { queue: { endpoint: http://x } }", "tcp://HOST:PORT"),
        ("services: { queue: { endpoint: tcp://127.0.0.1:99999 } }", "port from 1 to 65535"),
        ("services: { queue: { instances: 2 } }", "only workers scale"),
        ("services: { ingest-worker: { instances: 11 } }", "0...10"),
        ("services: { table: { endpoint: tcp://127.0.0.1:7102 } }", "would both bind"),
        ("services: { stream-worker: { endpoint: tcp://127.0.0.1:7115 } }", "would both bind"),
        ("account: 42", "12-digit"),
        ("heartbeat: { liveness: 0 }", "liveness"),
        ("heartbeat: { intervalMilliseconds: fast }", "heartbeat.intervalMilliseconds"),
        ("restart: { initialBackoffSeconds: 10, maxBackoffSeconds: 5 }", "backoff"),
        ("region: [", "config"),
        ("storage: { minFreeDiskMB: -1 }", "storage.minFreeDiskMB"),
        // A misspelt key is named, with the key it probably means, instead of leaving a default.
        ("gatway: { rateLimit: 5 }", "unknown key gatway (did you mean gateway?)"),
        ("gateway: { ratelimit: 5 }", "gateway.ratelimit (did you mean gateway.rateLimit?)"),
        ("table: { streamShard: 4 }\nzzz: 1", "unknown keys zzz, table.streamShard (did you mean table.streamShards?)"),
        ("services: { queue: { endpiont: tcp://127.0.0.1:1 } }", "services.queue.endpiont (did you mean services.queue.endpoint?)"),
    ])
    func mistakesAreNamed(yaml: String, mentions: String) {
        do {
            _ = try ClusterConfig.parse(yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect("\(error)".contains(mentions), "\(error)")
        }
    }

    @Test func instanceNamesRoundTrip() {
        #expect(ServiceKind.queue.instanceName(1) == "queue")
        #expect(ServiceKind.ingestWorker.instanceName(2) == "ingest-worker-2")
        #expect(ServiceKind.parse(instanceName: "ingest-worker-2")! == (.ingestWorker, 2))
        #expect(ServiceKind.parse(instanceName: "queue")! == (.queue, 1))
        #expect(ServiceKind.parse(instanceName: "queue-2") == nil)
        #expect(ServiceKind.parse(instanceName: "ingest-worker-11") == nil)
        #expect(ServiceKind.parse(instanceName: "ingest-worker") == nil)
        #expect(ServiceKind.allCases.sorted().first == .iam)
    }

    @Test func boundEndpointsReserveEveryWorkerPort() {
        let bound = ClusterConfig().boundEndpoints()
        #expect(bound.count == 1 + 7 + 2 * ServiceKind.maxInstances)
        #expect(Set(bound.map(\.endpoint)).count == bound.count)
    }
}
