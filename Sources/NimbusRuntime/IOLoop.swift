import Foundation
import DequeModule
import Logging
import NimbusProtocol
import Synchronization
import ZeroMQ

/// A request from a peer, handed from the I/O thread to the async handlers.
public struct InboundRequest: Sendable {
    /// ROUTER routing frames (identity, and the empty delimiter REQ peers add): the way back.
    let route: [Data]
    public let envelope: Envelope
    public var header: EnvelopeHeader { envelope.header }
    public var body: Data { envelope.body }
    /// Who sent it, once the runtime has verified its signature (nil for unauthenticated actions or
    /// when enforcement is off).
    public internal(set) var principal: String? = nil
}

/// The one thread of a node that touches ZeroMQ, in the manner of czmq's zactor + zloop: a dedicated
/// OS thread (never Swift's cooperative pool) runs a tickless `zmq_poll` over
///   - an inproc PAIR pipe that async code pokes when it queues a command (reply, request, stop),
///   - the node's ROUTER socket, where peers' requests and heartbeats arrive,
///   - one DEALER socket per peer endpoint this node sends requests to,
///   - with CurveZMQ (`security.curve`): the ZAP handler that admits clients of the ROUTER by their
///     public key, and the monitors that report failed handshakes (`CurveLinks.swift`).
/// Requests go to async code through an AsyncStream; replies come back as commands. Malformed input
/// and heartbeats are answered here, so garbage never reaches a handler and a busy handler never
/// delays a heartbeat.
final class IOLoop: @unchecked Sendable {
    struct Settings: Sendable {
        var bind: String?
        var limits: ProtocolLimits = .standard
        var stamp: NodeStamp
        /// Actions the node's handlers answer; anything else gets InvalidAction without a hop.
        var actions: Set<String>
        /// Exit when this process is no longer our parent (the supervisor died).
        var parentPID: Int32?
        var pid: Int32
        /// Requests being handled at once; beyond it a request is refused with ThrottlingException
        /// at once instead of queueing without bound (memory) or timing out (everyone's latency).
        var maxInFlight = 10_000
        /// CurveZMQ on the links that need it (`security.curve`); nil: every link plain.
        var curve: CurveSettings?
    }

    enum Command: Sendable {
        case send(route: [Data], frames: [Data])
        case request(OutboundRequest)
        case closeInbound
        case stop
    }

    // Handed over to the I/O thread once, and only touched there afterwards.
    final class OutboundRequest: @unchecked Sendable {
        let id: String
        let endpoint: String
        var frames: [Data]
        /// Signs the request again for a retry, so the retry carries a fresh timestamp and is not
        /// taken for a replay of the first attempt.
        let resign: (@Sendable () -> [Data]?)?
        let timeout: Duration
        var attemptsLeft: Int
        var deadline: ContinuousClock.Instant
        let continuation: CheckedContinuation<Envelope, Error>
        /// When its last attempt times out, reopen the peer's socket all the same (a readiness probe:
        /// after a cut link, the next probe goes over a fresh connection rather than one whose TCP
        /// retransmissions have backed off for seconds).
        var reconnectWhenSilent = false

        init(id: String, endpoint: String, frames: [Data], timeout: Duration, attempts: Int,
             continuation: CheckedContinuation<Envelope, Error>, resign: (@Sendable () -> [Data]?)? = nil) {
            self.resign = resign
            self.id = id
            self.endpoint = endpoint
            self.frames = frames
            self.timeout = timeout
            self.attemptsLeft = max(1, attempts)
            self.deadline = .now
            self.continuation = continuation
        }
    }

    private struct Deadline {
        var at: ContinuousClock.Instant
        var id: String
    }

    /// State shared with other threads; the wake socket is only touched under this lock.
    private struct Outbox {
        var commands: [Command] = []
        var wake: ZMQSocket
        var stopped = false
    }

