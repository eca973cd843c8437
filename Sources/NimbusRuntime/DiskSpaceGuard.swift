import Foundation
import Logging
import NimbusProtocol
import Synchronization

/// A disk alarm, like RabbitMQ's: while the file system under a node's data directory has less free
/// space than the reserve (`storage.minFreeDiskMB`), writes that grow durable state are refused with
/// ServiceUnavailable before they reach the service's core. Without it a full disk fails a commit
/// after the core has already changed; the node then exits (its memory says more than its disk) and
/// restarts into the same full disk, and the requests in that commit get no answer at all.
/// Consumers (receives, reads, deletes) go on: they are what frees space, and the reserve is there for
/// them. Free space is measured at most once per `recheckMillis`; in between, the check costs a
/// request one lock.
public final class DiskSpaceGuard: Sendable {
    public let minimumFreeBytes: Int64
    private let path: String
    private let service: String
    private let recheckMillis: Int64
    private let clock: @Sendable () -> Int64
    private let measure: @Sendable (String) -> Int64?
    private let logger: Logger
    private let state = Mutex<State>(State())

    private struct State {
        var checkedAt: Int64?
        /// Free bytes when last measured below the reserve; nil while there is room (or unknown).
        var shortOf: Int64?
    }

    /// - Parameters:
    ///   - measure: free bytes on the file system holding `path`, nil when that cannot be told (then
    ///     writes go on: an alarm that cannot be checked must not stop the node).
    public init(path: String, minimumFreeBytes: Int64, service: String, recheckMillis: Int64 = 250,
                clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) },
                measure: @escaping @Sendable (String) -> Int64? = DiskSpaceGuard.availableBytes, logger: Logger) {
        self.path = path
        self.minimumFreeBytes = minimumFreeBytes
        self.service = service
        self.recheckMillis = recheckMillis
        self.clock = clock
        self.measure = measure
        self.logger = logger
    }

    /// Throws ServiceUnavailable while free space is under the reserve.
    public func checkRoomToWrite() throws(WireError) {
        guard minimumFreeBytes > 0 else { return }
        let now = clock()
        let (due, known) = state.withLock { s -> (Bool, Int64?) in
            if let at = s.checkedAt, now - at < recheckMillis { return (false, s.shortOf) }
            s.checkedAt = now
            return (true, nil)
        }
        if let free = due ? remeasure() : known {
            throw WireError(.serviceUnavailable, "\(service): the data directory's file system has \(Self.megabytes(free)) MB free, "
                + "under the \(Self.megabytes(minimumFreeBytes)) MB reserve (storage.minFreeDiskMB); writes are refused until space is freed")
        }
    }

    /// Measures, logs a change, and returns the free bytes when they are under the reserve.
    private func remeasure() -> Int64? {
        let free = measure(path)
        let short = free.flatMap { $0 < minimumFreeBytes ? $0 : nil }
        let was = state.withLock { s -> Int64? in
            defer { s.shortOf = short }
            return s.shortOf
        }
        if let short, was == nil {
            logger.warning("disk alarm: \(Self.megabytes(short)) MB free under \(path), under the \(Self.megabytes(minimumFreeBytes)) MB reserve; refusing writes")
        } else if short == nil, was != nil {
            logger.notice("disk alarm cleared: \(free.map { "\(Self.megabytes($0)) MB" } ?? "unknown space") free under \(path); writes accepted again")
        }
        return short
    }

    private static func megabytes(_ bytes: Int64) -> Int64 { bytes / 1_048_576 }

    /// Space an unprivileged writer may still use on the file system holding `path` (statvfs's
    /// f_bavail: the root-reserved blocks are not counted, whoever the node runs as).
    @Sendable public static func availableBytes(_ path: String) -> Int64? {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return nil }
        return Int64(stats.f_bavail) * Int64(stats.f_frsize)
    }
}

extension NodeConfiguration {
    /// The disk alarm for this node's data directory, with the cluster's reserve.
    public func diskSpaceGuard(service: String, logger: Logger) -> DiskSpaceGuard {
        DiskSpaceGuard(path: dataDirectory.path, minimumFreeBytes: Int64(cluster.storage.minFreeDiskMB) * 1_048_576,
                       service: service, logger: logger)
    }
}
