import Testing
import NimbusConfig
@testable import SupervisorCore

/// Drives the core the way the shell does, with a clock the test moves by hand.
struct Harness {
    var core: SupervisorCore
    var now = ContinuousClock.now
    var nextPID: Int32 = 100
    var pids: [String: Int32] = [:]
    var log: [SupervisorCore.Directive] = []

    init(host: String? = nil, _ configure: (inout ClusterConfig) -> Void = { _ in }) {
        var config = ClusterConfig()
        configure(&config)
        core = SupervisorCore(config: config, host: host)
    }

    /// Carries out directives like the shell: spawns succeed with fresh pids.
    mutating func run(_ directives: [SupervisorCore.Directive]) {
        var queue = directives[...]
        while let d = queue.popFirst() {
            log.append(d)
            if case .spawn(let name, _, _) = d {
                nextPID += 1
                pids[name] = nextPID
                queue.append(contentsOf: core.spawned(name, pid: nextPID, now: now))
            }
        }
    }

    mutating func start() { run(core.start(now: now)) }
    mutating func advance(_ d: Duration) { now += d; run(core.tick(now: now)) }
    mutating func beat(_ name: String) { run(core.heartbeat(name, incarnation: "inc-\(pids[name]!)", pid: pids[name], now: now)) }
    mutating func beatAll() { for p in core.snapshot(now: now) where p.pid != nil { beat(p.name) } }
    mutating func exit(_ name: String, _ status: String = "signal 9 (KILL)") {
        run(core.exited(pid: pids[name]!, status: status, now: now))
    }

    /// Brings every process to running.
    mutating func bringUp() {
        start()
        for _ in 0..<4 { beatAll() }
    }

    func state(_ name: String) -> String? { core.snapshot(now: now).first { $0.name == name }?.state }
    func spawned(since index: Int) -> [String] {
        log[index...].compactMap { if case .spawn(let n, _, _) = $0 { return n } else { return nil } }
    }
    func signals(since index: Int) -> [(String, SupervisorCore.Signal)] {
        log[index...].compactMap { if case .signal(_, let s, let n) = $0 { return (n, s) } else { return nil } }
    }
}

@Suite struct SupervisorCoreTests {
    @Test func bringUpGoesTierByTierAsEachTierTurnsHealthy() {
        var h = Harness()
        h.start()
        #expect(h.spawned(since: 0) == ["iam"])
        h.beat("iam")
        #expect(h.spawned(since: 0) == ["iam", "mail-sink", "queue", "table"])
        h.beat("queue")
        h.beat("mail-sink")
        #expect(h.spawned(since: 0).count == 4, "notifier waits for the whole tier")
        h.beat("table")
        #expect(h.spawned(since: 0).last == "notifier")
        h.beat("notifier")
        #expect(Set(h.spawned(since: 0).suffix(4)) == ["gateway", "ingest-worker-1", "stream-worker-1", "edge"])
        h.beatAll()
        #expect(h.core.snapshot(now: h.now).allSatisfy { $0.state == "running" })
        #expect(h.core.snapshot(now: h.now).count == 9)
        #expect(h.log.contains(.log(.info, "every process has started")))
    }

    @Test func aQuickDeathRestartsAfterABackoffThatDoublesUpToTheCap() {
        var h = Harness { $0.restart.maxRestarts = 100; $0.restart.withinSeconds = 1; $0.restart.maxBackoffSeconds = 32 }
        h.bringUp()
        var delays: [Duration] = []
        for _ in 0..<8 {
            h.exit("queue")
            #expect(h.state("queue") == "backoff")
            let mark = h.log.count
            var waited: Duration = .zero
            while !h.spawned(since: mark).contains("queue") && waited < .seconds(100) {
                h.advance(.milliseconds(100))
                waited += .milliseconds(100)
            }
            delays.append(waited)
            h.beat("queue")
        }
        #expect(delays.map { $0.components.seconds } == [1, 2, 4, 8, 16, 32, 32, 32])
        #expect(h.core.snapshot(now: h.now).first { $0.name == "queue" }?.restarts == 8)
    }

