import NimbusConfig

/// The supervisor's logic as a pure state machine, in the manner of SWIM.Instance: every input is a
/// method taking the current time, every output a list of directives for the shell to carry out
/// (spawn, signal, heartbeat, log). No clocks, processes or sockets in here.
public struct SupervisorCore: Sendable {
    public typealias Instant = ContinuousClock.Instant

    public enum Directive: Equatable, Sendable {
        /// Start instance `index` of `kind` as process `name`; answer with `spawned` or `spawnFailed`.
        case spawn(name: String, kind: ServiceKind, index: Int)
        case signal(pid: Int32, Signal, name: String)
        /// Send a heartbeat to `name`; answer with `heartbeat(...)` when it replies.
        case heartbeat(name: String, kind: ServiceKind, index: Int)
        case log(LogLevel, String)
        /// Every process has stopped after `stop`: the supervisor may exit.
        case exit
    }

    public enum Signal: Equatable, Sendable { case terminate, kill }
    public enum LogLevel: Equatable, Sendable { case info, warning, error }

    public enum State: String, Codable, Sendable {
        /// Not started yet: waiting for a lower tier during bring-up.
        case pending
        /// Spawned; no heartbeat answered yet.
        case starting
        /// Answering heartbeats.
        case running
        /// Dead; restarts when the backoff runs out.
        case backoff
        /// Dead again soon after each start, `maxRestarts` times within `withinSeconds`: still
        /// restarted, at the capped backoff, and reported with its last exit until it stays up.
        case crashLooping = "crash-looping"
        /// Sent SIGTERM (shutdown or scale-down) or SIGKILL (unresponsive); waiting for it to exit.
        case stopping
        case stopped
    }

    struct Process: Sendable {
        let name: String
        let kind: ServiceKind
        let index: Int
        var state: State = .pending
        var pid: Int32?
        var incarnation: String?
        var startedAt: Instant?
        /// When it first answered a heartbeat in this incarnation.
        var healthySince: Instant?
        var lastHeartbeat: Instant?
        var lastHeartbeatSent: Instant?
        var stoppingSince: Instant?
        var killSent = false
        var restartAt: Instant?
        var restarts = 0
        /// Quick deaths (before or soon after turning healthy) within `withinSeconds`.
        var recentRestarts: [Instant] = []
        var crashLooping = false
        /// `restart` asked for it: the exit that follows restarts it at once.
        var restartRequested = false
        var backoff: Duration
        /// What the process last said of its readiness (nil: it has not said).
        var ready: Bool?
        var notReadyReason: String?
        /// False once scaled away: removed when it has exited.
        var wanted = true
        var lastExit: String?
    }

    public let config: ClusterConfig
    /// The host this supervisor runs on when the cluster is spread over hosts: it manages only the
    /// processes placed there (nil: every process of the config).
    public let host: String?
    private(set) var processes: [String: Process] = [:]
    private var phase: Phase = .idle
    private enum Phase { case idle, bringingUp, up, stopping, stopped }

    public init(config: ClusterConfig, host: String? = nil) {
        self.config = config
        self.host = host
    }

    var heartbeatInterval: Duration { .milliseconds(config.heartbeat.intervalMilliseconds) }
    var livenessWindow: Duration { heartbeatInterval * config.heartbeat.liveness }
    var initialBackoff: Duration { .seconds(config.restart.initialBackoffSeconds) }
    var maxBackoff: Duration { .seconds(config.restart.maxBackoffSeconds) }
    var stableAfter: Duration { .seconds(config.restart.stableAfterSeconds) }

    // MARK: Inputs

    /// Creates every configured process and spawns the first tier.
    public mutating func start(now: Instant) -> [Directive] {
        guard phase == .idle else { return [] }
        phase = .bringingUp
        for kind in config.kinds(on: host) {
            for index in stride(from: 1, through: config.instances(kind), by: 1) {
                add(kind, index)
            }
        }
        return advanceBringUp(now: now)
    }

