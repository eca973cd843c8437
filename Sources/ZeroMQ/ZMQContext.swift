import CZeroMQ

/// A libzmq context. Contexts are thread-safe in libzmq, so this one is `Sendable`; the sockets made
/// from it are not.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public init(ioThreads: Int32 = 1) throws(ZMQError) {
        guard let handle = zmq_ctx_new() else { throw ZMQError.last() }
        self.handle = handle
        try zmqCall { zmq_ctx_set(handle, ZMQ_IO_THREADS, ioThreads) }
        // Nimbus nodes handle thousands of peers at most; libzmq's default of 1024 sockets is fine,
        // but blocky (legacy) behaviour is not: terminate must not hang on unsent messages.
        try zmqCall { zmq_ctx_set(handle, ZMQ_BLOCKY, 0) }
    }

    /// Makes every blocking call on every socket of this context return `.terminated`, so the threads
    /// owning them can close them. Safe from any thread.
    public func shutdown() {
        _ = zmq_ctx_shutdown(handle)
    }

    deinit {
        // Blocks until every socket is closed; with ZMQ_BLOCKY off, unsent messages do not hold it up.
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }
}
