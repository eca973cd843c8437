/// Action names, spelled as IAM policies spell them. Services add their own (`sqs:SendMessage`, ...)
/// in their issues; the ones here are the cluster's own.
public enum NimbusAction {
    /// Every node answers it: status, uptime, incarnation, pid, counters.
    public static let health = "nimbus:Health"
    /// Supervisor control socket.
    public static let status = "nimbus:Status"
    public static let scale = "nimbus:Scale"
    public static let kill = "nimbus:Kill"
    /// Restart a process or every process of a kind at once, its backoff reset.
    public static let restart = "nimbus:Restart"
    public static let stop = "nimbus:Stop"
    /// The public CURVE keys of the processes on a supervisor's host (ClusterKeys). Open: the keys
    /// are public, and the CURVE link itself says who answers.
    public static let publicKeys = "nimbus:PublicKeys"
}

extension NimbusAction {
    /// IAM node: the policy version, a counter bumped on every policy, role or attachment change.
    /// Nodes poll it to drop cached authorization decisions. Unauthenticated: it reveals a number.
    public static let policyVersion = "nimbus:PolicyVersion"
}