    @Test func aRestartGetsANewIncarnationAndPid() {
        var h = Harness()
        h.bringUp()
        let before = h.core.snapshot(now: h.now).first { $0.name == "table" }!
        h.exit("table")
        h.advance(.seconds(1))
        h.beat("table")
        let after = h.core.snapshot(now: h.now).first { $0.name == "table" }!
        #expect(after.pid != before.pid)
        #expect(after.incarnation != before.incarnation)
        #expect(after.state == "running")
        #expect(after.lastExit == "signal 9 (KILL)")
    }

    @Test func aProcessHealthyForAWhileIsRestartedAtOnceWithItsBackoffReset() {
        var h = Harness()
        h.bringUp()
        for _ in 0..<3 {
            h.exit("gateway")
            h.advance(.seconds(10))
            h.beat("gateway")
        }
        // Three quick deaths: the next delay would be 8 s. Healthy for stableAfter (5 s), it is not a
        // crash loop: killed now, it is started again in the same step, without a backoff.
        for _ in 0..<6 { h.advance(.seconds(1)); h.beatAll() }
        h.exit("gateway")
        #expect(h.state("gateway") == "starting")
        h.beat("gateway")
        // Killed again before 5 s of health: a quick death, after the initial 1 s again.
        h.advance(.seconds(2))
        h.exit("gateway")
        #expect(h.state("gateway") == "backoff")
        let mark = h.log.count
        h.advance(.milliseconds(1100))
        #expect(h.spawned(since: mark) == ["gateway"])
    }

    @Test func aStableRunResetsTheBackoffOfAProcessStillRunning() {
        var h = Harness()
        h.bringUp()
        for _ in 0..<3 {
            h.exit("queue")
            h.advance(.seconds(10))
            h.beat("queue")
        }
        for _ in 0..<6 { h.advance(.seconds(1)); h.beatAll() }
        // A later quick death starts over at 1 s, since the last run was stable.
        h.exit("queue")
        h.beat("queue")
        h.exit("queue")
        let mark = h.log.count
        h.advance(.milliseconds(1100))
        #expect(h.spawned(since: mark) == ["queue"])
    }

    @Test func aCrashLoopIsReportedAndStillRestartedUntilItStaysUp() {
        var h = Harness { $0.restart.maxRestarts = 3; $0.restart.withinSeconds = 60; $0.restart.maxBackoffSeconds = 4 }
        h.bringUp()
        for round in 1...6 {
            h.exit("notifier", "exit 1")
            #expect(h.state("notifier") == (round >= 3 ? "crash-looping" : "backoff"))
            let status = h.core.snapshot(now: h.now).first { $0.name == "notifier" }!
            if round >= 3 { #expect(status.stateDescription.hasPrefix("crash-looping, restart in ")) }
            #expect(status.stateDescription.hasSuffix("(last exit: exit 1)"))
            let mark = h.log.count
            h.advance(.seconds(5))
            #expect(h.spawned(since: mark) == ["notifier"], "restarted at the capped backoff, never given up on")
            h.beat("notifier")
        }
        #expect(h.log.contains { if case .log(.error, let m) = $0 { return m.contains("CRASH-LOOPING") } else { return false } })
        // Up for stableAfter: the loop is over, and the next death restarts at once.
        for _ in 0..<6 { h.advance(.seconds(1)); h.beatAll() }
        #expect(h.state("notifier") == "running")
        h.exit("notifier")
        #expect(h.state("notifier") == "starting")
    }

    @Test func bringUpGoesOnPastACrashLoopingLowerTier() {
        var h = Harness { $0.restart.maxRestarts = 2 }
        h.start()
        h.run(h.core.spawnFailed("iam", reason: "no such file", now: h.now))
        h.advance(.seconds(1))
        h.run(h.core.spawnFailed("iam", reason: "no such file", now: h.now))
        #expect(h.state("iam") == "crash-looping")
        h.advance(.milliseconds(100))
        #expect(h.spawned(since: 0).contains("queue"), "the tier above starts and reports iam as a dependency not ready")
    }

    @Test func aStableProcessWhoseRestartFailsToSpawnBacksOffInsteadOfSpinning() {
        var h = Harness()
        h.bringUp()
        for _ in 0..<6 { h.advance(.seconds(1)); h.beatAll() }
        // Fed by hand, as the shell does when the spawn itself fails (no `spawned` in between).
        let restart = h.core.exited(pid: h.pids["queue"]!, status: "signal 9 (KILL)", now: h.now)
        #expect(restart.contains { if case .spawn(let name, _, _) = $0 { return name == "queue" } else { return false } },
                "stable: restarted at once")
        // That new process never starts (its executable is gone): a quick death, not a second
        // "stable" one restarted in the same step, and so on forever.
        let again = h.core.spawnFailed("queue", reason: "no such file", now: h.now)
        #expect(!again.contains { if case .spawn = $0 { return true } else { return false } })
        #expect(h.state("queue") == "backoff")
    }

