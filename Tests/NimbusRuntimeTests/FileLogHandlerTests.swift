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
}
