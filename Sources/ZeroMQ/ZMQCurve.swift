import CZeroMQ
import Foundation

/// A CurveZMQ key (Curve25519): 32 bytes, written as 40 characters of Z85 (ZeroMQ's base 85, RFC 32)
/// in files and logs. Public and secret keys have the same shape; which one it is, is the holder's
/// business.
public struct CurveKey: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 32
    public static let z85Count = 40

    /// The 32 raw bytes, as libzmq's socket options and the ZAP protocol carry them.
    public let bytes: [UInt8]

    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        self.bytes = Array(bytes)
    }

    /// Decodes 40 characters of Z85; nil for anything else.
    public init?(z85 text: some StringProtocol) {
        let text = String(text)
        guard text.utf8.count == Self.z85Count,
              text.utf8.allSatisfy({ Self.z85Alphabet.contains($0) }) else { return nil }
        var out = [UInt8](repeating: 0, count: Self.byteCount)
        let decoded = out.withUnsafeMutableBufferPointer { buffer in
            zmq_z85_decode(buffer.baseAddress, text) != nil
        }
        guard decoded else { return nil }
        bytes = out
    }

    /// The 40-character Z85 text.
    public var z85: String {
        var text = [CChar](repeating: 0, count: Self.z85Count + 1)
        _ = bytes.withUnsafeBufferPointer { zmq_z85_encode(&text, $0.baseAddress, Self.byteCount) }
        return String(decoding: text.prefix(Self.z85Count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String { z85 }

    /// Z85's 85 characters (RFC 32).
    private static let z85Alphabet: Set<UInt8> = Set(
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#".utf8)
}

/// A CURVE key pair: what a process proves who it is with (the secret key never leaves it) and what
/// others know it by.
public struct CurveKeyPair: Equatable, Sendable {
    public let publicKey: CurveKey
    public let secretKey: CurveKey

    public init(publicKey: CurveKey, secretKey: CurveKey) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// A new random pair (`zmq_curve_keypair`, libsodium underneath). Fails with ENOTSUP when
    /// libzmq was built without CURVE.
    public static func generate() throws(ZMQError) -> CurveKeyPair {
        var publicText = [CChar](repeating: 0, count: CurveKey.z85Count + 1)
        var secretText = [CChar](repeating: 0, count: CurveKey.z85Count + 1)
        try zmqCall { zmq_curve_keypair(&publicText, &secretText) }
        guard let publicKey = CurveKey(z85: String(cString: publicText)),
              let secretKey = CurveKey(z85: String(cString: secretText)) else { throw ZMQError.system(errno: EINVAL) }
        return CurveKeyPair(publicKey: publicKey, secretKey: secretKey)
    }

    /// The pair a secret key belongs to (`zmq_curve_public` derives the public key).
    public init(secretKey: CurveKey) throws(ZMQError) {
        var publicText = [CChar](repeating: 0, count: CurveKey.z85Count + 1)
        let secretText = secretKey.z85
        try zmqCall { zmq_curve_public(&publicText, secretText) }
        guard let publicKey = CurveKey(z85: String(cString: publicText)) else { throw ZMQError.system(errno: EINVAL) }
        self.init(publicKey: publicKey, secretKey: secretKey)
    }
}

/// What the linked libzmq can do.
public enum ZMQCapabilities {
    /// Whether libzmq was built with CURVE security (libsodium or its own tweetnacl).
    public static var curve: Bool { zmq_has("curve") != 0 }
}

extension ZMQSocket {
    /// Makes this socket the CURVE server of its connections (usually the bound one): peers must
    /// know `secretKey`'s public key, and each peer's own key is handed to the context's ZAP handler
    /// (see `ZAPRequest`) when one is bound. Set before `bind`.
    public func setCurveServer(secretKey: CurveKey) throws(ZMQError) {
        try set(ZMQ_CURVE_SERVER, Int32(1))
        try set(ZMQ_CURVE_SECRETKEY, bytes: Data(secretKey.bytes))
    }

    /// Makes this socket a CURVE client (usually the connecting one) of the server whose public key
    /// is `serverKey`, proving itself with `keyPair`. Set before `connect`.
    public func setCurveClient(serverKey: CurveKey, keyPair: CurveKeyPair) throws(ZMQError) {
        try set(ZMQ_CURVE_SERVERKEY, bytes: Data(serverKey.bytes))
        try set(ZMQ_CURVE_PUBLICKEY, bytes: Data(keyPair.publicKey.bytes))
        try set(ZMQ_CURVE_SECRETKEY, bytes: Data(keyPair.secretKey.bytes))
    }

    /// Whether the socket is a CURVE server (`ZMQ_CURVE_SERVER`).
    public var isCurveServer: Bool {
        get throws(ZMQError) { try getInt32(ZMQ_CURVE_SERVER) != 0 }
    }

    /// The security mechanism in use: `ZMQ_NULL`, `ZMQ_PLAIN`, `ZMQ_CURVE` or `ZMQ_GSSAPI`.
    public var mechanism: Int32 {
        get throws(ZMQError) { try getInt32(ZMQ_MECHANISM) }
    }

    /// The domain the ZAP handler is told a connection belongs to.
    public func setZAPDomain(_ domain: String) throws(ZMQError) { try set(ZMQ_ZAP_DOMAIN, bytes: Data(domain.utf8)) }

    /// How long (ms) a connection may take to finish its handshake (security included) before it is
    /// dropped; 0: forever.
    public func setHandshakeInterval(_ ms: Int32) throws(ZMQError) { try set(ZMQ_HANDSHAKE_IVL, ms) }

    /// Reports `events` of this socket's connections as messages on a PAIR socket bound at
    /// `endpoint` (an `inproc://` address); connect a `.pair` socket there to read them
    /// (`ZMQMonitorEvent`). Connect it before this socket connects or binds, or the first events are
    /// lost.
    public func monitor(_ endpoint: String, events: ZMQMonitorEvent.Kinds) throws(ZMQError) {
        let h = try liveHandle()
        try zmqCall { zmq_socket_monitor(h, endpoint, events.rawValue) }
    }

    /// Stops what `monitor` started.
    public func stopMonitor() {
        if let h = rawHandle { _ = zmq_socket_monitor(h, nil, 0) }
    }
}

/// One event from a socket monitor: what happened, its value (an errno, a ZAP status code or a
/// protocol error code, depending on the event) and the connection's endpoint.
public struct ZMQMonitorEvent: Sendable, Equatable {
    public struct Kinds: OptionSet, Sendable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        public static let connected = Kinds(rawValue: ZMQ_EVENT_CONNECTED)
        public static let accepted = Kinds(rawValue: ZMQ_EVENT_ACCEPTED)
        public static let disconnected = Kinds(rawValue: ZMQ_EVENT_DISCONNECTED)
        public static let monitorStopped = Kinds(rawValue: ZMQ_EVENT_MONITOR_STOPPED)
        /// The handshake failed for a reason libzmq does not detail (the peer closed the connection
        /// mid-handshake: what a CURVE client sees when the server cannot open its HELLO because it
        /// was made for another server key).
        public static let handshakeFailedNoDetail = Kinds(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
        /// The handshake broke the protocol (value: a `ZMQ_PROTOCOL_ERROR_*` code), e.g. a client
        /// speaking NULL to a CURVE server, or a HELLO no key of this server opens.
        public static let handshakeFailedProtocol = Kinds(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        /// The ZAP handler refused the peer (value: its status code, e.g. 400).
        public static let handshakeFailedAuth = Kinds(rawValue: ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        public static let handshakeSucceeded = Kinds(rawValue: ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
        public static let handshakeFailed: Kinds = [.handshakeFailedNoDetail, .handshakeFailedProtocol, .handshakeFailedAuth]
    }

    public var kind: Kinds
    public var value: UInt32
    public var endpoint: String

    public init(kind: Kinds, value: UInt32, endpoint: String) {
        self.kind = kind
        self.value = value
        self.endpoint = endpoint
    }

    /// Reads a monitor message: frame 0 is a 16-bit event and a 32-bit value (native byte order),
    /// frame 1 the endpoint. Nil for anything else.
    public init?(_ message: ReceivedMessage) {
        guard message.frames.count == 2, message.frames[0].count == 6 else { return nil }
        let (event, value) = message.frames[0].withUnsafeBytes { raw in
            (raw.loadUnaligned(as: UInt16.self), raw.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        }
        self.init(kind: Kinds(rawValue: Int32(event)), value: value, endpoint: String(decoding: message.frames[1], as: UTF8.self))
    }

    public var isHandshakeFailure: Bool { !kind.intersection(.handshakeFailed).isEmpty }
}

extension ZMQSocket {
    func liveHandle() throws(ZMQError) -> UnsafeMutableRawPointer {
        guard let handle = rawHandle else { throw ZMQError.system(errno: ENOTSOCK) }
        return handle
    }
}
