import Foundation
import NimbusConfig
import Synchronization

/// Whether a node can serve, apart from whether it is alive: a live node may still be unable to
/// serve new callers because a node it depends on is unreachable, an alarm is raised, or it has not
/// finished starting. Kept per condition with the time it began, so the reason can say for how long
/// (`iam unreachable for 12 s`). The runtime probes the dependencies; heartbeat answers and health
/// reports carry the result, so `status` shows it without asking each node.
public final class Readiness: Sendable {
    /// One condition that keeps the node from serving, and since when (ms since the epoch).
    public struct Blocker: Sendable, Equatable {
        public var reason: String
        public var since: Int64
    }

    private struct State {
        var starting = true
        /// Dependency name -> when it was first found unreachable.
        var unreachable: [String: Int64] = [:]
        var alarm: Blocker?
    }

    private let state = Mutex(State())
    private let clock: @Sendable () -> Int64
    /// Called when readiness or its reason changes, with (ready, reason).
    private let onChange: @Sendable (Bool, String?) -> Void
    private let last = Mutex<(Bool, String?)?>(nil)

    public init(clock: @escaping @Sendable () -> Int64 = CredentialSource.nowMillis,
                onChange: @escaping @Sendable (Bool, String?) -> Void = { _, _ in }) {
        self.clock = clock
        self.onChange = onChange
    }

    /// The first round of dependency probes has ended: the node knows what it can reach.
    public func startupFinished() {
        state.withLock { $0.starting = false }
        publish()
    }

    public func dependency(_ name: String, reachable: Bool) {
        let now = clock()
        state.withLock { s in
            if reachable { s.unreachable[name] = nil } else if s.unreachable[name] == nil { s.unreachable[name] = now }
        }
        publish()
    }

    public func alarm(_ reason: String?) {
        let now = clock()
        state.withLock { s in
            if let reason { if s.alarm?.reason != reason { s.alarm = Blocker(reason: reason, since: now) } } else { s.alarm = nil }
        }
        publish()
    }

    /// Since when `name` has been unreachable, when it is.
    public func unreachableSince(_ name: String) -> Int64? { state.withLock { $0.unreachable[name] } }

    /// `iam unreachable for 12 s`, when iam is unreachable.
    public func unreachableReason(_ name: String) -> String? {
        unreachableSince(name).map { "\(name) unreachable for \(Self.seconds(clock() - $0)) s" }
    }

    /// Every condition keeping the node from serving, oldest first.
    public var blockers: [Blocker] {
        let now = clock()
        return state.withLock { s in
            var out: [Blocker] = []
            if s.starting { out.append(Blocker(reason: "start-up not finished", since: now)) }
            for (name, since) in s.unreachable.sorted(by: { ($0.value, $0.key) < ($1.value, $1.key) }) {
                out.append(Blocker(reason: "\(name) unreachable", since: since))
            }
            if let alarm = s.alarm { out.append(alarm) }
            return out
        }
    }

    public var isReady: Bool { blockers.isEmpty }

    /// `iam unreachable for 12 s; disk alarm: ...`, or nil when ready.
    public var reason: String? {
        let now = clock()
        let list = blockers
        guard !list.isEmpty else { return nil }
        return list.map { $0.reason.hasSuffix("unreachable") ? "\($0.reason) for \(Self.seconds(now - $0.since)) s" : $0.reason }
            .joined(separator: "; ")
    }

    /// Tells `onChange` when readiness or the set of conditions changed (not every second of "for N s").
    private func publish() {
        let list = blockers
        let now = (list.isEmpty, list.isEmpty ? nil : list.map(\.reason).joined(separator: "; "))
        let changed = last.withLock { previous -> Bool in
            defer { previous = now }
            return previous.map { $0 != now } ?? true
        }
        if changed { onChange(now.0, now.1) }
    }

    static func seconds(_ millis: Int64) -> Int64 { max(0, millis) / 1000 }
}
