import Synchronization

/// Counters every node keeps and reports in its health reply. Atomics: bumped from the I/O thread and
/// from handlers alike.
public final class NodeCounters: Sendable {
    public let requestsReceived = Atomic<Int>(0)
    public let repliesSent = Atomic<Int>(0)
    public let errorsSent = Atomic<Int>(0)
    /// Messages that were not valid Nimbus messages (garbage, wrong version, bad header).
    public let malformedReceived = Atomic<Int>(0)
    public let heartbeatsAnswered = Atomic<Int>(0)
    public let outboundRequests = Atomic<Int>(0)
    public let outboundRetries = Atomic<Int>(0)
    public let outboundTimeouts = Atomic<Int>(0)
    /// Connections to the node's CURVE socket refused during the handshake: a public key not in
    /// `keys/public/` (ZAP), another server key, or no CURVE at all.
    public let handshakesRejected = Atomic<Int>(0)

    public init() {}

    public func snapshot() -> [String: Int] {
        [
            "requestsReceived": requestsReceived.load(ordering: .relaxed),
            "repliesSent": repliesSent.load(ordering: .relaxed),
            "errorsSent": errorsSent.load(ordering: .relaxed),
            "malformedReceived": malformedReceived.load(ordering: .relaxed),
            "heartbeatsAnswered": heartbeatsAnswered.load(ordering: .relaxed),
            "outboundRequests": outboundRequests.load(ordering: .relaxed),
            "outboundRetries": outboundRetries.load(ordering: .relaxed),
            "outboundTimeouts": outboundTimeouts.load(ordering: .relaxed),
            "handshakesRejected": handshakesRejected.load(ordering: .relaxed),
        ]
    }
}

extension Atomic where Value == Int {
    func increment() { wrappingAdd(1, ordering: .relaxed) }
}