    let settings: Settings
    let counters: NodeCounters
    let logger: Logger
    /// Requests for the handlers, in batches: everything one wake-up read goes over in one yield
    /// (a yield and its `next` per request were 7 % of an echo node's CPU).
    let inbound: AsyncStream<[InboundRequest]>
    private let inboundContinuation: AsyncStream<[InboundRequest]>.Continuation
    private let context: ZMQContext
    private let outbox: Mutex<Outbox>
    private let finished = Mutex<[CheckedContinuation<Void, Never>]?>([])
    /// Requests handed to handlers and not yet answered.
    private let inFlight = Atomic<Int>(0)

    // I/O-thread state from here on.
    private let wakeReceiver: ZMQSocket
    private var server: ZMQSocket?
    private var peers: [String: ZMQSocket] = [:]
    private var pending: [String: OutboundRequest] = [:]
    /// Outbound requests' deadlines, one queue per timeout: a deadline is "now + timeout", so each
    /// queue is in order as it is appended to, and answered requests leave from the front. (A heap
    /// that kept every request until its deadline cost ~6 % of an echo node's CPU.)
    private var deadlines: [(timeout: Duration, queue: Deque<Deadline>)] = []
    private var inboundOpen = true
    /// Requests read in this wake-up, handed over together at its end.
    private var arrived: [InboundRequest] = []
    private var running = true
    private var pollerDirty = true
    private var parentGoneAt: ContinuousClock.Instant?
    private var nextParentCheck = ContinuousClock.now
    /// What the poller's items are, in its order (rebuilt with it).
    private var pollTargets: [PollTarget] = []
    private let curveState: CurveState?
    /// The heartbeat answer, rebuilt when the node's readiness changes (`setReadiness`).
    private let heartbeatBody: Mutex<Data>

    /// Binds the node's socket (when it has one) on the calling thread, so a taken port fails here.
    init(settings: Settings, counters: NodeCounters, logger: Logger) throws {
        self.settings = settings
        self.counters = counters
        self.logger = logger
        context = try ZMQContext(ioThreads: 1)
        let pipe = "inproc://nimbus-io-\(UUID().uuidString)"
        wakeReceiver = try ZMQSocket(context, .pair)
        try wakeReceiver.bind(pipe)
        let wake = try ZMQSocket(context, .pair)
        try wake.connect(pipe)
        outbox = Mutex(Outbox(wake: wake))
        (inbound, inboundContinuation) = AsyncStream.makeStream(of: [InboundRequest].self, bufferingPolicy: .unbounded)
        heartbeatBody = Mutex(Self.heartbeatBody(settings, ready: nil, notReady: nil))
        curveState = settings.curve.map { CurveState($0) }
        if let curveState, curveState.settings.keysAtStart, curveState.settings.cluster.curveInUse {
            _ = try curveState.keyPair()
        }
        if let bind = settings.bind {
            let socket = try ZMQSocket(context, .router)
            try socket.setLinger(500)
            try socket.setMaxMessageSize(Int64(settings.limits.maxFrameBytes))
            try socket.setSendHighWaterMark(100_000)
            try socket.setReceiveHighWaterMark(100_000)
            if let curveState, curveState.settings.serverApplies(bind: bind) {
                try curveState.makeServer(socket, context: context)
                curveServerOn = true
            }
            try socket.bind(bind)
            server = socket
        }
    }

    /// Whether the node's own socket speaks CURVE (set in `init` only: any thread may read it).
    private(set) var curveServerOn = false

    /// What heartbeat answers say from now on: whether the node can serve, and why not.
    func setReadiness(ready: Bool, notReady: String?) {
        let body = Self.heartbeatBody(settings, ready: ready, notReady: notReady)
        heartbeatBody.withLock { $0 = body }
    }

    private static func heartbeatBody(_ settings: Settings, ready: Bool?, notReady: String?) -> Data {
        var body = "{\"name\":"
        JSONText.appendString(settings.stamp.name, to: &body)
        body += ",\"incarnation\":"
        JSONText.appendString(settings.stamp.incarnation, to: &body)
        body += ",\"pid\":\(settings.pid),\"status\":\"ok\""
        if let ready { body += ",\"ready\":\(ready)" }
        if let notReady {
            body += ",\"notReady\":"
            JSONText.appendString(notReady, to: &body)
        }
        return Data((body + "}").utf8)
    }

