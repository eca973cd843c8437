import Foundation

/// The memory a node may count on: the machine's (MemTotal), or less when the process runs in a
/// memory-limited cgroup (a container's `mem_limit`, a systemd slice's MemoryMax). Without the
/// cgroup's limit a container's nodes would size their memory alarm from the host's memory, and the
/// kernel's OOM killer would act long before the alarm.
public enum MemoryLimit {
    /// The smaller of the machine's memory and the process's cgroup limit; nil when neither can be read.
    public static func current() -> Int64? {
        let read: (String) -> String? = { try? String(contentsOfFile: $0, encoding: .utf8) }
        let cgroup = read("/proc/self/cgroup").flatMap { membership in
            read("/proc/self/mountinfo").flatMap { cgroupLimit(membership: membership, mountInfo: $0, read: read) }
        }
        switch (physicalMemoryBytes(), cgroup) {
        case let (machine?, cgroup?): return min(machine, cgroup)
        case let (machine, cgroup): return machine ?? cgroup
        }
    }

    /// The machine's memory (/proc/meminfo's MemTotal).
    public static func physicalMemoryBytes() -> Int64? {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemTotal:") }),
              let kilobytes = Int64(line.split(separator: " ").dropFirst().first ?? "") else { return nil }
        return kilobytes * 1024
    }

    /// The tightest memory limit on the process's cgroup and its ancestors, from the contents of
    /// /proc/self/cgroup and /proc/self/mountinfo; `read` reads a file under the cgroup mount.
    /// cgroup v1's memory controller is used when mounted, else v2's unified hierarchy. Nil when no
    /// limit is set ("max" in v2, a number near Int64.max in v1) or nothing can be read.
    public static func cgroupLimit(membership: String, mountInfo: String, read: (String) -> String?) -> Int64? {
        var v1Path: String?
        var v2Path: String?
        for line in membership.split(separator: "\n") {
            // hierarchy-ID:controllers:path; the path may itself contain ':'.
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3 else { continue }
            if parts[0] == "0" && parts[1].isEmpty {
                v2Path = String(parts[2])
            } else if parts[1].split(separator: ",").contains("memory") {
                v1Path = String(parts[2])
            }
        }
        var v1Mount: (root: String, point: String)?
        var v2Mount: (root: String, point: String)?
        for line in mountInfo.split(separator: "\n") {
            // id parent major:minor root mount-point options [optional...] - fstype source super-options
            let halves = line.components(separatedBy: " - ")
            guard halves.count == 2 else { continue }
            let fields = halves[0].split(separator: " ")
            let after = halves[1].split(separator: " ")
            guard fields.count >= 5, let type = after.first else { continue }
            let mount = (root: unescape(fields[3]), point: unescape(fields[4]))
            if type == "cgroup2" {
                v2Mount = v2Mount ?? mount
            } else if type == "cgroup", after.count >= 3, after[2].split(separator: ",").contains("memory") {
                v1Mount = v1Mount ?? mount
            }
        }
        if let path = v1Path, let mount = v1Mount {
            return tightest(path: path, mount: mount, file: "memory.limit_in_bytes", read: read)
        }
        if let path = v2Path, let mount = v2Mount {
            return tightest(path: path, mount: mount, file: "memory.max", read: read)
        }
        return nil
    }

    /// Walks from the process's cgroup directory up to the mount point, keeping the smallest limit.
    private static func tightest(path: String, mount: (root: String, point: String), file: String,
                                 read: (String) -> String?) -> Int64? {
        // The mount shows the hierarchy from `root` down (a container sees only its own subtree);
        // a path outside it (another namespace's view) leaves just the mount point to read.
        var relative: Substring
        if mount.root == "/" {
            relative = Substring(path)
        } else if path == mount.root || path.hasPrefix(mount.root + "/") {
            relative = path.dropFirst(mount.root.count)
        } else {
            relative = ""
        }
        var components = relative.split(separator: "/").map(String.init)
        var tightest: Int64?
        while true {
            let directory = ([mount.point] + components).joined(separator: "/")
            if let text = read(directory + "/" + file)?.trimmingCharacters(in: .whitespacesAndNewlines),
               let bytes = Int64(text), bytes > 0, bytes < unlimited {
                tightest = min(tightest ?? bytes, bytes)
            }
            if components.isEmpty { break }
            components.removeLast()
        }
        return tightest
    }

    /// cgroup v1 writes "no limit" as the largest page-aligned Int64 (9223372036854771712); anything
    /// from 2^62 up is taken to mean that.
    private static let unlimited: Int64 = 1 << 62

    /// mountinfo escapes space, tab, newline and backslash as octal (`\040` ...).
    private static func unescape(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        var utf8 = Array(field.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "\\"), utf8.count >= 3,
               let value = UInt8(String(decoding: utf8.prefix(3), as: UTF8.self), radix: 8) {
                bytes.append(value)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
