import CZeroMQ
import Foundation

/// A libzmq socket. libzmq sockets belong to one thread, so this type is deliberately not `Sendable`:
/// create, use and close it on the thread that owns it (a node's I/O thread).
public final class ZMQSocket {
    public enum Kind: Sendable {
        case pair, pub, sub, req, rep, dealer, router, pull, push

        var rawValue: Int32 {
            switch self {
            case .pair: return ZMQ_PAIR
            case .pub: return ZMQ_PUB
            case .sub: return ZMQ_SUB
            case .req: return ZMQ_REQ
            case .rep: return ZMQ_REP
            case .dealer: return ZMQ_DEALER
            case .router: return ZMQ_ROUTER
            case .pull: return ZMQ_PULL
            case .push: return ZMQ_PUSH
            }
        }
    }

    public let kind: Kind
    private(set) var handle: UnsafeMutableRawPointer?
    // Keeps the context alive as long as any socket made from it.
    private let context: ZMQContext

    public init(_ context: ZMQContext, _ kind: Kind) throws(ZMQError) {
        guard let handle = zmq_socket(context.handle, kind.rawValue) else { throw ZMQError.last() }
        self.handle = handle
        self.kind = kind
        self.context = context
    }

    deinit { close() }

    /// Closes the socket; pending outbound messages are kept only for the linger period.
    public func close() {
        if let handle {
            zmq_close(handle)
            self.handle = nil
        }
    }

    public var isClosed: Bool { handle == nil }

