import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// CPU and memory of the cluster's processes, from /proc (Linux; elsewhere both are unknown): CPU%
/// is the change of a process's utime + stime between two samples over the time between them
/// (100 % = one core busy), RSS its resident pages (/proc/PID/statm) times the page size.
struct ProcessStats {
    private var previous: [Int32: (ticks: UInt64, at: ContinuousClock.Instant)] = [:]
    private static let ticksPerSecond = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
    private static let pageSize = max(1, sysconf(Int32(_SC_PAGESIZE)))

    struct Usage: Equatable {
        /// nil at a process's first sample (there is nothing to difference yet) or without /proc.
        var cpuPercent: Double?
        var rssBytes: Int?
    }

    /// Samples `pids` now; processes not among them are forgotten.
    mutating func sample(_ pids: [Int32], at now: ContinuousClock.Instant = .now) -> [Int32: Usage] {
        var usage: [Int32: Usage] = [:]
        var next: [Int32: (ticks: UInt64, at: ContinuousClock.Instant)] = [:]
        for pid in Set(pids) {
            let ticks = Self.cpuTicks(pid)
            var cpu: Double?
            if let ticks, let before = previous[pid], ticks >= before.ticks {
                let elapsed = now - before.at
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                if seconds > 0.05 { cpu = (Double(ticks - before.ticks) / Self.ticksPerSecond / seconds * 1000).rounded() / 10 }
            }
            if let ticks { next[pid] = (ticks, now) }
            usage[pid] = Usage(cpuPercent: cpu, rssBytes: Self.residentBytes(pid))
        }
        previous = next
        return usage
    }

    /// utime + stime of `pid` in clock ticks (fields 14 and 15 of /proc/PID/stat).
    static func cpuTicks(_ pid: Int32) -> UInt64? {
        guard let text = read("/proc/\(pid)/stat") else { return nil }
        return cpuTicks(statLine: text)
    }

    /// The same from the text of /proc/PID/stat: the fields after the command name, which is in
    /// parentheses and may hold spaces and parentheses itself.
    static func cpuTicks(statLine text: String) -> UInt64? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state): utime is field 14, stime field 15.
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        return user + system
    }

    /// Resident memory of `pid` in bytes (the second field of /proc/PID/statm, in pages).
    static func residentBytes(_ pid: Int32) -> Int? {
        guard let text = read("/proc/\(pid)/statm") else { return nil }
        return residentBytes(statm: text)
    }

    static func residentBytes(statm text: String) -> Int? {
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1].trimmingCharacters(in: .whitespacesAndNewlines)) else { return nil }
        return pages * pageSize
    }

    /// A small /proc file, read with one read(2) (Foundation's readers stat the file first, and
    /// /proc files report size 0).
    private static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1024)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }
}
