import CZeroMQ

/// `zmq_poll` over a fixed set of sockets and raw file descriptors. Build it once per socket set and
/// call `poll` in the loop: the item array is reused, so a poll allocates nothing.
public struct ZMQPoller: ~Copyable {
    public struct Events: OptionSet, Sendable {
        public let rawValue: Int16
        public init(rawValue: Int16) { self.rawValue = rawValue }
        public static let readable = Events(rawValue: Int16(ZMQ_POLLIN))
        public static let writable = Events(rawValue: Int16(ZMQ_POLLOUT))
        public static let error = Events(rawValue: Int16(ZMQ_POLLERR))
    }

    private var items: [zmq_pollitem_t] = []

    public init() {}

    public var count: Int { items.count }

    /// Adds a socket; returns its index for `ready(_:)`.
    @discardableResult
    public mutating func add(_ socket: ZMQSocket, _ events: Events = .readable) -> Int {
        items.append(zmq_pollitem_t(socket: socket.rawHandle, fd: -1, events: events.rawValue, revents: 0))
        return items.count - 1
    }

    /// Adds a plain file descriptor (eventfd, pidfd, pipe) to the same poll.
    @discardableResult
    public mutating func add(fd: Int32, _ events: Events = .readable) -> Int {
        items.append(zmq_pollitem_t(socket: nil, fd: fd, events: events.rawValue, revents: 0))
        return items.count - 1
    }

    /// Waits up to `timeoutMs` (-1: forever, 0: just look) and returns how many items are ready.
    /// An interrupted poll returns 0 rather than failing.
    public mutating func poll(timeoutMs: Int) throws(ZMQError) -> Int {
        let n = items.count
        let rc = items.withUnsafeMutableBufferPointer { zmq_poll($0.baseAddress, Int32(n), timeoutMs) }
        if rc < 0 {
            let code = zmq_errno()
            if code == EINTR { return 0 }
            throw ZMQError(errno: code)
        }
        return Int(rc)
    }

    public func ready(_ index: Int) -> Events { Events(rawValue: items[index].revents) }
}