    @Test func aProcessThatHangsAtStartDoesNotHoldUpTheTiersAboveForever() {
        var h = Harness { $0.supervisor.startupTimeoutSeconds = 15; $0.restart.maxRestarts = 5 }
        h.start()
        // iam never answers: killed after each start-up timeout, too rarely to be crash-looping
        // within a minute; after maxRestarts the tier above starts all the same.
        var waited = Duration.zero
        while !h.spawned(since: 0).contains("queue") && waited < .seconds(600) {
            h.advance(.seconds(1))
            waited += .seconds(1)
            for (name, signal) in h.signals(since: max(0, h.log.count - 8)) where name == "iam" && signal == .kill {
                if h.state("iam") == "stopping" { h.exit("iam") }
            }
        }
        #expect(h.spawned(since: 0).contains("queue"))
        #expect(h.state("iam") != "running")
    }

    @Test func restartStopsARunningProcessAndStartsItAgainAtOnce() throws {
        var h = Harness()
        h.bringUp()
        var mark = h.log.count
        h.run(try h.core.restart("table", now: h.now))
        #expect(h.signals(since: mark).map(\.0) == ["table"])
        #expect(h.signals(since: mark).first?.1 == .terminate)
        mark = h.log.count
        h.exit("table", "exit 0")
        #expect(h.spawned(since: mark) == ["table"], "no backoff after a requested restart")
        h.beat("table")
        #expect(h.state("table") == "running")
        #expect(throws: SupervisorError.self) { try h.core.restart("nope", now: h.now) }
    }

    @Test func restartOfAKindTakesEveryInstanceAndOfACrashLoopStartsItNow() throws {
        var h = Harness { $0.restart.maxRestarts = 1; $0.restart.maxBackoffSeconds = 8 }
        h.bringUp()
        h.run(try h.core.scale(.ingestWorker, to: 2, now: h.now))
        h.beatAll()
        var mark = h.log.count
        h.run(try h.core.restart("ingest-worker", now: h.now))
        #expect(Set(h.signals(since: mark).map(\.0)) == ["ingest-worker-1", "ingest-worker-2"])
        h.exit("iam", "exit 1")
        #expect(h.state("iam") == "crash-looping")
        mark = h.log.count
        h.run(try h.core.restart("iam", now: h.now))
        #expect(h.spawned(since: mark) == ["iam"])
        h.beat("iam")
        #expect(h.state("iam") == "running")
    }

    @Test func readinessFromHeartbeatsShowsInStatus() {
        var h = Harness()
        h.bringUp()
        h.run(h.core.heartbeat("table", incarnation: "inc", pid: h.pids["table"], ready: false,
                               notReadyReason: "iam unreachable for 3 s", now: h.now))
        let table = h.core.snapshot(now: h.now).first { $0.name == "table" }!
        #expect(table.ready == false)
        #expect(table.stateDescription == "running, not ready: iam unreachable for 3 s")
        #expect(h.log.contains(.log(.warning, "table is not ready: iam unreachable for 3 s")))
        h.run(h.core.heartbeat("table", incarnation: "inc", pid: h.pids["table"], ready: true, now: h.now))
        #expect(h.core.snapshot(now: h.now).first { $0.name == "table" }!.stateDescription == "running")
        // A new incarnation has said nothing yet.
        h.exit("table")
        h.advance(.seconds(1))
        #expect(h.core.snapshot(now: h.now).first { $0.name == "table" }!.ready == nil)
    }

