import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Outbound TCP for the notifier's blocking clients (SMTP, HTTP deliveries): a connected socket
/// whose reads and writes each give up after `timeout` seconds. Their I/O runs on dedicated
/// DispatchQueues, never on Swift's cooperative pool.
enum BlockingTCP {
    /// Runs `work` (blocking I/O) on `queue` and returns its result. A cancelled caller (the node
    /// shutting down) stops waiting at once with CancellationError; the work runs on until it ends
    /// or times out, and its result is dropped. A caller cancelled before the work was queued does
    /// not queue it: `skipped` is called instead.
    static func run<T: Sendable>(on queue: DispatchQueue, skipped: (@Sendable () -> Void)? = nil,
                                 _ work: @escaping @Sendable () throws -> T) async throws -> T {
        let waiter = Mutex<CheckedContinuation<T, Error>?>(nil)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                waiter.withLock { $0 = continuation }
                if Task.isCancelled {
                    skipped?()
                    waiter.withLock { $0.take() }?.resume(throwing: CancellationError())
                    return
                }
                queue.async {
                    let result = Result { try work() }
                    waiter.withLock { $0.take() }?.resume(with: result)
                }
            }
        } onCancel: {
            waiter.withLock { $0.take() }?.resume(throwing: CancellationError())
        }
    }

    /// Connects to the first address of `host` that takes the connection, each attempt bounded by
    /// `timeout`; returns the socket or why none could be had.
    static func connect(host: String, port: Int, timeout: Double) -> Result<Int32, ConnectFailure> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0, let first = result else {
            return .failure(.unresolved(String(cString: gai_strerror(status))))
        }
        defer { freeaddrinfo(result) }
        var lastError = "no address"
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let info = candidate {
            candidate = info.pointee.ai_next
            let s = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            if s < 0 { lastError = String(cString: strerror(errno)); continue }
            if connect(s, info.pointee.ai_addr, info.pointee.ai_addrlen, timeout: timeout, error: &lastError) {
                var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
                setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                var one: Int32 = 1
                setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return .success(s)
            }
            Glibc.close(s)
        }
        return .failure(.refused(lastError))
    }

    enum ConnectFailure: Error {
        /// The name did not resolve (getaddrinfo's reason).
        case unresolved(String)
        /// No address took the connection (the last one's reason).
        case refused(String)
    }

    /// connect(2) bounded by `timeout`: non-blocking connect, poll for writability, check SO_ERROR.
    private static func connect(_ s: Int32, _ address: UnsafeMutablePointer<sockaddr>?, _ length: socklen_t, timeout: Double,
                                error: inout String) -> Bool {
        let flags = fcntl(s, F_GETFL, 0)
        _ = fcntl(s, F_SETFL, flags | O_NONBLOCK)
        defer { _ = fcntl(s, F_SETFL, flags) }
        if Glibc.connect(s, address, length) == 0 { return true }
        guard errno == EINPROGRESS else { error = String(cString: strerror(errno)); return false }
        var pfd = pollfd(fd: s, events: Int16(POLLOUT), revents: 0)
        let ready = poll(&pfd, 1, Int32(timeout * 1000))
        if ready <= 0 { error = ready == 0 ? "connect timed out after \(timeout) s" : String(cString: strerror(errno)); return false }
        var code: Int32 = 0
        var size = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(s, SOL_SOCKET, SO_ERROR, &code, &size)
        if code != 0 { error = String(cString: strerror(code)); return false }
        return true
    }

    /// Writes all of `bytes` (MSG_NOSIGNAL: a peer that has gone is an error, not a SIGPIPE);
    /// nil when done, else why not.
    static func send(_ fd: Int32, _ bytes: [UInt8]) -> String? {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { return "timed out" }
                return String(cString: strerror(errno))
            }
            offset += n
        }
        return nil
    }
}
