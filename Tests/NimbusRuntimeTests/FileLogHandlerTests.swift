import Foundation
import Logging
import Testing
@testable import NimbusRuntime

@Suite struct FileLogHandlerTests {
    @Test func linesAreLogfmtWithQuotingAndEscapes() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-log-\(UUID().uuidString)/node.log")
        let handler = FileLogHandler(node: "queue", file: file)
        let logger = Logger(label: "t") { _ in handler }
        logger.info("plain")
        logger.warning("two words \"quoted\"\nnext", metadata: ["pid": "42", "endpoint": "tcp://127.0.0.1:7102", "note": "a=b"])
        let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count == 2)
        #expect(lines[0].range(of: #"^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=info node=queue msg=plain$"#, options: .regularExpression) != nil, "\(lines[0])")
        #expect(lines[1].hasSuffix(#"level=warning node=queue msg="two words \"quoted\"\nnext" endpoint=tcp://127.0.0.1:7102 note="a=b" pid=42"#), "\(lines[1])")
        try? FileManager.default.removeItem(at: file.deletingLastPathComponent())
    }

    @Test func pastItsSizeTheLogIsRotatedKeepingTheFileBefore() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-log-\(UUID().uuidString)")
        let file = folder.appendingPathComponent("gateway.log")
        defer { try? FileManager.default.removeItem(at: folder) }
        let handler = FileLogHandler(node: "gateway", file: file, maxBytes: 1_000)
        let logger = Logger(label: "t") { _ in handler }
        for i in 0..<50 { logger.info("request-\(i)") }
        let current = try String(contentsOf: file, encoding: .utf8).split(separator: "\n")
        let before = try String(contentsOf: folder.appendingPathComponent("gateway.log.1"), encoding: .utf8).split(separator: "\n")
        // Each file holds what was written between two rotations (a line or so past 1,000 bytes);
        // together they are the latest lines, in order, ending with the last.
        let size = try #require(try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? Int)
        #expect(size < 1_000)
        #expect(before.count >= 10)
        let lines = before + current
        let numbers = lines.compactMap { $0.split(separator: "-").last.flatMap { Int($0) } }
        #expect(numbers.count == lines.count)
        #expect(numbers == Array((50 - numbers.count)..<50))
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("gateway.log.2").path))
    }

    @Test func withoutALimitTheLogIsNeverRotated() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("nimbus-log-\(UUID().uuidString)")
        let file = folder.appendingPathComponent("queue.log")
        defer { try? FileManager.default.removeItem(at: folder) }
        let logger = Logger(label: "t") { _ in FileLogHandler(node: "queue", file: file) }
        for i in 0..<50 { logger.info("line \(i)") }
        #expect(try String(contentsOf: file, encoding: .utf8).split(separator: "\n").count == 50)
        #expect(!FileManager.default.fileExists(atPath: file.path + ".1"))
    }
}
