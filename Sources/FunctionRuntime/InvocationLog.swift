import Foundation
import Logging
import Synchronization

/// The log of one invocation, as Lambda's log stream shows it (START, the function's own lines, END,
/// REPORT): what Invoke's `LogType: Tail` returns the end of. Every line also goes to the worker's log.
final class InvocationLog: Sendable {
    let requestID: String
    private let lines = Mutex<[String]>([])
    private let upstream: Logger

    init(requestID: String, upstream: Logger) {
        self.requestID = requestID
        self.upstream = upstream
    }

    /// A logger for the function: its lines go to the worker's log and into this one.
    var functionLogger: Logger {
        var logger = upstream
        logger.handler = CapturingLogHandler(upstream: upstream.handler, log: self)
        return logger
    }

    /// A line of Lambda's own (START, END, REPORT): written as it is, at info in the worker's log.
    func platform(_ line: String) {
        upstream.info("\(line)")
        append(line)
    }

    func append(_ line: String) { lines.withLock { $0.append(line) } }

    var text: String { lines.withLock { $0.joined(separator: "\n") } + "\n" }

    /// Base64 of the log's last 4 KB (Invoke's X-Amz-Log-Result).
    var tailBase64: String { Data(Data(text.utf8).suffix(4096)).base64EncodedString() }

    /// A function's line as Lambda's runtimes write it: time, request id, level, message.
    func functionLine(_ event: LogEvent) -> String {
        let time = Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
        return "\(time)\t\(requestID)\t\(event.level.rawValue.uppercased())\t\(event.message)"
    }
}

/// Writes to the worker's own handler and copies the line into the invocation's log.
struct CapturingLogHandler: LogHandler {
    var upstream: any LogHandler
    let log: InvocationLog

    func log(event: LogEvent) {
        upstream.log(event: event)
        log.append(log.functionLine(event))
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { upstream[metadataKey: key] }
        set { upstream[metadataKey: key] = newValue }
    }

    var metadata: Logger.Metadata {
        get { upstream.metadata }
        set { upstream.metadata = newValue }
    }

    var logLevel: Logger.Level {
        get { upstream.logLevel }
        set { upstream.logLevel = newValue }
    }
}
