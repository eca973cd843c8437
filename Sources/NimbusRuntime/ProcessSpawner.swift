import Foundation

/// Starting and reaping OS processes with posix_spawn: used by the supervisor for its children and
/// by the CLI to start the supervisor in the background.
public enum ProcessSpawner {
    // glibc's POSIX_SPAWN_SETSID (a GNU extension Swift does not import).
    private static let setSID: Int32 = 0x80

    /// Starts `executable` with `arguments`; standard output and error are appended to `logFile`
    /// (or discarded), standard input is /dev/null. With `newSession` the child leaves our session
    /// and process group, so it outlives the terminal that started it.
    /// Children start with default signal handling and nothing blocked, whatever ServiceLifecycle
    /// did to ours; `flags` adds further posix_spawn flags (a new session, a process group).
    public static func resetSignals(_ attributes: inout posix_spawnattr_t, flags: Int32 = 0) {
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setflags(&attributes, Int16(Int32(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK) | flags))
    }

    public static func spawn(_ executable: String, _ arguments: [String], logFile: String?, newSession: Bool = false) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let out = logFile ?? "/dev/null"
        posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        resetSignals(&attributes, flags: newSession ? setSID : 0)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        var pid: Int32 = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard rc == 0 else { throw SpawnError(executable: executable, errno: rc) }
        return pid
    }

    /// Waits for `pid` on a dedicated thread (never the cooperative pool) and reports how it ended.
    public static func onExit(of pid: Int32, _ report: @escaping @Sendable (String) -> Void) {
        let thread = Thread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 {
                if errno != EINTR { report("lost (waitpid: errno \(errno))"); return }
            }
            report(describe(status))
        }
        thread.name = "reap-\(pid)"
        thread.start()
    }

    /// "exit 0", "exit 3", "signal 9 (KILL)".
    public static func describe(_ status: Int32) -> String {
        let signal = status & 0x7f
        if signal == 0 { return "exit \((status >> 8) & 0xff)" }
        let names: [Int32: String] = [SIGKILL: "KILL", SIGTERM: "TERM", SIGINT: "INT", SIGSEGV: "SEGV", SIGABRT: "ABRT",
                                      SIGILL: "ILL", SIGBUS: "BUS", SIGTRAP: "TRAP"]
        return "signal \(signal)" + (names[signal].map { " (\($0))" } ?? "")
    }

    /// True while `pid` runs. A zombie (dead, not yet reaped by its parent) counts as gone.
    public static func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 || errno == EPERM else { return false }
        // /proc/PID/stat: "pid (comm) S ...", the state after the last ')'.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first != "Z"
    }
}

public struct SpawnError: Error, CustomStringConvertible {
    public var executable: String
    public var errno: Int32
    public var description: String { "cannot start \(executable): \(String(cString: strerror(errno)))" }
}