    @Test func silenceForTheLivenessWindowKillsAndRestarts() {
        var h = Harness()
        h.bringUp()
        let mark = h.log.count
        for _ in 0..<25 {
            h.advance(.milliseconds(100))
            for p in h.core.snapshot(now: h.now) where p.name != "iam" && p.pid != nil { h.beat(p.name) }
        }
        #expect(h.signals(since: mark).isEmpty, "2.5 s of silence is within 3 missed heartbeats")
        for _ in 0..<10 {
            h.advance(.milliseconds(100))
            for p in h.core.snapshot(now: h.now) where p.name != "iam" && p.pid != nil { h.beat(p.name) }
        }
        #expect(h.signals(since: mark).map(\.0) == ["iam"])
        #expect(h.signals(since: mark).first?.1 == .kill)
        h.exit("iam")
        #expect(h.state("iam") == "backoff")
        h.advance(.seconds(1))
        #expect(h.state("iam") == "starting")
    }

    @Test func aProcessThatNeverAnswersIsKilledAfterTheStartupTimeout() {
        var h = Harness { $0.supervisor.startupTimeoutSeconds = 5 }
        h.start()
        let mark = h.log.count
        h.advance(.seconds(4))
        #expect(h.signals(since: mark).isEmpty)
        h.advance(.seconds(2))
        #expect(h.signals(since: mark).map(\.0) == ["iam"])
    }

    @Test func heartbeatsGoOutOncePerInterval() {
        var h = Harness()
        h.bringUp()
        let mark = h.log.count
        for _ in 0..<30 { h.advance(.milliseconds(100)); h.beatAll() }
        let beats = h.log[mark...].filter { if case .heartbeat(let n, _, _) = $0 { return n == "queue" } else { return false } }
        #expect((2...4).contains(beats.count))
    }

    @Test func anAnswerFromAnOldIncarnationDoesNotVouchForTheNewOne() {
        var h = Harness()
        h.bringUp()
        let old = h.pids["queue"]!
        h.exit("queue")
        h.advance(.seconds(1))
        h.run(h.core.heartbeat("queue", incarnation: "old", pid: old, now: h.now))
        #expect(h.state("queue") == "starting")
    }

    @Test func scalingAddsAndRemovesWorkerInstances() throws {
        var h = Harness()
        h.bringUp()
        var mark = h.log.count
        h.run(try h.core.scale(.ingestWorker, to: 3, now: h.now))
        #expect(h.spawned(since: mark) == ["ingest-worker-2", "ingest-worker-3"])
        h.beatAll()
        mark = h.log.count
        h.run(try h.core.scale(.ingestWorker, to: 1, now: h.now))
        #expect(Set(h.signals(since: mark).map(\.0)) == ["ingest-worker-2", "ingest-worker-3"])
        #expect(h.signals(since: mark).allSatisfy { $0.1 == .terminate })
        #expect(h.state("ingest-worker-2") == "stopping")
        h.exit("ingest-worker-2", "exit 0")
        h.exit("ingest-worker-3", "exit 0")
        #expect(h.state("ingest-worker-2") == nil)
        mark = h.log.count
        h.advance(.seconds(60))
        #expect(h.spawned(since: mark).isEmpty, "a scaled-away instance is not restarted")
        h.run(try h.core.scale(.streamWorker, to: 0, now: h.now))
        h.exit("stream-worker-1", "exit 0")
        #expect(h.core.snapshot(now: h.now).count == 8)
    }

    @Test func scalingRefusesNonWorkersAndOutOfRangeCounts() {
        var h = Harness()
        h.bringUp()
        #expect(throws: SupervisorError.self) { try h.core.scale(.queue, to: 2, now: h.now) }
        #expect(throws: SupervisorError.self) { try h.core.scale(.ingestWorker, to: 11, now: h.now) }
        #expect(throws: SupervisorError.self) { try h.core.scale(.ingestWorker, to: -1, now: h.now) }
    }

    @Test func killSendsSigkillAndTheCrashIsRestarted() throws {
        var h = Harness()
        h.bringUp()
        let directives = try h.core.kill("table")
        #expect(directives.contains(.signal(pid: h.pids["table"]!, .kill, name: "table")))
        #expect(throws: SupervisorError.self) { try h.core.kill("nope") }
        h.exit("table")
        h.advance(.seconds(1))
        #expect(h.state("table") == "starting")
    }

