import CZeroMQ
import Foundation
import Testing
@testable import ZeroMQ

/// A CURVE server (ROUTER) with a ZAP handler admitting a set of client keys, in its own context,
/// and what happened to it while `pump` ran.
final class CurveServer {
    let context: ZMQContext
    let zap: ZMQSocket
    let router: ZMQSocket
    let monitor: ZMQSocket
    let keys: CurveKeyPair
    let endpoint: String
    var admitted: Set<CurveKey>
    var zapRequests: [ZAP.Request] = []
    var received: [ReceivedMessage] = []
    var events: [ZMQMonitorEvent] = []

    init(admitting admitted: Set<CurveKey>) throws {
        context = try ZMQContext()
        keys = try CurveKeyPair.generate()
        self.admitted = admitted
        // The handler first: a CURVE socket with no handler bound admits anyone with the server key.
        zap = try ZMQSocket(context, .rep)
        try zap.setLinger(0)
        try zap.bind(ZAP.endpoint)
        router = try ZMQSocket(context, .router)
        try router.setLinger(0)
        try router.setCurveServer(secretKey: keys.secretKey)
        try router.setZAPDomain("test")
        try router.monitor("inproc://server-monitor", events: .handshakeFailed.union(.handshakeSucceeded))
        monitor = try ZMQSocket(context, .pair)
        try monitor.setLinger(0)
        try monitor.connect("inproc://server-monitor")
        try router.bind("tcp://127.0.0.1:*")
        endpoint = try router.lastEndpoint
    }

    /// Serves ZAP and reads the router and its monitor for `ms` milliseconds, or until `until` holds.
    func pump(ms: Int, until done: (CurveServer) -> Bool = { _ in false }) throws {
        let deadline = ContinuousClock.now + .milliseconds(ms)
        while ContinuousClock.now < deadline, !done(self) {
            var poller = ZMQPoller()
            poller.add(zap)
            poller.add(router)
            poller.add(monitor)
            _ = try poller.poll(timeoutMs: 20)
            if poller.ready(0).contains(.readable), let message = try zap.receive(dontWait: true) {
                let request = try #require(ZAP.Request(frames: message.frames))
                zapRequests.append(request)
                let known = request.curveKey.map { admitted.contains($0) } ?? false
                try zap.send(request.reply(status: known ? 200 : 400, text: known ? "OK" : "unknown key", userID: known ? "client" : ""))
            }
            if poller.ready(1).contains(.readable), let message = try router.receive(dontWait: true) { received.append(message) }
            if poller.ready(2).contains(.readable), let message = try monitor.receive(dontWait: true),
               let event = ZMQMonitorEvent(message) { events.append(event) }
        }
    }
}

@Suite struct ZMQCurveTests {
    let context: ZMQContext

    init() throws { context = try ZMQContext() }

    func curveClient(serverKey: CurveKey, keys: CurveKeyPair, endpoint: String) throws -> ZMQSocket {
        let dealer = try ZMQSocket(context, .dealer)
        try dealer.setLinger(0)
        try dealer.setCurveClient(serverKey: serverKey, keyPair: keys)
        try dealer.connect(endpoint)
        return dealer
    }

    func receive(_ socket: ZMQSocket, timeoutMs: Int) throws -> ReceivedMessage? {
        var poller = ZMQPoller()
        poller.add(socket)
        guard try poller.poll(timeoutMs: timeoutMs) > 0 else { return nil }
        return try socket.receive(dontWait: true)
    }

    @Test func libzmqHasCurve() {
        #expect(ZMQCapabilities.curve)
    }

    @Test func keysRoundTripThroughZ85AndThePublicKeyFollowsFromTheSecret() throws {
        let pair = try CurveKeyPair.generate()
        #expect(pair.publicKey != pair.secretKey)
        #expect(pair.publicKey.z85.count == 40)
        #expect(CurveKey(z85: pair.publicKey.z85) == pair.publicKey)
        #expect(CurveKey(bytes: pair.secretKey.bytes) == pair.secretKey)
        #expect(try CurveKeyPair(secretKey: pair.secretKey) == pair)
        // RFC 32's test vector: these 8 bytes are "HelloWorld".
        let hello = [UInt8]([0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B])
        #expect(CurveKey(bytes: hello + [UInt8](repeating: 0, count: 24))?.z85.hasPrefix("HelloWorld") == true)
        #expect(CurveKey(z85: "too short") == nil)
        #expect(CurveKey(z85: String(repeating: "~", count: 40)) == nil)  // not in the alphabet
        #expect(CurveKey(bytes: [UInt8](repeating: 1, count: 31)) == nil)
    }

