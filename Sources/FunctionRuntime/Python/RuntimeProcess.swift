import Foundation
import NimbusRuntime
import Synchronization

/// A runtime's child process: started with posix_spawnp in its own process group (so a kill takes
/// whatever it started too), standard input /dev/null, standard output and error on one pipe read
/// line by line (as Lambda sends both to the function's log stream), an address-space limit.
final class RuntimeProcess: Sendable {
    let pid: Int32
    private let output: OutputReader
    /// Set once the process has been reaped: its pid (and group id) may then belong to another.
    private let reaped: ReapedFlag

    final class ReapedFlag: Sendable {
        let value = Atomic<Bool>(false)
    }

    private init(pid: Int32, output: OutputReader, reaped: ReapedFlag) {
        self.pid = pid
        self.output = output
        self.reaped = reaped
    }

    /// Starts `arguments[0]` (looked up in PATH) with exactly `environment`, in `directory`;
    /// `onLine` gets each line it writes, `onExit` how it ended ("exit 1", "signal 9 (KILL)").
    static func start(_ arguments: [String], environment: [String: String], directory: String, memoryLimitBytes: UInt64?,
                      onLine: @escaping @Sendable (String) -> Void, onExit: @escaping @Sendable (String) -> Void) throws -> RuntimeProcess {
        var fds: [Int32] = [-1, -1]
        // Close-on-exec from the start (a socket pair, as glibc's pipe2 is not in Swift's overlay): a
        // runtime spawned at the same moment on another thread must not inherit this one's write end
        // (its reader would never see end-of-file).
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
            throw RuntimeSpawnError(executable: arguments[0], errno: errno)
        }
        let (readEnd, writeEnd) = (fds[0], fds[1])
        // Neither end leaks into other children (the spawn's dup2 onto 1 and 2 clears it there).
        for fd in [readEnd, writeEnd] { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
        // The code folder is the runtime's working directory, as /var/task is in Lambda (glibc 2.29+;
        // without it PYTHONPATH still finds the handler's module).
        if let addChdir = GNU.addChdir { _ = directory.withCString { addChdir(&actions, $0) } }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setpgroup(&attributes, 0)
        ProcessSpawner.resetSignals(&attributes, flags: Int32(POSIX_SPAWN_SETPGROUP))

        let argv = arguments.map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        let envp = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for entry in envp { free(entry) } }
        var pid: Int32 = 0
        let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        close(writeEnd)
        guard rc == 0 else {
            close(readEnd)
            throw RuntimeSpawnError(executable: arguments[0], errno: rc)
        }
        if let memoryLimitBytes {
            // Lambda's MemorySize as the address-space limit; set from here, a moment after the start
            // (posix_spawn cannot), long before the interpreter has loaded anything sizeable.
            var limit = rlimit(rlim_cur: rlim_t(memoryLimitBytes), rlim_max: rlim_t(memoryLimitBytes))
            _ = GNU.prlimit?(pid, Int32(RLIMIT_AS.rawValue), &limit, nil)
        }
        let output = OutputReader(fd: readEnd, onLine: onLine)
        output.start(name: "runtime-out-\(pid)")
        let reaped = ReapedFlag()
        ProcessSpawner.onExit(of: pid) { status in
            reaped.value.store(true, ordering: .sequentiallyConsistent)
            output.drain()
            onExit(status)
        }
        return RuntimeProcess(pid: pid, output: output, reaped: reaped)
    }

    /// SIGKILLs the process and its process group, unless it has been reaped already (its pid may be
    /// another process's by then).
    func kill() {
        guard !reaped.value.load(ordering: .sequentiallyConsistent) else { return }
        _ = Glibc.kill(-pid, SIGKILL)
        _ = Glibc.kill(pid, SIGKILL)
    }

    /// Reads what the process has written so far (it wrote it before it posted its answer), so an
    /// invocation's lines are logged before the invocation ends.
    func drain() { output.drain() }
}

/// glibc's GNU extensions Swift does not import (they are declared under _GNU_SOURCE), looked up
/// at run time; nil where the C library lacks them.
enum GNU {
    typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32
    typealias PRLimit = @convention(c) (pid_t, Int32, UnsafePointer<rlimit>?, UnsafeMutablePointer<rlimit>?) -> Int32

    static let addChdir: AddChdir? = dlsym(nil, "posix_spawn_file_actions_addchdir_np").map { unsafeBitCast($0, to: AddChdir.self) }
    static let prlimit: PRLimit? = dlsym(nil, "prlimit").map { unsafeBitCast($0, to: PRLimit.self) }
}

/// A runtime that could not be started (no such interpreter, say).
struct RuntimeSpawnError: Error, CustomStringConvertible {
    var executable: String
    var errno: Int32
    var description: String { "cannot start \(executable): \(String(cString: strerror(errno)))" }
}

/// Reads a pipe on a dedicated thread (poll, then non-blocking reads) and hands out complete lines.
/// `drain` reads what is in the pipe now from the caller's thread, under the same lock, so nothing
/// written before it is left unread after it.
final class OutputReader: Sendable {
    private struct State {
        var fd: Int32
        var partial: [UInt8] = []
        var closed = false
    }
    private let state: Mutex<State>
    private let onLine: @Sendable (String) -> Void
    /// Longest line kept whole; longer ones are cut (a runaway print cannot grow memory without bound).
    static let maxLine = 256 * 1024

    init(fd: Int32, onLine: @escaping @Sendable (String) -> Void) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        state = Mutex(State(fd: fd))
        self.onLine = onLine
    }

    func start(name: String) {
        let thread = Thread { [self] in
            while true {
                let fd = state.withLock { $0.closed ? -1 : $0.fd }
                if fd < 0 { return }
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let n = poll(&pfd, 1, 1000)
                if n < 0 && errno != EINTR { drain(); close(); return }
                if n > 0 && !drain() { return }
            }
        }
        thread.name = name
        thread.start()
    }

    /// Reads everything available now; false once the pipe is at its end (and closed).
    @discardableResult
    func drain() -> Bool {
        state.withLock { s in
            if s.closed { return false }
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(s.fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    split(buffer[0..<n], into: &s)
                    continue
                }
                if n < 0 && errno == EINTR { continue }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return true }
                // End of file (every writer gone) or an error: the rest is one last line.
                if !s.partial.isEmpty { emit(s.partial) }
                s.partial = []
                Glibc.close(s.fd)
                s.closed = true
                return false
            }
        }
    }

    private func close() {
        state.withLock { s in
            if !s.closed { Glibc.close(s.fd); s.closed = true }
        }
    }

    private func split(_ bytes: ArraySlice<UInt8>, into s: inout State) {
        var start = bytes.startIndex
        for i in bytes.indices where bytes[i] == UInt8(ascii: "\n") {
            s.partial += bytes[start..<i]
            emit(s.partial)
            s.partial = []
            start = i + 1
        }
        s.partial += bytes[start...]
        if s.partial.count > Self.maxLine {
            emit(s.partial)
            s.partial = []
        }
    }

    /// One line as written; Lambda's Python runtime separates the lines of one log record (a traceback)
    /// with "\r", which become lines of their own here.
    private func emit(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        for line in text.split(separator: "\r", omittingEmptySubsequences: true) { onLine(String(line)) }
    }
}