    /// The endpoint actually bound (a `:*` port resolved).
    var boundEndpoint: String? { try? server?.lastEndpoint }

    func start() {
        let thread = Thread { [self] in loop() }
        thread.name = "nimbus-io"
        thread.start()
    }

    // MARK: Called from any thread

    @discardableResult
    func enqueue(_ command: Command) -> Bool {
        outbox.withLock { box in
            if box.stopped { return false }
            let wasEmpty = box.commands.isEmpty
            box.commands.append(command)
            // One poke per batch: the I/O thread takes every queued command when it wakes.
            if wasEmpty { _ = try? box.wake.send([Data()], dontWait: true) }
            return true
        }
    }

    /// Sends `envelope` to `endpoint` and waits for the answer with the same id, Lazy Pirate style:
    /// after `timeout` without one, the peer's socket is discarded and reopened and the request sent
    /// again, `attempts` times in all; then it fails with RequestTimeout.
    func request(_ envelope: Envelope, to endpoint: String, timeout: Duration, attempts: Int,
                 resign: (@Sendable () -> [Data]?)? = nil, reconnectWhenSilent: Bool = false) async throws -> Envelope {
        let frames = FrameCodec.encode(envelope)
        counters.outboundRequests.increment()
        return try await withCheckedThrowingContinuation { continuation in
            let request = OutboundRequest(id: envelope.header.id, endpoint: endpoint, frames: frames,
                                          timeout: timeout, attempts: attempts, continuation: continuation, resign: resign)
            request.reconnectWhenSilent = reconnectWhenSilent
            if !enqueue(.request(request)) {
                continuation.resume(throwing: WireError(.serviceUnavailable, "\(settings.stamp.name) is shutting down"))
            }
        }
    }

    /// Answers a request handed out through `inbound` (exactly once per request).
    func send(route: [Data], _ envelope: Envelope) {
        inFlight.wrappingSubtract(1, ordering: .relaxed)
        if envelope.header.kind == .error { counters.errorsSent.increment() } else { counters.repliesSent.increment() }
        enqueue(.send(route: route, frames: FrameCodec.encode(envelope)))
    }