    /// The shell spawned `name` as `pid`.
    public mutating func spawned(_ name: String, pid: Int32, now: Instant) -> [Directive] {
        guard var p = processes[name] else { return [.signal(pid: pid, .kill, name: name)] }
        p.state = .starting
        p.pid = pid
        p.startedAt = now
        p.lastHeartbeat = nil
        p.lastHeartbeatSent = nil
        p.healthySince = nil
        p.ready = nil
        p.notReadyReason = nil
        p.incarnation = nil
        p.killSent = false
        p.stoppingSince = nil
        var out: [Directive] = [.log(.info, "started \(name) (pid \(pid))")]
        if phase == .stopping || !p.wanted {
            // Spawned while the cluster stops, or after being scaled away: stop it again.
            p.state = .stopping
            p.stoppingSince = now
            out.append(.signal(pid: pid, .terminate, name: name))
        }
        processes[name] = p
        return out
    }

    /// The shell could not spawn `name` (missing executable, fork failure): treated like a crash.
    public mutating func spawnFailed(_ name: String, reason: String, now: Instant) -> [Directive] {
        guard processes[name] != nil else { return [] }
        processes[name]!.lastExit = "spawn failed: \(reason)"
        return crashed(name, now: now, why: "could not be started: \(reason)")
    }

    /// A child exited (reaped by the shell).
    public mutating func exited(pid: Int32, status: String, now: Instant) -> [Directive] {
        guard let name = processes.first(where: { $0.value.pid == pid })?.key else { return [] }
        var p = processes[name]!
        p.pid = nil
        p.lastExit = status
        // A planned stop (shutdown, scale-down) ends there; anything else, even a kill we sent to an
        // unresponsive process, is a crash to restart.
        if phase == .stopping || !p.wanted {
            p.state = .stopped
            processes[name] = p
            var out: [Directive] = [.log(.info, "\(name) stopped (\(status))")]
            if !p.wanted { processes[name] = nil }
            if phase == .stopping { out += advanceStop(now: now) }
            return out
        }
        processes[name] = p
        return crashed(name, now: now, why: "exited unexpectedly (\(status))")
    }

    /// `name` answered a heartbeat from incarnation `incarnation`, saying whether it is ready to
    /// serve (and why not) when it reports readiness.
    public mutating func heartbeat(_ name: String, incarnation: String, pid: Int32?, ready: Bool? = nil, notReadyReason: String? = nil,
                                   now: Instant) -> [Directive] {
        guard var p = processes[name], let current = p.pid else { return [] }
        // An answer from a previous incarnation still in flight must not vouch for the new one.
        if let pid, pid != current { return [] }
        p.lastHeartbeat = now
        var out: [Directive] = []
        if p.state == .starting {
            p.state = .running
            p.healthySince = now
            out.append(.log(.info, "\(name) is healthy (incarnation \(incarnation))"))
        }
        if p.state == .running, let ready, ready != p.ready {
            out.append(ready ? .log(.info, "\(name) is ready") : .log(.warning, "\(name) is not ready: \(notReadyReason ?? "no reason given")"))
        }
        p.ready = ready
        p.notReadyReason = ready == false ? notReadyReason : nil
        p.incarnation = incarnation
        processes[name] = p
        if phase == .bringingUp { out += advanceBringUp(now: now) }
        return out
    }

