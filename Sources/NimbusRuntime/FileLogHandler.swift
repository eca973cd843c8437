import Foundation
import Logging
import Synchronization

/// swift-log handler writing logfmt lines (`ts=… level=… node=… msg="…" key=value`) to one file per
/// process, appending, so that a restarted process continues the same file.
public struct FileLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    private let node: String
    private let sink: Sink

    final class Sink: Sendable {
        let fd: Int32
        private let lock = Mutex(())
        init(fd: Int32) { self.fd = fd }
        func write(_ line: String) {
            lock.withLock { _ in
                var bytes = Array(line.utf8)
                var offset = 0
                while offset < bytes.count {
                    let n = bytes.withUnsafeMutableBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
                    if n < 0 { if errno == EINTR { continue }; return }
                    offset += n
                }
            }
        }
    }

    /// Appends to `file`, creating it and its folder; standard error when that fails.
    public init(node: String, file: URL?) {
        self.node = node
        var fd: Int32 = 2
        if let file {
            try? FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            let opened = open(file.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            if opened >= 0 { fd = opened }
        }
        sink = Sink(fd: fd)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = "ts=\(Self.timestamp()) level=\(event.level) node=\(node) msg="
        Self.appendValue(event.message.description, to: &line)
        let merged = event.metadata.map { metadata.merging($0) { $1 } } ?? metadata
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            line += " \(key)="
            Self.appendValue(value.description, to: &line)
        }
        line += "\n"
        sink.write(line)
    }

    static func appendValue(_ value: String, to line: inout String) {
        if !value.isEmpty, value.allSatisfy({ $0 != " " && $0 != "\"" && $0 != "=" && !$0.isNewline }) {
            line += value
        } else {
            line += "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                .replacingOccurrences(of: "\n", with: "\\n") + "\""
        }
    }

    static func timestamp() -> String {
        var tv = timeval()
        gettimeofday(&tv, nil)
        var t = tv.tv_sec
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec, Int32(tv.tv_usec / 1000))
    }
}