    @Test func stopGoesHighestTierFirstAndEndsWithExit() {
        var h = Harness()
        h.bringUp()
        var mark = h.log.count
        h.run(h.core.stop(now: h.now))
        #expect(Set(h.signals(since: mark).map(\.0)) == ["gateway", "ingest-worker-1", "stream-worker-1", "edge"])
        for name in ["gateway", "ingest-worker-1", "stream-worker-1", "edge"] {
            mark = h.log.count
            h.exit(name, "exit 0")
        }
        #expect(h.signals(since: mark).map(\.0) == ["notifier"])
        mark = h.log.count
        h.exit("notifier", "exit 0")
        #expect(Set(h.signals(since: mark).map(\.0)) == ["queue", "table", "mail-sink"])
        h.exit("queue", "exit 0")
        h.exit("table", "exit 0")
        h.exit("mail-sink", "exit 0")
        #expect(!h.log.contains(.exit))
        h.exit("iam", "exit 0")
        #expect(h.log.last == .exit)
        mark = h.log.count
        h.advance(.seconds(100))
        #expect(h.spawned(since: mark).isEmpty)
        #expect(h.core.snapshot(now: h.now).allSatisfy { $0.state == "stopped" })
    }

    @Test func aProcessThatIgnoresSigtermGetsSigkillAfterTheStopTimeout() {
        var h = Harness { $0.supervisor.stopTimeoutSeconds = 2 }
        h.bringUp()
        h.run(h.core.stop(now: h.now))
        let mark = h.log.count
        h.advance(.seconds(3))
        #expect(Set(h.signals(since: mark).filter { $0.1 == .kill }.map(\.0)) == ["gateway", "ingest-worker-1", "stream-worker-1", "edge"])
    }

    @Test func aCrashDuringStopIsNotRestarted() {
        var h = Harness()
        h.bringUp()
        h.run(h.core.stop(now: h.now))
        h.exit("iam")
        let mark = h.log.count
        h.advance(.seconds(10))
        #expect(h.spawned(since: mark).isEmpty)
        #expect(h.state("iam") == "stopped")
    }

    @Test func aFailedSpawnIsTreatedLikeACrash() {
        var h = Harness()
        h.start()
        h.run(h.core.spawnFailed("iam", reason: "no such file", now: h.now))
        #expect(h.state("iam") == "backoff")
        h.advance(.seconds(1))
        #expect(h.state("iam") == "starting")
    }

    @Test func onAHostTheSupervisorRunsOnlyWhatIsPlacedThereAndItsTiersAlone() throws {
        let spread = try ClusterConfig.parse("""
            hosts: {h1: {address: 10.0.0.1}, h2: {address: 10.0.0.2}}
            services:
              iam: {host: h1}
              queue: {host: h1}
              mail-sink: {host: h1}
              table: {host: h2}
              notifier: {host: h2}
              gateway: {host: h2}
              ingest-worker: {host: h2}
              stream-worker: {host: h2}
            """)
        var h = Harness(host: "h2") { $0 = spread }
        h.start()
        // No iam here: tier 1 (table) starts at once, and the tiers above follow it alone.
        #expect(h.spawned(since: 0) == ["table"])
        h.beat("table")
        #expect(h.spawned(since: 0) == ["table", "notifier"])
        h.beat("notifier")
        // The edge is not placed: it goes with the gateway.
        #expect(Set(h.spawned(since: 0)) == ["table", "notifier", "gateway", "ingest-worker-1", "stream-worker-1", "edge"])
        #expect(h.core.snapshot(now: h.now).allSatisfy { $0.host == "h2" })
        h.run(try h.core.scale(.ingestWorker, to: 2, now: h.now))
        #expect(h.spawned(since: 0).contains("ingest-worker-2"))
        var other = Harness(host: "h1") { $0 = spread }
        other.start()
        #expect(throws: SupervisorError("ingest-worker runs on host h2, not on h1: its supervisor scales it")) {
            try other.core.scale(.ingestWorker, to: 2, now: other.now)
        }
        #expect(Set(other.core.snapshot(now: other.now).map(\.name)) == ["iam", "queue", "mail-sink"])
    }
}
