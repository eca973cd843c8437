import ArgumentParser
import Foundation
import NimbusRuntime
import Synchronization

/// The subscriber side of the end-to-end throughput phase (`Scripts/lib/e2e_bench.py`): long-polls
/// an SNS subscriber queue with a few pollers, deletes what it gets, and after every batch that
/// carried new orders prints "<distinct orders seen> <unix time>" on a line of its own. An order is
/// known by the `seq` of its POSTed body, found in the notification's bytes (three JSON strings deep)
/// without parsing them: a Python receiver that parsed each notification three times took 14–19 % of
/// a core at ~1,400 orders/s, on the two cores the pipeline it measures runs on. Runs until killed.
struct DrainBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "drain")

    @Option(help: "The queue broker's endpoint, e.g. tcp://127.0.0.1:7102") var queue: String
    @Option(help: "The subscriber queue's URL.") var subscriber: String
    @Option(help: "Credentials file to sign the calls with (a cluster's root.json).") var credentials: String?
    @Option(help: "Only orders with at least this seq count.") var fromSeq = 100_000
    @Option(help: "Concurrent long polls.") var pollers = 4

    struct Received: Decodable {
        struct Message: Decodable { var Body: String; var ReceiptHandle: String }
        var Messages: [Message]?
    }

    func run() async throws {
        let client = try NimbusClient.standalone(
            name: "drain", credentials: credentials.map { CredentialSource(file: URL(fileURLWithPath: $0)) })
        let seen = SeenOrders()
        let receive = try JSONEncoder().encode(ReceiveRequest(QueueUrl: subscriber))
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<pollers {
                group.addTask {
                    while true {
                        let answer = try await client.request("sqs:ReceiveMessage", to: queue, body: receive, timeout: .seconds(5), attempts: 2)
                        let messages = try JSONDecoder().decode(Received.self, from: answer).Messages ?? []
                        guard !messages.isEmpty else { continue }
                        let seqs = messages.compactMap { Self.sequence(in: Array($0.Body.utf8)) }.filter { $0 >= fromSeq }
                        seen.add(seqs)
                        let delete = DeleteBatch(QueueUrl: subscriber, Entries: messages.enumerated().map {
                            DeleteBatch.Entry(Id: "m\($0.offset)", ReceiptHandle: $0.element.ReceiptHandle)
                        })
                        _ = try await client.request("sqs:DeleteMessageBatch", to: queue, body: try JSONEncoder().encode(delete),
                                                     timeout: .seconds(5), attempts: 2)
                    }
                }
            }
            try await group.next()
        }
    }

    struct ReceiveRequest: Encodable {
        var QueueUrl: String
        var MaxNumberOfMessages = 10
        var WaitTimeSeconds = 1
    }

    struct DeleteBatch: Encodable {
        struct Entry: Encodable { var Id: String; var ReceiptHandle: String }
        var QueueUrl: String
        var Entries: [Entry]
    }

    /// The number after the first "seq" in `body`, past the quotes, backslashes, colon and spaces
    /// that the nesting of JSON strings puts between them.
    static func sequence(in body: [UInt8]) -> Int? {
        let key = Array("seq".utf8)
        guard body.count > key.count else { return nil }
        var i = 0
        while i + key.count <= body.count {
            if body[i] == key[0], body[i..<(i + key.count)].elementsEqual(key) {
                var j = i + key.count
                while j < body.count, j - i < 16, [UInt8(ascii: "\\"), UInt8(ascii: "\""), UInt8(ascii: ":"), UInt8(ascii: " ")].contains(body[j]) { j += 1 }
                var value = 0
                var digits = 0
                while j < body.count, body[j] >= 0x30, body[j] <= 0x39, digits < 18 {
                    value = value * 10 + Int(body[j] - 0x30)
                    j += 1
                    digits += 1
                }
                if digits > 0 { return value }
            }
            i += 1
        }
        return nil
    }
}

/// Distinct orders seen so far; prints the count and the time whenever it grows.
final class SeenOrders: Sendable {
    private let state = Mutex<Set<Int>>([])

    func add(_ seqs: [Int]) {
        state.withLock { seen in
            let before = seen.count
            seen.formUnion(seqs)
            // Written under the lock, so the counts come out in order.
            if seen.count > before {
                FileHandle.standardOutput.write(Data(String(format: "%d %.6f\n", seen.count, Date().timeIntervalSince1970).utf8))
            }
        }
    }
}
