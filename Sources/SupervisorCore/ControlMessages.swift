/// Bodies of the supervisor's control actions (`nimbus:Status`, `nimbus:Scale`, `nimbus:Kill`,
/// `nimbus:Restart`, `nimbus:Stop`), shared by the supervisor and the CLI.
public struct StatusReply: Codable, Sendable {
    public var supervisorPID: Int32
    public var incarnation: String
    public var stopping: Bool
    public var processes: [ProcessStatus]

    public init(supervisorPID: Int32, incarnation: String, stopping: Bool, processes: [ProcessStatus]) {
        self.supervisorPID = supervisorPID
        self.incarnation = incarnation
        self.stopping = stopping
        self.processes = processes
    }
}

public struct ScaleRequest: Codable, Sendable {
    public var kind: String
    public var count: Int
    public init(kind: String, count: Int) {
        self.kind = kind
        self.count = count
    }
}

public struct KillRequest: Codable, Sendable {
    public var name: String
    public init(name: String) { self.name = name }
}

public struct KillReply: Codable, Sendable {
    public var name: String
    public var pid: Int32?
    public init(name: String, pid: Int32?) {
        self.name = name
        self.pid = pid
    }
}

/// `nimbus:Restart`: a process name (`queue`, `ingest-worker-2`) or a kind (`ingest-worker`).
public struct RestartRequest: Codable, Sendable {
    public var name: String
    public init(name: String) { self.name = name }
}

public struct RestartReply: Codable, Sendable {
    public var restarting: [String]
    public init(restarting: [String]) { self.restarting = restarting }
}