    /// Stops the loop, fails outstanding requests, closes every socket, and returns once the thread is done.
    func stop() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let alreadyFinished = finished.withLock { waiters -> Bool in
                guard waiters != nil else { return true }
                waiters!.append(done)
                return false
            }
            if alreadyFinished { done.resume(); return }
            // When the loop is already stopping, enqueue refuses and the waiter is resumed by shutdown().
            enqueue(.stop)
        }
    }

    // MARK: The loop (I/O thread only)

    private enum PollTarget {
        case wake, server, zap, serverMonitor
        case peer(String)
        case peerMonitor(String)
    }

    private func loop() {
        var poller = ZMQPoller()
        while running {
            if pollerDirty {
                poller = ZMQPoller()
                pollTargets = [.wake]
                poller.add(wakeReceiver)
                if let server {
                    poller.add(server)
                    pollTargets.append(.server)
                }
                if let curveState, let zap = curveState.zap, let monitor = curveState.serverMonitor {
                    poller.add(zap)
                    poller.add(monitor)
                    pollTargets += [.zap, .serverMonitor]
                }
                for (endpoint, socket) in peers {
                    poller.add(socket)
                    pollTargets.append(.peer(endpoint))
                }
                if let curveState {
                    for (endpoint, monitor) in curveState.peerMonitors {
                        poller.add(monitor)
                        pollTargets.append(.peerMonitor(endpoint))
                    }
                }
                pollerDirty = false
            }
            do {
                _ = try poller.poll(timeoutMs: nextTimeoutMilliseconds())
            } catch .terminated {
                break
            } catch {
                logger.error("zmq_poll failed: \(error)")
                continue
            }
            for (index, target) in pollTargets.enumerated() where poller.ready(index).contains(.readable) {
                switch target {
                case .wake: runCommands()
                case .server: readServer()
                case .peer(let endpoint): readPeer(endpoint)
                case .zap: serveZAP()
                case .serverMonitor: readServerMonitor()
                case .peerMonitor(let endpoint): readPeerMonitor(endpoint)
                }
            }
            expireDeadlines()
            watchParent()
        }
        shutdown()
    }

    private func nextTimeoutMilliseconds() -> Int {
        var next: ContinuousClock.Instant?
        for entry in deadlines { if let at = entry.queue.first?.at, next.map({ at < $0 }) ?? true { next = at } }
        if settings.parentPID != nil { next = min(next ?? nextParentCheck, nextParentCheck) }
        guard let next else { return -1 }
        let wait = next - .now
        if wait <= .zero { return 0 }
        let (seconds, atto) = wait.components
        return Int(seconds) * 1000 + Int(atto / 1_000_000_000_000_000) + 1
    }

    private func runCommands() {
        while (try? wakeReceiver.receive(dontWait: true)) ?? nil != nil {}
        let commands = outbox.withLock { box -> [Command] in
            let taken = box.commands
            box.commands.removeAll(keepingCapacity: true)
            return taken
        }
        for command in commands {
            switch command {
            case .send(let route, let frames):
                sendOnServer(route + frames)
            case .request(let request):
                startRequest(request)
            case .closeInbound:
                if inboundOpen {
                    inboundOpen = false
                    inboundContinuation.finish()
                }
            case .stop:
                running = false
            }
        }
    }

    private func sendOnServer(_ frames: [Data]) {
        guard let server else { return }
        do {
            // A ROUTER drops what it cannot route (peer gone, or its queue full); a peer that wants
            // the answer asks again.
            try server.send(frames, dontWait: true)
        } catch {
            logger.warning("reply dropped: \(error)")
        }
    }

    private func readServer() {
        guard let server else { return }
        defer { handOver() }
        // A bounded batch per wake-up keeps the pipe and the peer sockets served too.
        for _ in 0..<512 {
            let message: ReceivedMessage?
            do {
                message = try server.receive(dontWait: true, maxFrames: settings.limits.maxFrames)
            } catch {
                logger.warning("receive failed: \(error)")
                return
            }
            guard let message else { return }
            handleInbound(message)
        }
    }

    private func handOver() {
        guard !arrived.isEmpty else { return }
        inboundContinuation.yield(arrived)
        arrived = []
    }

    private func handleInbound(_ message: ReceivedMessage) {
        let frames = message.frames
        guard !frames.isEmpty else { return }
        // DEALER peers send [identity, tag, header, body]; REQ peers add an empty delimiter.
        let routeEnd = frames.count > 1 && frames[1].isEmpty ? 2 : 1
        let route = Array(frames[..<routeEnd])
        if message.truncated {
            return reject(route, FrameDecodeFailure(
                error: WireError(.malformedFrame, "message has more than \(settings.limits.maxFrames) frames"),
                replyID: "", dropSilently: false))
        }
        switch FrameCodec.decode(frames[routeEnd...], limits: settings.limits) {
        case .failure(let failure):
            reject(route, failure)
        case .success(let envelope):
            switch envelope.header.kind {
            case .heartbeat:
                counters.heartbeatsAnswered.increment()
                let answer = Envelope(header: EnvelopeHeader(kind: .heartbeat, id: envelope.header.id, sender: settings.stamp),
                                      body: heartbeatBody.withLock { $0 })
                sendOnServer(route + FrameCodec.encode(answer))
            case .request:
                counters.requestsReceived.increment()
                let action = envelope.header.action ?? ""
                if action != NimbusAction.health && !settings.actions.contains(action) {
                    answerError(route, id: envelope.header.id, WireError(
                        .invalidAction, "\(action) is not an action of \(settings.stamp.name)"))
                } else if !inboundOpen {
                    answerError(route, id: envelope.header.id, WireError(
                        .serviceUnavailable, "\(settings.stamp.name) is shutting down"))
                } else if inFlight.load(ordering: .relaxed) >= settings.maxInFlight {
                    answerError(route, id: envelope.header.id, WireError(
                        .throttling, "\(settings.stamp.name) has \(settings.maxInFlight) requests in progress; retry later"))
                } else {
                    inFlight.wrappingAdd(1, ordering: .relaxed)
                    arrived.append(InboundRequest(route: route, envelope: envelope))
                }
            case .reply, .error:
                counters.malformedReceived.increment()
                logger.notice("dropped a \(envelope.header.kind.rawValue) sent to a server socket (id \(envelope.header.id))")
            }
        }
    }

    private func reject(_ route: [Data], _ failure: FrameDecodeFailure) {
        counters.malformedReceived.increment()
        logger.notice("rejected a message: \(failure.error)")
        if !failure.dropSilently { answerError(route, id: failure.replyID, failure.error) }
    }

    private func answerError(_ route: [Data], id: String, _ error: WireError) {
        counters.errorsSent.increment()
        sendOnServer(route + FrameCodec.encode(.error(to: id, sender: settings.stamp, error)))
    }

    // MARK: Outbound requests

    private func peerSocket(_ endpoint: String) throws -> ZMQSocket {
        if let socket = peers[endpoint] { return socket }
        let socket = try ZMQSocket(context, .dealer)
        try socket.setLinger(0)
        try socket.setMaxMessageSize(Int64(settings.limits.maxFrameBytes))
        try socket.setSendHighWaterMark(100_000)
        try socket.setReceiveHighWaterMark(100_000)
        try socket.setReconnectInterval(100)
        try socket.setReconnectIntervalMax(2000)
        // CURVE: the server's key is read afresh for every new socket, so a reopened one (Lazy
        // Pirate) picks up a key that changed.
        if let curveState, try curveState.makeClient(socket, of: endpoint, context: context) {
            pollerDirty = true
        }
        try socket.connect(endpoint)
        peers[endpoint] = socket
        pollerDirty = true
        return socket
    }

    /// Closes the socket to `endpoint` (and its monitor); the next request opens a new one.
    private func dropPeer(_ endpoint: String) {
        peers.removeValue(forKey: endpoint)?.close()
        curveState?.peerMonitors.removeValue(forKey: endpoint)?.close()
        pollerDirty = true
    }

    private func startRequest(_ request: OutboundRequest) {
        if pending[request.id] != nil {
            request.continuation.resume(throwing: WireError(.invalidParameterValue, "request id \(request.id) is already outstanding"))
            return
        }
        if peers[request.endpoint] == nil, curveState != nil {
            // A link that needs a key nobody has written is an error now, naming the file, not a
            // request that times out. (Other failures to open the socket go as they always went.)
            do {
                _ = try peerSocket(request.endpoint)
            } catch let error as CurveKeyError {
                request.continuation.resume(throwing: WireError(
                    .serviceUnavailable, "\(settings.stamp.name) cannot reach \(request.endpoint): \(error)"))
                return
            } catch {}
        }
        pending[request.id] = request
        request.deadline = .now + request.timeout
        addDeadline(request)
        transmit(request)
    }

    private func transmit(_ request: OutboundRequest) {
        do {
            // A full queue leaves the request pending: its deadline retries or fails it.
            try peerSocket(request.endpoint).send(request.frames, dontWait: true)
        } catch {
            logger.warning("send to \(request.endpoint) failed: \(error)")
        }
    }

    private func readPeer(_ endpoint: String) {
        guard let socket = peers[endpoint] else { return }
        for _ in 0..<512 {
            guard let message = (try? socket.receive(dontWait: true, maxFrames: settings.limits.maxFrames)) ?? nil else { return }
            guard !message.truncated, case .success(let envelope) = FrameCodec.decode(message.frames[...], limits: settings.limits) else {
                counters.malformedReceived.increment()
                logger.notice("dropped an unreadable answer from \(endpoint)")
                continue
            }
            // An answer to a request already answered or given up on (a retry's twin) is dropped.
            guard envelope.header.kind != .request, let request = pending.removeValue(forKey: envelope.header.id) else { continue }
            request.continuation.resume(returning: envelope)
        }
    }

    // MARK: CURVE (the I/O thread serves ZAP and the sockets' monitors too)

    private func serveZAP() { curveState?.serveZAP(logger: logger) }

    private func readServerMonitor() { curveState?.readServerMonitor(counters: counters, logger: logger) }

    /// A handshake that failed on a link of ours: that socket is closed (libzmq gives up on one the
    /// server refused, and retries one with a stale server key forever), and the requests waiting on
    /// it are retried on a new socket at their deadline, Lazy Pirate's way, or fail naming the cause.
    private func readPeerMonitor(_ endpoint: String) {
        guard let curveState else { return }
        if curveState.readPeerMonitor(endpoint, logger: logger) { dropPeer(endpoint) }
    }

    private func addDeadline(_ request: OutboundRequest) {
        let deadline = Deadline(at: request.deadline, id: request.id)
        if let index = deadlines.firstIndex(where: { $0.timeout == request.timeout }) {
            deadlines[index].queue.append(deadline)
        } else {
            deadlines.append((request.timeout, [deadline]))
        }
    }

    private func expireDeadlines() {
        let now = ContinuousClock.now
        var expired: [OutboundRequest] = []
        var index = 0
        while index < deadlines.count {
            // Drop answered requests from the front as well as expired ones.
            while let first = deadlines[index].queue.first {
                let request = pending[first.id].flatMap { $0.deadline == first.at ? $0 : nil }
                if request != nil && first.at > now { break }
                deadlines[index].queue.removeFirst()
                if let request { expired.append(request) }
            }
            if deadlines[index].queue.isEmpty { deadlines.remove(at: index) } else { index += 1 }
        }
        for request in expired {
            if request.attemptsLeft > 1 {
                request.attemptsLeft -= 1
                counters.outboundRetries.increment()
                reconnect(request.endpoint)
                request.deadline = now + request.timeout
                addDeadline(request)
            } else {
                pending[request.id] = nil
                counters.outboundTimeouts.increment()
                let why = curveState?.handshakeTrouble[request.endpoint].map { " (\($0))" } ?? ""
                request.continuation.resume(throwing: WireError(
                    .requestTimeout, "no answer from \(request.endpoint) to \(request.id) within \(request.timeout)\(why)"))
                if request.reconnectWhenSilent { reconnect(request.endpoint) }
            }
        }
    }

    /// Lazy Pirate: a silent peer's socket may hold a dead connection, so drop it, open a new one,
    /// and resend everything still waiting on that peer.
    private func reconnect(_ endpoint: String) {
        dropPeer(endpoint)
        for request in pending.values where request.endpoint == endpoint {
            if let fresh = request.resign?() { request.frames = fresh }
            transmit(request)
        }
    }

    // MARK: Parent watch and shutdown

    /// The supervisor starts nodes with its pid; when it dies (even by SIGKILL) we are reparented,
    /// and shut down rather than linger as orphans.
    private func watchParent() {
        guard let parent = settings.parentPID else { return }
        let now = ContinuousClock.now
        guard now >= nextParentCheck else { return }
        nextParentCheck = now + .milliseconds(250)
        if let gone = parentGoneAt {
            if now - gone > .seconds(3) {
                logger.critical("graceful shutdown took over 3 s after the supervisor died: exiting")
                _exit(1)
            }
            return
        }
        if getppid() != parent {
            parentGoneAt = now
            logger.warning("supervisor (pid \(parent)) is gone: shutting down")
            kill(getpid(), SIGTERM)
        }
    }

    private func shutdown() {
        outbox.withLock { box in
            box.stopped = true
            box.wake.close()
        }
        let unanswered = Array(pending.values)
        pending.removeAll()
        for request in unanswered {
            request.continuation.resume(throwing: WireError(.serviceUnavailable, "\(settings.stamp.name) is shutting down"))
        }
        if inboundOpen {
            inboundOpen = false
            inboundContinuation.finish()
        }
        for socket in peers.values { socket.close() }
        peers.removeAll()
        server?.close()
        server = nil
        curveState?.close()
        wakeReceiver.close()
        context.shutdown()
        let waiters = finished.withLock { waiters -> [CheckedContinuation<Void, Never>] in
            let all = waiters ?? []
            waiters = nil
            return all
        }
        for waiter in waiters { waiter.resume() }
    }
}