    private func live() throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let handle else { throw ZMQError.system(errno: ENOTSOCK) }
        return handle
    }

    public func bind(_ endpoint: String) throws(ZMQError) {
        let h = try live()
        try zmqCall { zmq_bind(h, endpoint) }
    }

    public func unbind(_ endpoint: String) throws(ZMQError) {
        let h = try live()
        try zmqCall { zmq_unbind(h, endpoint) }
    }

    public func connect(_ endpoint: String) throws(ZMQError) {
        let h = try live()
        try zmqCall { zmq_connect(h, endpoint) }
    }

    public func disconnect(_ endpoint: String) throws(ZMQError) {
        let h = try live()
        try zmqCall { zmq_disconnect(h, endpoint) }
    }

    // MARK: Sending

    /// Sends one multipart message. Returns false when `dontWait` is set and the message could not be
    /// queued (high-water mark reached, or no peer for a ROUTER_MANDATORY route); throws otherwise.
    @discardableResult
    public func send(_ frames: [Data], dontWait: Bool = false) throws(ZMQError) -> Bool {
        let h = try live()
        precondition(!frames.isEmpty, "a ZeroMQ message has at least one frame")
        for (index, frame) in frames.enumerated() {
            var flags: Int32 = dontWait ? ZMQ_DONTWAIT : 0
            if index < frames.count - 1 { flags |= ZMQ_SNDMORE }
            var code: Int32 = 0
            repeat {
                let rc = frame.withUnsafeBytes { zmq_send(h, $0.baseAddress, $0.count, flags) }
                code = rc >= 0 ? 0 : zmq_errno()
            } while code == EINTR
            if code == EAGAIN && index == 0 {
                // Nothing of this message was queued; libzmq queues a multipart message atomically
                // once its first frame is accepted, so later frames never hit this.
                return false
            }
            if code != 0 { throw ZMQError(errno: code) }
        }
        return true
    }

    @discardableResult
    public func send(_ frames: Data..., dontWait: Bool = false) throws(ZMQError) -> Bool {
        try send(frames, dontWait: dontWait)
    }

    // MARK: Receiving

    /// Receives one whole multipart message of any size. With `dontWait`, returns nil when none is
    /// waiting. At most `maxFrames` frames are kept; the rest of an over-long message is read and
    /// dropped so the socket stays in step, and `truncated` tells the caller.
    public func receive(dontWait: Bool = false, maxFrames: Int = .max) throws(ZMQError) -> ReceivedMessage? {
        let h = try live()
        var frames: [Data] = []
        var truncated = false
        var msg = zmq_msg_t()
        zmq_msg_init(&msg)
        defer { zmq_msg_close(&msg) }
        var first = true
        while true {
            let flags: Int32 = (dontWait && first) ? ZMQ_DONTWAIT : 0
            do {
                try zmqCall { zmq_msg_recv(&msg, h, flags) }
            } catch .wouldBlock where first {
                return nil
            }
            first = false
            if frames.count < maxFrames {
                let size = zmq_msg_size(&msg)
                if size == 0 {
                    frames.append(Data())
                } else {
                    frames.append(Data(bytes: zmq_msg_data(&msg), count: size))
                }
            } else {
                truncated = true
            }
            if zmq_msg_more(&msg) == 0 { break }
        }
        return ReceivedMessage(frames: frames, truncated: truncated)
    }

    // MARK: Options

    public func set(_ option: Int32, _ value: Int32) throws(ZMQError) {
        let h = try live()
        var v = value
        try zmqCall { zmq_setsockopt(h, option, &v, MemoryLayout<Int32>.size) }
    }

    public func set(_ option: Int32, _ value: Int64) throws(ZMQError) {
        let h = try live()
        var v = value
        try zmqCall { zmq_setsockopt(h, option, &v, MemoryLayout<Int64>.size) }
    }

    public func set(_ option: Int32, bytes: Data) throws(ZMQError) {
        let h = try live()
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(h, option, $0.baseAddress, $0.count) }
        if rc != 0 { throw ZMQError.last() }
    }

    public func getInt32(_ option: Int32) throws(ZMQError) -> Int32 {
        let h = try live()
        var v: Int32 = 0
        var size = MemoryLayout<Int32>.size
        try zmqCall { zmq_getsockopt(h, option, &v, &size) }
        return v
    }

    public func getString(_ option: Int32) throws(ZMQError) -> String {
        let h = try live()
        var buffer = [CChar](repeating: 0, count: 1024)
        var size = buffer.count
        try zmqCall { zmq_getsockopt(h, option, &buffer, &size) }
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// How long (ms) unsent messages may hold up close; 0 drops them at once, -1 waits forever.
    public func setLinger(_ ms: Int32) throws(ZMQError) { try set(ZMQ_LINGER, ms) }
    public func setSendHighWaterMark(_ messages: Int32) throws(ZMQError) { try set(ZMQ_SNDHWM, messages) }
    public func setReceiveHighWaterMark(_ messages: Int32) throws(ZMQError) { try set(ZMQ_RCVHWM, messages) }
    public func setSendTimeout(_ ms: Int32) throws(ZMQError) { try set(ZMQ_SNDTIMEO, ms) }
    public func setReceiveTimeout(_ ms: Int32) throws(ZMQError) { try set(ZMQ_RCVTIMEO, ms) }
    public func setRoutingID(_ id: Data) throws(ZMQError) { try set(ZMQ_ROUTING_ID, bytes: id) }
    public func setReconnectInterval(_ ms: Int32) throws(ZMQError) { try set(ZMQ_RECONNECT_IVL, ms) }
    public func setReconnectIntervalMax(_ ms: Int32) throws(ZMQError) { try set(ZMQ_RECONNECT_IVL_MAX, ms) }
    /// ZMTP heartbeats: ping every `interval` ms, drop the connection after `timeout` ms of silence,
    /// and ask the peer to drop us after `ttl` ms.
    public func setHeartbeat(interval: Int32, timeout: Int32, ttl: Int32) throws(ZMQError) {
        try set(ZMQ_HEARTBEAT_IVL, interval)
        try set(ZMQ_HEARTBEAT_TIMEOUT, timeout)
        try set(ZMQ_HEARTBEAT_TTL, ttl)
    }
    /// Larger inbound frames make libzmq drop the connection before they reach us.
    public func setMaxMessageSize(_ bytes: Int64) throws(ZMQError) { try set(ZMQ_MAXMSGSIZE, bytes) }
    /// ROUTER: fail a send to an unknown routing id instead of dropping it silently.
    public func setRouterMandatory(_ on: Bool) throws(ZMQError) { try set(ZMQ_ROUTER_MANDATORY, Int32(on ? 1 : 0)) }
    /// Queue messages only to completed connections.
    public func setImmediate(_ on: Bool) throws(ZMQError) { try set(ZMQ_IMMEDIATE, Int32(on ? 1 : 0)) }
    public func subscribe(_ prefix: Data = Data()) throws(ZMQError) { try set(ZMQ_SUBSCRIBE, bytes: prefix) }

    /// The endpoint the socket last bound, with a wildcard port resolved (`tcp://127.0.0.1:*`).
    public var lastEndpoint: String {
        get throws(ZMQError) { try getString(ZMQ_LAST_ENDPOINT) }
    }

    var rawHandle: UnsafeMutableRawPointer? { handle }
}

public struct ReceivedMessage: Sendable {
    public var frames: [Data]
    /// True when the message had more frames than the receiver keeps.
    public var truncated: Bool
}
