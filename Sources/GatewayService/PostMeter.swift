import Synchronization

/// The gateway's own POSTs as the console sees them: how many were accepted (answered 200 after the
/// queue's durable ack) and how long each took, in a histogram of 4 buckets per power of two of
/// microseconds (each bucket ±12 % around its middle). One uncontended lock per accepted POST.
public final class PostMeter: Sendable {
    struct Counts: Sendable, Equatable {
        var accepted = 0
        var buckets = [Int](repeating: 0, count: PostMeter.bucketCount)
    }

    static let bucketCount = 168
    private let counts = Mutex(Counts())

    public init() {}

    /// One accepted POST that began at `start`.
    public func record(since start: ContinuousClock.Instant) {
        let elapsed = (ContinuousClock.now - start).components
        let micros = Int(elapsed.seconds) * 1_000_000 + Int(elapsed.attoseconds / 1_000_000_000_000)
        let bucket = Self.bucket(micros)
        counts.withLock {
            $0.accepted += 1
            $0.buckets[bucket] += 1
        }
    }

    func snapshot() -> Counts { counts.withLock { $0 } }

    /// The bucket of a duration: exact below 4 µs, then 4 per power of two.
    static func bucket(_ micros: Int) -> Int {
        guard micros >= 4 else { return max(0, micros) }
        let exponent = Int.bitWidth - 1 - micros.leadingZeroBitCount
        let mantissa = (micros >> (exponent - 2)) & 3
        return min(bucketCount - 1, 4 * (exponent - 1) + mantissa)
    }

    /// The middle of a bucket, in microseconds (geometric: the error is the same either way).
    static func middle(ofBucket index: Int) -> Double {
        guard index >= 4 else { return Double(index) }
        let exponent = index / 4 + 1, mantissa = index % 4
        let lower = Double((4 + mantissa) << (exponent - 2)), upper = Double((5 + mantissa) << (exponent - 2))
        return (lower * upper).squareRoot()
    }

    /// The median, in microseconds, of the POSTs between two snapshots; nil when there were none.
    static func median(from before: Counts, to after: Counts) -> Double? {
        let delta = zip(after.buckets, before.buckets).map { max(0, $0 - $1) }
        let total = delta.reduce(0, +)
        guard total > 0 else { return nil }
        var seen = 0
        for (index, count) in delta.enumerated() {
            seen += count
            if 2 * seen >= total { return middle(ofBucket: index) }
        }
        return nil
    }
}
