import Synchronization

/// API Gateway's throttle: `rate` tokens a second up to `burst`; a request takes one or gets 429.
/// The time is passed in, so tests drive it.
struct TokenBucket: Sendable {
    let rate: Double
    let burst: Double
    private var tokens: Double
    private var last: ContinuousClock.Instant

    init(rate: Double, burst: Double, now: ContinuousClock.Instant) {
        self.rate = rate
        self.burst = burst
        tokens = burst
        last = now
    }

    mutating func take(now: ContinuousClock.Instant) -> Bool {
        let elapsed = now - last
        last = now
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        tokens = min(burst, tokens + seconds * rate)
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

/// The bucket shared by every request of the process.
final class Throttle: Sendable {
    private let bucket: Mutex<TokenBucket>
    init(_ bucket: TokenBucket) { self.bucket = Mutex(bucket) }
    func take() -> Bool { bucket.withLock { $0.take(now: .now) } }
}
