import Synchronization

/// Opened once; a wait before or after the opening ends when it is open. Waits are suspensions,
/// not blocked threads: a blocked thread of the cooperative pool (two here) would stall the test.
public final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    public init() {}

    public func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.open { return true }
                s.waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    public func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// A disk for the engines' tests: a write of a batch that `holds` stays in flight until the test
/// calls `letItFinish` (later writes pass), `started` yields when one is held, and `events` logs
/// what happened in which order.
public final class SlowDisk<Change: Sendable>: Sendable {
    public let started: AsyncStream<Void>
    private let startedContinuation: AsyncStream<Void>.Continuation
    private let gate = Gate()
    private let opened = Atomic<Bool>(false)
    private let predicate: @Sendable ([Change]) -> Bool
    private let log = Mutex<[String]>([])

    public init(holding holds: @escaping @Sendable ([Change]) -> Bool = { _ in true }) {
        predicate = holds
        (started, startedContinuation) = AsyncStream.makeStream(of: Void.self)
    }

    /// Whether a write of `batch` is one this disk holds (until `letItFinish`).
    public func holds(_ batch: [Change]) -> Bool { predicate(batch) }

    /// Returns at once, or once the test lets a held write finish.
    public func hold(_ batch: [Change]) async {
        guard !opened.load(ordering: .acquiring), predicate(batch) else { return }
        startedContinuation.yield()
        await gate.wait()
    }

    public func letItFinish() {
        opened.store(true, ordering: .releasing)
        gate.open()
    }

    public func note(_ event: String) { log.withLock { $0.append(event) } }
    public func noted(_ event: String) -> Bool { log.withLock { $0.contains(event) } }
    public var events: [String] { log.withLock { $0 } }
}

/// Yields until `condition` holds; throws after `seconds`.
public func until(seconds: Double = 10, _ what: String = "condition", _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while !condition() {
        guard ContinuousClock.now < deadline else { throw WaitTimedOut(description: "\(what) not reached within \(seconds) s") }
        await Task.yield()
    }
}

public struct WaitTimedOut: Error, CustomStringConvertible {
    public var description: String
}
