/// A ZeroMQ endpoint in the config: `tcp://HOST:PORT` (any host) or `ipc://PATH`.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible, Codable {
    public var scheme: String
    public var host: String
    public var port: Int?

    public init(_ text: String) throws(ConfigError) {
        if text.hasPrefix("ipc://") {
            self.scheme = "ipc"
            self.host = String(text.dropFirst("ipc://".count))
            self.port = nil
            if host.isEmpty { throw ConfigError("endpoint \"\(text)\" names no path") }
            return
        }
        guard text.hasPrefix("tcp://") else {
            throw ConfigError("endpoint \"\(text)\" must look like tcp://HOST:PORT or ipc://PATH")
        }
        let rest = text.dropFirst("tcp://".count)
        guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]),
              (1...65535).contains(port), colon != rest.startIndex else {
            throw ConfigError("endpoint \"\(text)\" must look like tcp://HOST:PORT with a port from 1 to 65535")
        }
        self.scheme = "tcp"
        self.host = String(rest[..<colon])
        self.port = port
    }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        self = try Endpoint(text)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// The same host with the port moved by `offset` (worker instances).
    public func offset(by offset: Int) -> Endpoint {
        var copy = self
        if let port { copy.port = port + offset } else { copy.host = "\(host).\(offset)" }
        return copy
    }

    public var description: String {
        if let port { return "\(scheme)://\(host):\(port)" }
        return "\(scheme)://\(host)"
    }
}

public struct ConfigError: Error, CustomStringConvertible, Equatable, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
