import CZeroMQ
#if canImport(Glibc)
import Glibc
#endif

/// A libzmq failure with its errno kept. `EAGAIN` and `ETERM` get their own cases because callers branch
/// on them (a non-blocking call that found nothing; a context that is shutting down); `EINTR` never
/// surfaces: the wrapper retries it.
public enum ZMQError: Error, Equatable, CustomStringConvertible, Sendable {
    case wouldBlock
    case terminated
    case system(errno: Int32)

    public init(errno code: Int32) {
        switch code {
        case EAGAIN: self = .wouldBlock
        case ETERM: self = .terminated
        default: self = .system(errno: code)
        }
    }

    /// The error libzmq reports for the calling thread's last failed call.
    public static func last() -> ZMQError { ZMQError(errno: zmq_errno()) }

    public var errno: Int32 {
        switch self {
        case .wouldBlock: return EAGAIN
        case .terminated: return ETERM
        case .system(let code): return code
        }
    }

    public var description: String {
        "\(String(cString: zmq_strerror(errno))) (errno \(errno))"
    }
}

/// Runs a libzmq call that returns -1 on failure, retrying when a signal interrupted it.
@discardableResult
func zmqCall(_ body: () -> Int32) throws(ZMQError) -> Int32 {
    while true {
        let rc = body()
        if rc >= 0 { return rc }
        let code = zmq_errno()
        if code == EINTR { continue }
        throw ZMQError(errno: code)
    }
}
