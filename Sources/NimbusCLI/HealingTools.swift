import ArgumentParser
import Foundation
import NimbusRuntime

// What `load`, `chaos` and `verify` share (issue 21, "a cluster that always heals"): durations on
// the command line, a seeded random generator, timestamps, and the load record files that `load`
// writes and `verify` judges.

/// A length of time on the command line: `60` (seconds), `60s`, `500ms`, `5m`, `1h`; decimals allowed.
struct TimeSpan: ExpressibleByArgument, CustomStringConvertible, Sendable {
    let duration: Duration
    let description: String

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces).lowercased()
        // Longest unit first: "ms" must not be read as "m".
        let units: [(suffix: String, seconds: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        let (number, scale) = units.first { text.hasSuffix($0.suffix) }
            .map { (String(text.dropLast($0.suffix.count)), $0.seconds) } ?? (text, 1)
        guard let value = Double(number), value.isFinite, value > 0 else { return nil }
        duration = .milliseconds(Int64((value * scale * 1000).rounded()))
        description = argument
    }

    init(seconds: Int) {
        duration = .seconds(seconds)
        description = "\(seconds)s"
    }

    var seconds: Double { Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny generator whose sequence is fixed by its seed, so
/// a chaos run can be replayed; the system generator cannot be seeded.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// An index below `count` (> 0). Written out rather than `Int.random(in:using:)`, whose
    /// algorithm the standard library may change, which would change what a seed replays.
    mutating func index(below count: Int) -> Int { Int(next() % UInt64(count)) }
}

/// Now, as `2026-07-01T12:00:01.234Z`.
func timestamp(_ date: Date = Date()) -> String {
    date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
}

/// One posted order's outcome, a line of a load record file.
struct LoadRecord: Codable, Sendable {
    /// `<run>-<n>`: the order's `loadID` and its Idempotency-Key.
    var id: String
    /// The JSON document posted.
    var body: String
    /// When the first attempt was sent.
    var sentAt: String
    /// The last answer's HTTP status; nil when no answer came (connection error, timeout).
    var status: Int?
    /// The gateway answered 200: the order is durably in the queue.
    var acknowledged = false
    var attempts = 0
    /// What went wrong on the last attempt.
    var error: String?
    /// From the first attempt's send to the last answer (or give-up), retries included.
    var milliseconds: Double?

    init(id: String, body: String, sentAt: String) {
        self.id = id
        self.body = body
        self.sentAt = sentAt
    }

    /// The run an id belongs to: all before its last "-".
    static func run(of id: String) -> String? {
        guard let dash = id.lastIndex(of: "-"), dash != id.startIndex else { return nil }
        return String(id[..<dash])
    }

    private enum CodingKeys: String, CodingKey { case id, body, sentAt, status, acknowledged, attempts, error }

    /// Every key on every line, null included, so a record reads the same whatever happened.
    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(body, forKey: .body)
        try c.encode(sentAt, forKey: .sentAt)
        try c.encode(status, forKey: .status)
        try c.encode(acknowledged, forKey: .acknowledged)
        try c.encode(attempts, forKey: .attempts)
        try c.encode(error, forKey: .error)
    }
}

enum LoadRecords {
    /// `<dataDirectory>/load`, where `load` writes and `verify` reads by default.
    static func directory(_ located: LocatedConfig) -> URL { located.dataDirectory.appendingPathComponent("load") }

    /// One record as a JSON line (keys sorted, slashes unescaped, ending in a newline).
    static func line(_ record: LoadRecord) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(record) + Data("\n".utf8)
    }

    /// Every record in `path`: a directory's `*.jsonl` files, or one file.
    static func read(_ path: URL) throws -> [LoadRecord] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path.path, isDirectory: &isDirectory) else {
            throw CLIError("no load records at \(path.path) (run nimbus load first)")
        }
        let files = isDirectory.boolValue
            ? try FileManager.default.contentsOfDirectory(atPath: path.path).filter { $0.hasSuffix(".jsonl") }.sorted()
                .map { path.appendingPathComponent($0) }
            : [path]
        var records: [LoadRecord] = []
        let decoder = JSONDecoder()
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.allSatisfy(\.isWhitespace) {
                do {
                    records.append(try decoder.decode(LoadRecord.self, from: Data(line.utf8)))
                } catch {
                    throw CLIError("\(file.path):\(number + 1) is not a load record: \(line.prefix(80))")
                }
            }
        }
        return records
    }
}