    /// Timers: heartbeats due, silent processes, backoffs run out, stop timeouts.
    public mutating func tick(now: Instant) -> [Directive] {
        var out: [Directive] = []
        for name in processes.keys.sorted() {
            guard var p = processes[name] else { continue }
            switch p.state {
            case .starting, .running:
                let since = p.lastHeartbeat ?? p.startedAt ?? now
                let limit = p.state == .starting ? Duration.seconds(config.supervisor.startupTimeoutSeconds) : livenessWindow
                if now - since > limit, let pid = p.pid, !p.killSent {
                    let what = p.state == .starting ? "did not answer a heartbeat within \(limit)" : "missed \(config.heartbeat.liveness) heartbeats"
                    p.killSent = true
                    p.state = .stopping
                    p.stoppingSince = now
                    processes[name] = p
                    out.append(.log(.warning, "\(name) (pid \(pid)) \(what): killing it"))
                    out.append(.signal(pid: pid, .kill, name: name))
                    continue
                }
                if p.lastHeartbeatSent.map({ now - $0 >= heartbeatInterval }) ?? true {
                    p.lastHeartbeatSent = now
                    out.append(.heartbeat(name: name, kind: p.kind, index: p.index))
                }
                if p.state == .running, let healthy = p.healthySince, now - healthy >= stableAfter,
                   p.backoff != initialBackoff || p.crashLooping || !p.recentRestarts.isEmpty {
                    p.backoff = initialBackoff
                    p.recentRestarts = []
                    if p.crashLooping { out.append(.log(.info, "\(name) has stayed up for \(stableAfter): no longer crash-looping")) }
                    p.crashLooping = false
                }
                processes[name] = p
            case .backoff, .crashLooping:
                if let at = p.restartAt, now >= at, phase != .stopping {
                    out.append(requestSpawn(name, now: now))
                }
            case .stopping:
                if let since = p.stoppingSince, let pid = p.pid, !p.killSent,
                   now - since > .seconds(config.supervisor.stopTimeoutSeconds) {
                    p.killSent = true
                    processes[name] = p
                    out.append(.log(.warning, "\(name) (pid \(pid)) did not stop in time: SIGKILL"))
                    out.append(.signal(pid: pid, .kill, name: name))
                }
            case .pending, .stopped:
                break
            }
        }
        if phase == .bringingUp { out += advanceBringUp(now: now) }
        return out
    }

    /// Sets the instance count of a worker kind.
    public mutating func scale(_ kind: ServiceKind, to count: Int, now: Instant) throws(SupervisorError) -> [Directive] {
        guard kind.isWorker else { throw SupervisorError("\(kind.rawValue) is not a worker kind: only ingest-worker and stream-worker scale") }
        guard (0...ServiceKind.maxInstances).contains(count) else {
            throw SupervisorError("instances of \(kind.rawValue) must be 0...\(ServiceKind.maxInstances), not \(count)")
        }
        guard phase == .bringingUp || phase == .up else { throw SupervisorError("the cluster is stopping") }
        if let host, config.host(of: kind) != host {
            throw SupervisorError("\(kind.rawValue) runs on host \(config.host(of: kind) ?? "?"), not on \(host): its supervisor scales it")
        }
        var out: [Directive] = [.log(.info, "scaling \(kind.rawValue) to \(count)")]
        for index in 1...ServiceKind.maxInstances {
            let name = kind.instanceName(index)
            if index <= count {
                if processes[name] == nil || processes[name]?.wanted == false {
                    if processes[name] == nil { add(kind, index) } else { processes[name]!.wanted = true }
                    if processes[name]!.pid == nil {
                        out.append(requestSpawn(name, now: now))
                    }
                }
            } else if var p = processes[name], p.wanted {
                p.wanted = false
                if let pid = p.pid {
                    p.state = .stopping
                    p.stoppingSince = now
                    processes[name] = p
                    out.append(.signal(pid: pid, .terminate, name: name))
                } else {
                    processes[name] = nil
                }
            }
        }
        return out
    }

    /// Chaos: SIGKILL a process now. The supervisor then restarts it like any crash.
    public func kill(_ name: String) throws(SupervisorError) -> [Directive] {
        guard let p = processes[name] else { throw SupervisorError("no process named \(name)") }
        guard let pid = p.pid else { throw SupervisorError("\(name) is not running (\(p.state.rawValue))") }
        return [.log(.warning, "chaos: SIGKILL \(name) (pid \(pid))"), .signal(pid: pid, .kill, name: name)]
    }

