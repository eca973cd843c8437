import Foundation
import Logging
import NimbusProtocol
import Synchronization

/// RabbitMQ's disk and memory alarms for a Nimbus node: while the file system under its data
/// directory has less free space than `storage.minFreeDiskMB`, or the node holds more memory than
/// `storage.maxMemoryPercent` of the machine's (or of its cgroup's limit: `MemoryLimit`), writes
/// that grow durable state are refused with ServiceUnavailable before they reach the service's core.
/// Consumers (receives, reads, deletes) go on: they are what frees space and memory, and the margins
/// are there for them.
///
/// - Without the disk alarm, a full disk fails a commit after the core has already changed. The
///   node then exits (its memory says more than its disk) and restarts into the same full disk, and
///   the requests in that commit get no answer at all.
/// - Without the memory alarm, a backlog grows until the kernel kills the node. The node then reloads
///   the same backlog at start and is killed again: every service keeps its whole state in memory.
///
/// Conditions are measured at most once per `recheckMillis`; in between, the check costs a request
/// one lock.
public final class WriteAlarm: Sendable {
    /// One alarm: its name in the logs, and a measurement that returns why writes must stop (nil
    /// when they may go on, or when it cannot be told: an alarm that cannot measure must not stop
    /// the node).
    public struct Condition: Sendable {
        public let name: String
        public let exceeded: @Sendable () -> String?

        public init(name: String, exceeded: @escaping @Sendable () -> String?) {
            self.name = name
            self.exceeded = exceeded
        }
    }

    private let service: String
    private let conditions: [Condition]
    private let recheckMillis: Int64
    private let clock: @Sendable () -> Int64
    private let logger: Logger
    private let state: Mutex<(checkedAt: Int64?, reasons: [String?])>

    public init(service: String, conditions: [Condition], recheckMillis: Int64 = 250,
                clock: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) }, logger: Logger) {
        self.service = service
        self.conditions = conditions
        self.recheckMillis = recheckMillis
        self.clock = clock
        self.logger = logger
        state = Mutex((nil, Array(repeating: nil, count: conditions.count)))
    }

    /// Throws ServiceUnavailable while an alarm is raised.
    public func checkRoomToWrite() throws(WireError) {
        guard !conditions.isEmpty else { return }
        let now = clock()
        let (due, known) = state.withLock { s -> (Bool, String?) in
            if let at = s.checkedAt, now - at < recheckMillis { return (false, s.reasons.lazy.compactMap { $0 }.first) }
            s.checkedAt = now
            return (true, nil)
        }
        if let reason = due ? remeasure() : known {
            throw WireError(.serviceUnavailable, "\(service): \(reason); writes are refused until it clears")
        }
    }

    /// The raised alarm's reason, measured afresh when the last measure is older than the recheck
    /// interval (readiness asks once a probe round).
    public func raisedReason() -> String? {
        do { try checkRoomToWrite() } catch { return error.message }
        return nil
    }

    /// Measures every condition, logs each that rises or clears, and returns the first reason.
    private func remeasure() -> String? {
        let reasons = conditions.map { $0.exceeded() }
        let before = state.withLock { s -> [String?] in
            defer { s.reasons = reasons }
            return s.reasons
        }
        for (i, condition) in conditions.enumerated() {
            if let reason = reasons[i], before[i] == nil {
                logger.warning("\(condition.name) alarm: \(reason); refusing writes")
            } else if reasons[i] == nil, before[i] != nil {
                logger.notice("\(condition.name) alarm cleared; writes accepted again")
            }
        }
        return reasons.lazy.compactMap { $0 }.first
    }

    static func megabytes(_ bytes: Int64) -> Int64 { bytes / 1_048_576 }

    /// The disk alarm: free space under `path` below `minimumFreeBytes`.
    public static func disk(path: String, minimumFreeBytes: Int64,
                            measure: @escaping @Sendable (String) -> Int64? = availableBytes) -> Condition {
        Condition(name: "disk") {
            guard let free = measure(path), free < minimumFreeBytes else { return nil }
            return "the data directory's file system has \(megabytes(free)) MB free, under the \(megabytes(minimumFreeBytes)) MB reserve (storage.minFreeDiskMB)"
        }
    }

    /// The memory alarm: this process's resident memory above `maximumBytes`.
    public static func memory(maximumBytes: Int64, measure: @escaping @Sendable () -> Int64? = residentBytes) -> Condition {
        Condition(name: "memory") {
            guard var resident = measure(), resident > maximumBytes else { return nil }
            // Memory the service has freed (a drained backlog) may still be held by the allocator
            // and counted as resident: hand it back before deciding, or the alarm could stay raised
            // after consumers emptied the queue.
            releaseFreeMemory()
            guard let trimmed = measure(), trimmed > maximumBytes else { return nil }
            resident = trimmed
            return "the node holds \(megabytes(resident)) MB of memory, over its \(megabytes(maximumBytes)) MB limit (storage.maxMemoryPercent)"
        }
    }

    /// Space an unprivileged writer may still use on the file system holding `path` (statvfs's
    /// f_bavail: the root-reserved blocks are not counted, whoever the node runs as).
    @Sendable public static func availableBytes(_ path: String) -> Int64? {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return nil }
        return Int64(stats.f_bavail) * Int64(stats.f_frsize)
    }

    /// This process's resident set (/proc/self/statm's second field, in pages).
    @Sendable public static func residentBytes() -> Int64? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int64(fields[1]) else { return nil }
        return pages * Int64(sysconf(Int32(_SC_PAGESIZE)))
    }
}

extension NodeConfiguration {
    /// The write alarms for this node, with the cluster's limits (a limit of 0 is no alarm).
    public func writeAlarm(service: String, logger: Logger) -> WriteAlarm {
        let storage = cluster.storage
        var conditions: [WriteAlarm.Condition] = []
        if storage.minFreeDiskMB > 0 {
            conditions.append(WriteAlarm.disk(path: dataDirectory.path, minimumFreeBytes: Int64(storage.minFreeDiskMB) * 1_048_576))
        }
        if storage.maxMemoryPercent > 0, let total = MemoryLimit.current() {
            conditions.append(WriteAlarm.memory(maximumBytes: Int64(Double(total) * storage.maxMemoryPercent / 100)))
        }
        return WriteAlarm(service: service, conditions: conditions, logger: logger)
    }
}

/// Returns the allocator's free memory to the system: tcmalloc's, which the executables link
/// (Package.swift), or glibc's (malloc_trim, not in Swift's Glibc module) in a process without it.
func releaseFreeMemory() {
    if let release = tcmallocRelease { release() } else { _ = mallocTrim(0) }
}

private let tcmallocRelease: (@convention(c) () -> Void)? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "MallocExtension_ReleaseFreeMemory") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) () -> Void).self)
}()

@_silgen_name("malloc_trim")
private func mallocTrim(_ pad: Int) -> Int32
