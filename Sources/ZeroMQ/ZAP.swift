import Foundation

/// The ZeroMQ Authentication Protocol (ZAP, RFC 27): how libzmq asks an application whether to admit
/// a peer. A context's ZAP handler is a REP socket bound at `ZAP.endpoint` in that same context;
/// libzmq sends it one request per handshake (on a CURVE server socket: every handshake, with the
/// client's public key) and holds the handshake until the answer comes. No handler bound: every
/// client that knows the server key is admitted, so bind it before the socket it guards.
public enum ZAP {
    /// Where a context's handler must be bound (RFC 27).
    public static let endpoint = "inproc://zeromq.zap.01"
    public static let version = "1.0"

    /// A ZAP request: `[version, request id, domain, address, routing id, mechanism, credentials...]`.
    public struct Request: Sendable, Equatable {
        public var version: String
        public var requestID: Data
        public var domain: String
        /// The peer's address (an IP for TCP).
        public var address: String
        public var routingID: Data
        /// `NULL`, `PLAIN` or `CURVE`.
        public var mechanism: String
        /// CURVE: one frame, the client's 32-byte public key; PLAIN: user name and password.
        public var credentials: [Data]

        public init?(frames: [Data]) {
            guard frames.count >= 6 else { return nil }
            version = String(decoding: frames[0], as: UTF8.self)
            requestID = frames[1]
            domain = String(decoding: frames[2], as: UTF8.self)
            address = String(decoding: frames[3], as: UTF8.self)
            routingID = frames[4]
            mechanism = String(decoding: frames[5], as: UTF8.self)
            credentials = Array(frames[6...])
        }

        /// The client's public key, for a CURVE handshake.
        public var curveKey: CurveKey? {
            guard mechanism == "CURVE", credentials.count == 1 else { return nil }
            return CurveKey(bytes: credentials[0])
        }

        /// The answer: `[version, request id, status code, status text, user id, metadata]`. 200
        /// admits the peer, 300 is a temporary failure, 400 refuses it, 500 is the handler's own
        /// failure. `userID` is what the admitted peer's messages carry as their "User-Id" property.
        public func reply(status: Int, text: String, userID: String = "") -> [Data] {
            [Data(ZAP.version.utf8), requestID, Data(String(status).utf8), Data(text.utf8), Data(userID.utf8), Data()]
        }
    }
}