    /// Restarts a process, or every process of a kind, at once and with its backoff reset: a running
    /// one gets SIGTERM and is started again as soon as it exits; one waiting out a backoff starts now.
    public mutating func restart(_ target: String, now: Instant) throws(SupervisorError) -> [Directive] {
        guard phase == .bringingUp || phase == .up else { throw SupervisorError("the cluster is stopping") }
        let names = processes.values.filter { $0.wanted && ($0.name == target || $0.kind.rawValue == target) }.map(\.name).sorted()
        guard !names.isEmpty else { throw SupervisorError("no process or kind named \(target)") }
        var out: [Directive] = []
        for name in names {
            var p = processes[name]!
            p.backoff = initialBackoff
            p.recentRestarts = []
            p.crashLooping = false
            switch p.state {
            case .starting, .running:
                guard let pid = p.pid else { processes[name] = p; continue }
                p.restartRequested = true
                p.state = .stopping
                p.stoppingSince = now
                processes[name] = p
                out += [.log(.info, "restart: SIGTERM \(name) (pid \(pid))"), .signal(pid: pid, .terminate, name: name)]
            case .backoff, .crashLooping:
                processes[name] = p
                out += [.log(.info, "restart: starting \(name) now"), requestSpawn(name, now: now)]
            case .stopping:
                p.restartRequested = true
                processes[name] = p
            case .pending, .stopped:
                processes[name] = p
            }
        }
        return out
    }

    /// Stops every process, highest tier first; `.exit` comes once all have exited.
    public mutating func stop(now: Instant) -> [Directive] {
        guard phase != .stopping && phase != .stopped else { return [] }
        phase = .stopping
        for name in processes.keys where processes[name]!.pid == nil {
            processes[name]!.state = .stopped
            processes[name]!.restartAt = nil
        }
        return [.log(.info, "stopping the cluster")] + advanceStop(now: now)
    }

    public var isStopping: Bool { phase == .stopping || phase == .stopped }

    // MARK: Internals

    private mutating func add(_ kind: ServiceKind, _ index: Int) {
        let name = kind.instanceName(index)
        processes[name] = Process(name: name, kind: kind, index: index, backoff: initialBackoff)
    }

    /// Bring-up goes tier by tier: a tier is spawned once every lower tier has settled (each process
    /// running, or crash-looping: the tiers above start and report it as a dependency not ready).
    private mutating func advanceBringUp(now: Instant) -> [Directive] {
        var out: [Directive] = []
        for tier in 0...3 {
            let members = processes.values.filter { $0.kind.tier == tier }
            for name in members.filter({ $0.state == .pending }).map(\.name).sorted() {
                out.append(requestSpawn(name, now: now))
            }
            if members.contains(where: { !settledForBringUp($0) }) { return out }
        }
        phase = .up
        out.append(.log(.info, "every process has started"))
        return out
    }

    /// Running, or given up waiting for: crash-looping, or restarted `maxRestarts` times without
    /// turning healthy (one that hangs at start dies only every start-up timeout, too rarely to count
    /// as crash-looping within the window).
    private func settledForBringUp(_ p: Process) -> Bool {
        p.state == .running || p.state == .crashLooping || (p.healthySince == nil && p.restarts >= config.restart.maxRestarts)
    }

    /// Marks `name` as being spawned, so it is asked for once, and says so to the shell.
    private mutating func requestSpawn(_ name: String, now: Instant) -> Directive {
        var p = processes[name]!
        p.state = .starting
        p.pid = nil
        p.startedAt = now
        p.restartAt = nil
        processes[name] = p
        return .spawn(name: name, kind: p.kind, index: p.index)
    }

    private mutating func advanceStop(now: Instant) -> [Directive] {
        var out: [Directive] = []
        let live = processes.values.filter { $0.pid != nil }
        guard let top = live.map(\.kind.tier).max() else {
            phase = .stopped
            return [.log(.info, "every process has stopped"), .exit]
        }
        for name in processes.keys.sorted() {
            guard var p = processes[name], p.kind.tier == top, let pid = p.pid, p.stoppingSince == nil else { continue }
            p.state = .stopping
            p.stoppingSince = now
            processes[name] = p
            out.append(.signal(pid: pid, .terminate, name: name))
        }
        return out
    }

