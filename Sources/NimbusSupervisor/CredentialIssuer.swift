import Foundation
import Logging
import NimbusAuth
import NimbusRuntime

/// Obtains temporary credentials for every process the supervisor runs and keeps them fresh:
///
/// - a workload process (gateway, workers) runs as its configured role (`iam.roles`): the
///   supervisor calls `sts:AssumeRole` at the IAM node naming the kind's service principal, which
///   the role's trust policy must admit; the session is `assumed-role/ROLE/<process name>`. It also
///   gets the service principal's own credentials for the platform's calls (`<name>.service.json`);
/// - a platform node (queue, table, notifier) gets its service principal's credentials
///   (`sts:GetServiceCredentials`).
///
/// Each lands in `<data>/credentials/<name>.json` (0600) and is rewritten when a third of its
/// lifetime is left; processes re-read the file when it changes, so nothing restarts. The
/// supervisor itself signs with the account root's credentials, which the IAM node creates.
actor CredentialIssuer {
    private let client: NimbusClient
    private let cluster: ClusterConfig
    private let dataDirectory: URL
    private let logger: Logger
    /// Expiry (ms) of what was last written, by file name.
    private var written: [String: Int64] = [:]

    init(client: NimbusClient, cluster: ClusterConfig, dataDirectory: URL, logger: Logger) {
        self.client = client
        self.cluster = cluster
        self.dataDirectory = dataDirectory
        self.logger = logger
    }

    /// One pass over the processes: issue what is missing or due. Failures are logged and retried
    /// on the next pass (the IAM node may not be up yet).
    func refresh(processes: [(name: String, kind: ServiceKind)]) async {
        let lifetime = Int64(cluster.iam.credentialSeconds) * 1000
        let now = CredentialSource.nowMillis()
        for (name, kind) in processes {
            guard let principal = kind.servicePrincipal else { continue }
            var wanted: [(file: String, role: String?)] = []
            if let role = cluster.iam.roles[kind.rawValue] {
                wanted = [(name, role), ("\(name).service", nil)]
            } else {
                wanted = [(name, nil)]
            }
            for (fileName, role) in wanted {
                let file = CredentialSource.file(dataDirectory: dataDirectory, name: fileName)
                let expires = written[fileName] ?? Self.expiration(of: file)
                if let expires, expires - now > lifetime / 3 {
                    written[fileName] = expires
                    continue
                }
                do {
                    let credentials = try await issue(role: role, principal: principal, session: name)
                    try CredentialSource.write(credentials, to: file)
                    written[fileName] = credentials.expiration
                    logger.info("credentials issued", metadata: ["process": "\(fileName)", "principal": "\(credentials.principal)"])
                } catch {
                    logger.warning("credentials for \(fileName): \(error)")
                }
            }
        }
    }

    private struct Answer: Decodable { var Credentials: NimbusAuth.Credentials }

    private func issue(role: String?, principal: String, session: String) async throws -> NimbusAuth.Credentials {
        let body: Data
        let action: String
        if let role {
            action = "sts:AssumeRole"
            body = try JSONEncoder().encode([
                "RoleArn": "arn:aws:iam::\(cluster.account):role/\(role)", "RoleSessionName": session, "ServicePrincipal": principal,
            ])
        } else {
            action = "sts:GetServiceCredentials"
            body = try JSONEncoder().encode(["ServicePrincipal": principal])
        }
        return try JSONDecoder().decode(Answer.self, from: try await client.request(action, to: .iam, body: body)).Credentials
    }

    private static func expiration(of file: URL) -> Int64? {
        guard let data = try? Data(contentsOf: file), let credentials = try? JSONDecoder().decode(NimbusAuth.Credentials.self, from: data) else { return nil }
        return credentials.expiration
    }
}
