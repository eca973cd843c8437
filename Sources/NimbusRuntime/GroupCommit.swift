import Synchronization

/// Group commit: changes from every operation that arrives while one batch is being written go into
/// the next batch, so a burst costs one transaction (one fsync), and batches are written strictly in
/// the order `commit` was called. An owning actor applies an operation to its core and then awaits
/// `commit(changes)`: the changes are queued before the actor suspends, so the order on disk is the
/// order of the core's history, and nobody hears of a change before it is durable.
///
/// Inlinable, so each service's committer is specialized for its change type (the generic version
/// looked its metadata up at run time on every commit).
public final class GroupCommitter<Change: Sendable>: Sendable {
    @usableFromInline struct State {
        @usableFromInline var pending: [Change] = []
        @usableFromInline var waiters: [CheckedContinuation<Void, Error>] = []
        @usableFromInline var writing = false

        @usableFromInline init() {}

        @inlinable mutating func take() -> ([Change], [CheckedContinuation<Void, Error>])? {
            guard !pending.isEmpty || !waiters.isEmpty else { writing = false; return nil }
            writing = true
            defer { pending = []; waiters = [] }
            return (pending, waiters)
        }
    }

    @usableFromInline let state = Mutex(State())
    @usableFromInline let write: @Sendable ([Change]) async throws -> Void
    @usableFromInline let onFailure: @Sendable (any Error) -> Void

    /// `write` makes a batch durable (one transaction); `onFailure` hears of a failed write after its
    /// callers got the error (the owner usually exits: its core is now ahead of its disk).
    public init(write: @escaping @Sendable ([Change]) async throws -> Void, onFailure: @escaping @Sendable (any Error) -> Void) {
        self.write = write
        self.onFailure = onFailure
    }

    /// Returns once `changes` are durable (at once when there are none).
    ///
    /// `nonisolated(nonsending)`: the body runs on the caller's executor, so an actor's changes are
    /// queued before the actor is released. A plain async method would first hop to the global
    /// executor, letting a later operation of the same actor queue its changes first: a table's
    /// stream record 972 could then be on disk before 971, and a reader that saw 972 skipped 971.
    @inlinable nonisolated(nonsending) public func commit(_ changes: [Change]) async throws {
        guard !changes.isEmpty else { return }
        try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Void, Error>) in
            let batch = state.withLock { s -> ([Change], [CheckedContinuation<Void, Error>])? in
                s.pending += changes
                s.waiters.append(waiter)
                return s.writing ? nil : s.take()
            }
            if let batch { start(batch) }
        }
    }

    /// Returns once every change committed before this call is durable: at once when nothing is
    /// being written. For an operation that changes nothing but decided from the state (a failed
    /// condition, a duplicate it recognised): that state may hold changes still on their way to
    /// disk, and a crash before they land must not leave the caller told of them.
    @inlinable nonisolated(nonsending) public func durable() async throws {
        // Not writing means nothing is pending either: `commit` starts a write whenever it queues.
        guard state.withLock({ $0.writing }) else { return }
        try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Void, Error>) in
            // Resumed with the next batch: the pending changes, or none once the write in flight ends.
            let batch = state.withLock { s -> ([Change], [CheckedContinuation<Void, Error>])? in
                s.waiters.append(waiter)
                return s.writing ? nil : s.take()
            }
            if let batch { start(batch) }
        }
    }

    @inlinable func start(_ batch: ([Change], [CheckedContinuation<Void, Error>])) {
        Task {
            do {
                // A batch of waiters only (see `durable`) has nothing to write.
                if !batch.0.isEmpty { try await write(batch.0) }
                for waiter in batch.1 { waiter.resume() }
            } catch {
                for waiter in batch.1 { waiter.resume(throwing: error) }
                onFailure(error)
            }
            if let next = state.withLock({ $0.take() }) { start(next) }
        }
    }
}
