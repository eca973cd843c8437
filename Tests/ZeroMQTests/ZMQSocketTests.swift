import CZeroMQ
import Foundation
import Synchronization
import Testing
@testable import ZeroMQ

@Suite struct ZMQSocketTests {
    let context: ZMQContext

    init() throws { context = try ZMQContext() }

    /// Waits (bounded) for one message on `socket`.
    func receive(_ socket: ZMQSocket, timeoutMs: Int = 2000) throws -> ReceivedMessage? {
        var poller = ZMQPoller()
        poller.add(socket)
        guard try poller.poll(timeoutMs: timeoutMs) > 0 else { return nil }
        return try socket.receive(dontWait: true)
    }

    @Test func multipartOverInprocKeepsEveryFrameIncludingEmptyAndLargeOnes() throws {
        let a = try ZMQSocket(context, .pair)
        let b = try ZMQSocket(context, .pair)
        try a.bind("inproc://multipart")
        try b.connect("inproc://multipart")
        let big = Data((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let frames = [Data("first".utf8), Data(), big, Data("last".utf8)]
        #expect(try a.send(frames))
        let got = try #require(try receive(b))
        #expect(got.frames == frames)
        #expect(!got.truncated)
    }

    @Test func dealerAndRouterOverTCPLoopbackWithAWildcardPort() throws {
        let router = try ZMQSocket(context, .router)
        try router.setLinger(0)
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        #expect(!endpoint.hasSuffix(":*"))
        let dealer = try ZMQSocket(context, .dealer)
        try dealer.setLinger(0)
        try dealer.setRoutingID(Data("client-1".utf8))
        try dealer.connect(endpoint)
        try dealer.send(Data("hello".utf8), Data("world".utf8))
        let request = try #require(try receive(router))
        #expect(request.frames == [Data("client-1".utf8), Data("hello".utf8), Data("world".utf8)])
        try router.send([request.frames[0], Data("answer".utf8)])
        let answer = try #require(try receive(dealer))
        #expect(answer.frames == [Data("answer".utf8)])
    }

    @Test func nonBlockingReceiveOnAnEmptySocketReturnsNil() throws {
        let socket = try ZMQSocket(context, .pull)
        try socket.bind("inproc://empty")
        #expect(try socket.receive(dontWait: true) == nil)
    }

    @Test func pollTimesOutWithNothingReady() throws {
        let socket = try ZMQSocket(context, .pull)
        try socket.bind("inproc://quiet")
        var poller = ZMQPoller()
        poller.add(socket)
        let start = ContinuousClock.now
        #expect(try poller.poll(timeoutMs: 50) == 0)
        #expect(ContinuousClock.now - start >= .milliseconds(40))
        #expect(!poller.ready(0).contains(.readable))
    }

    @Test func framesBeyondTheLimitAreReadAndDroppedAndTheSocketStaysInStep() throws {
        let a = try ZMQSocket(context, .pair)
        let b = try ZMQSocket(context, .pair)
        try a.bind("inproc://limit")
        try b.connect("inproc://limit")
        try a.send((0..<20).map { Data("\($0)".utf8) })
        try a.send(Data("next".utf8))
        var poller = ZMQPoller()
        poller.add(b)
        _ = try poller.poll(timeoutMs: 2000)
        let first = try #require(try b.receive(dontWait: true, maxFrames: 4))
        #expect(first.frames.count == 4)
        #expect(first.truncated)
        let second = try #require(try b.receive(dontWait: true, maxFrames: 4))
        #expect(second.frames == [Data("next".utf8)])
    }

    @Test func anOversizeFrameDropsTheSendersConnectionInsteadOfReachingUs() throws {
        let router = try ZMQSocket(context, .router)
        try router.setLinger(0)
        try router.setMaxMessageSize(1024)
        try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(context, .dealer)
        try dealer.setLinger(0)
        try dealer.connect(try router.lastEndpoint)
        try dealer.send(Data(count: 4096))
        #expect(try receive(router, timeoutMs: 300) == nil)
        // A well-behaved peer is still served.
        let polite = try ZMQSocket(context, .dealer)
        try polite.setLinger(0)
        try polite.connect(try router.lastEndpoint)
        try polite.send(Data("small".utf8))
        let got = try #require(try receive(router))
        #expect(got.frames.last == Data("small".utf8))
    }

    @Test func errorsKeepErrnoAndNameTheCommonCases() throws {
        #expect(ZMQError(errno: EAGAIN) == .wouldBlock)
        #expect(ZMQError(errno: ETERM) == .terminated)
        #expect(ZMQError(errno: EINVAL) == .system(errno: EINVAL))
        #expect(ZMQError.wouldBlock.errno == EAGAIN)
        let socket = try ZMQSocket(context, .dealer)
        #expect(throws: ZMQError.self) { try socket.connect("nonsense://x") }
        do {
            try socket.bind("tcp://127.0.0.1:notaport")
            Issue.record("bind to a bad endpoint succeeded")
        } catch {
            #expect(error.errno != 0)
            #expect(!error.description.isEmpty)
        }
    }

    @Test func aBusyPortFailsToBindWithAddressInUse() throws {
        let first = try ZMQSocket(context, .router)
        try first.setLinger(0)
        try first.bind("tcp://127.0.0.1:*")
        let second = try ZMQSocket(context, .router)
        #expect(throws: ZMQError.system(errno: EADDRINUSE)) { try second.bind(try first.lastEndpoint) }
    }

    @Test func contextShutdownWakesABlockedReceiverWithTerminated() async throws {
        let local = try ZMQContext()
        let result = Mutex<ZMQError?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            do {
                let socket = try ZMQSocket(local, .pull)
                try socket.bind("inproc://blocked")
                _ = try socket.receive()
            } catch {
                result.withLock { $0 = error as? ZMQError }
            }
            done.signal()
        }
        thread.start()
        try await Task.sleep(for: .milliseconds(50))
        local.shutdown()
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(result.withLock { $0 } == .terminated)
    }

    @Test func socketOptionsAreSetAndReadBack() throws {
        let socket = try ZMQSocket(context, .dealer)
        try socket.setLinger(123)
        #expect(try socket.getInt32(ZMQ_LINGER) == 123)
        try socket.setSendHighWaterMark(77)
        try socket.setReceiveHighWaterMark(88)
        try socket.setSendTimeout(10)
        try socket.setReceiveTimeout(20)
        try socket.setReconnectInterval(100)
        try socket.setReconnectIntervalMax(1000)
        try socket.setHeartbeat(interval: 1000, timeout: 3000, ttl: 3000)
        try socket.setImmediate(true)
        socket.close()
        #expect(socket.isClosed)
        #expect(throws: ZMQError.self) { try socket.setLinger(0) }
    }
}