    /// A process died unplanned. One that had been healthy for `stableAfter` (or was asked to
    /// restart) is started again at once; one that died before that is a quick death: it waits out a
    /// backoff that doubles up to `maxBackoff`, and `maxRestarts` quick deaths within `withinSeconds`
    /// mark it crash-looping. Either way it is restarted: nothing is given up on.
    private mutating func crashed(_ name: String, now: Instant, why: String) -> [Directive] {
        guard var p = processes[name] else { return [] }
        if phase == .stopping {
            p.state = .stopped
            processes[name] = p
            return advanceStop(now: now)
        }
        p.restarts += 1
        p.killSent = false
        p.stoppingSince = nil
        p.ready = nil
        p.notReadyReason = nil
        let stable = p.healthySince.map { now - $0 >= stableAfter } ?? false
        // That incarnation's health is spent: a next one that fails to start (a spawn that fails)
        // must not count as stable too, or it would be restarted at once, over and over.
        p.healthySince = nil
        if stable || p.restartRequested {
            let reason = p.restartRequested ? "restart requested" : "had been healthy for \(stableAfter) or more"
            p.restartRequested = false
            p.backoff = initialBackoff
            p.recentRestarts = []
            p.crashLooping = false
            processes[name] = p
            return [.log(.warning, "\(name) \(why): restarting now (\(reason))"), requestSpawn(name, now: now)]
        }
        let window = Duration.seconds(config.restart.withinSeconds)
        p.recentRestarts = p.recentRestarts.filter { now - $0 < window } + [now]
        let delay = p.backoff
        p.restartAt = now + delay
        p.backoff = min(p.backoff * 2, maxBackoff)
        var out: [Directive] = []
        if p.recentRestarts.count >= config.restart.maxRestarts, !p.crashLooping {
            p.crashLooping = true
            out.append(.log(.error, "\(name) \(why); \(p.recentRestarts.count) quick deaths within \(window): CRASH-LOOPING, still restarting"))
        }
        p.state = p.crashLooping ? .crashLooping : .backoff
        processes[name] = p
        out.append(.log(.warning, "\(name) \(why): restarting in \(delay)"))
        return out
    }

    // MARK: Status

    public func snapshot(now: Instant) -> [ProcessStatus] {
        processes.values.sorted { ($0.kind, $0.index) < ($1.kind, $1.index) }.map { p in
            ProcessStatus(
                name: p.name, kind: p.kind.rawValue, pid: p.pid, state: p.state.rawValue,
                restarts: p.restarts, incarnation: p.incarnation,
                lastHeartbeatMillisecondsAgo: p.lastHeartbeat.map { Self.milliseconds(now - $0) },
                uptimeSeconds: p.pid != nil ? p.startedAt.map { Double(Self.milliseconds(now - $0)) / 1000 } : nil,
                lastExit: p.lastExit, ready: p.state == .running ? p.ready : nil,
                notReadyReason: p.state == .running ? p.notReadyReason : nil,
                restartInSeconds: p.restartAt.map { max(0, Double(Self.milliseconds($0 - now)) / 1000) }, host: host)
        }
    }

    static func milliseconds(_ d: Duration) -> Int64 {
        d.components.seconds * 1000 + d.components.attoseconds / 1_000_000_000_000_000
    }
}

/// One row of `nimbus status`.
public struct ProcessStatus: Codable, Sendable, Equatable {
    public var name: String
    public var kind: String
    public var pid: Int32?
    public var state: String
    public var restarts: Int
    public var incarnation: String?
    public var lastHeartbeatMillisecondsAgo: Int64?
    public var uptimeSeconds: Double?
    public var lastExit: String?
    /// Whether the process says it can serve (nil: not running, or it does not report readiness).
    public var ready: Bool?
    /// Why not, when `ready` is false: `iam unreachable for 12 s`.
    public var notReadyReason: String?
    /// When a process waiting out a backoff starts again.
    public var restartInSeconds: Double?
    /// The host it runs on, when the cluster is spread over hosts.
    public var host: String? = nil

    /// The state as `status` shows it: `running, not ready: iam unreachable for 12 s`.
    public var stateDescription: String {
        if state == "running", ready == false { return "running, not ready: \(notReadyReason ?? "no reason given")" }
        if state == "crash-looping" || state == "backoff", let restartInSeconds {
            return "\(state), restart in \(Int(restartInSeconds.rounded(.up)))s" + (lastExit.map { " (last exit: \($0))" } ?? "")
        }
        return state
    }
}

public struct SupervisorError: Error, CustomStringConvertible, Equatable, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