    @Test func aCurveRouterAndDealerExchangeMessagesAndZAPSeesTheClientsKey() throws {
        let client = try CurveKeyPair.generate()
        let server = try CurveServer(admitting: [client.publicKey])
        let dealer = try curveClient(serverKey: server.keys.publicKey, keys: client, endpoint: server.endpoint)
        try dealer.send(Data("nimbus/1".utf8), Data("secret".utf8))
        try server.pump(ms: 5_000) { !$0.received.isEmpty }
        let request = try #require(server.received.first)
        #expect(request.frames.dropFirst() == [Data("nimbus/1".utf8), Data("secret".utf8)])
        #expect(server.zapRequests.count == 1)
        #expect(server.zapRequests.first?.curveKey == client.publicKey)
        #expect(server.zapRequests.first?.mechanism == "CURVE")
        #expect(server.zapRequests.first?.domain == "test")
        #expect(try server.router.isCurveServer)
        #expect(try dealer.mechanism == ZMQ_CURVE)
        try server.router.send([request.frames[0], Data("answer".utf8)])
        #expect(try receive(dealer, timeoutMs: 2_000)?.frames == [Data("answer".utf8)])
        try server.pump(ms: 200) { $0.events.contains { $0.kind == .handshakeSucceeded } }
        #expect(!server.events.contains { $0.isHandshakeFailure })
    }

    @Test func aClientWithTheWrongServerKeyGetsNothingThrough() throws {
        let client = try CurveKeyPair.generate()
        let server = try CurveServer(admitting: [client.publicKey])
        let impostor = try CurveKeyPair.generate().publicKey
        let dealer = try curveClient(serverKey: impostor, keys: client, endpoint: server.endpoint)
        try dealer.send(Data("hello".utf8), dontWait: true)
        // Bounded: libzmq retries the connection; none of them may deliver anything.
        try server.pump(ms: 800)
        #expect(server.received.isEmpty)
        #expect(server.zapRequests.isEmpty)  // the HELLO is not even readable: ZAP is never asked
        #expect(server.events.contains { $0.kind == .handshakeFailedProtocol })
        #expect(try receive(dealer, timeoutMs: 50) == nil)
    }

    @Test func aClientWhoseKeyTheZAPHandlerDoesNotKnowGetsNothingThrough() throws {
        let known = try CurveKeyPair.generate()
        let stranger = try CurveKeyPair.generate()
        let server = try CurveServer(admitting: [known.publicKey])
        let dealer = try curveClient(serverKey: server.keys.publicKey, keys: stranger, endpoint: server.endpoint)
        try dealer.monitor("inproc://client-monitor", events: .handshakeFailed)
        let clientMonitor = try ZMQSocket(context, .pair)
        try clientMonitor.setLinger(0)
        try clientMonitor.connect("inproc://client-monitor")
        try dealer.send(Data("let me in".utf8), dontWait: true)
        try server.pump(ms: 800)
        #expect(server.received.isEmpty)
        #expect(server.zapRequests.map(\.curveKey) == [stranger.publicKey])
        #expect(server.events.contains { $0.kind == .handshakeFailedAuth && $0.value == 400 })
        // The client is told: the refusal ends its connection for good (libzmq does not retry it).
        let event = try #require(try receive(clientMonitor, timeoutMs: 1_000).flatMap(ZMQMonitorEvent.init))
        #expect(event.kind == .handshakeFailedAuth)
        #expect(event.value == 400)
        #expect(try receive(dealer, timeoutMs: 50) == nil)
    }

    @Test func aPlainClientCannotTalkToACurveServer() throws {
        let server = try CurveServer(admitting: [])
        let dealer = try ZMQSocket(context, .dealer)
        try dealer.setLinger(0)
        try dealer.connect(server.endpoint)
        try dealer.send(Data("plain".utf8), dontWait: true)
        try server.pump(ms: 500)
        #expect(server.received.isEmpty)
        #expect(server.events.contains { $0.isHandshakeFailure })
    }

    @Test func zapRequestsAreReadFromTheirFrames() throws {
        let key = try CurveKeyPair.generate().publicKey
        let frames = ["1.0", "7", "nimbus", "127.0.0.1", "", "CURVE"].map { Data($0.utf8) } + [Data(key.bytes)]
        let request = try #require(ZAP.Request(frames: frames))
        #expect(request.curveKey == key)
        #expect(request.address == "127.0.0.1")
        #expect(request.reply(status: 400, text: "no").map { String(decoding: $0, as: UTF8.self) } == ["1.0", "7", "400", "no", "", ""])
        #expect(ZAP.Request(frames: Array(frames.prefix(5))) == nil)
        #expect(ZAP.Request(frames: Array(frames.prefix(6)))?.curveKey == nil)  // no key
    }
}
