import ArgumentParser
import Foundation
import NimbusConfig
import NimbusRuntime
import SupervisorCore

struct Chaos: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "SIGKILL a random process every interval for a while; the supervisor restarts each one.",
        discussion: """
            Each interval one process is killed through the supervisor (as nimbus kill does); the \
            supervisor itself is never a candidate. Kills are spread over the --kinds: the kinds are \
            taken in a shuffled order, each once before any is taken again, and within a kind one of \
            its processes that has a pid is picked at random. The choice is replayable: the same --seed \
            picks the same way from the same processes. A process killed after it had been healthy \
            for 5 s is restarted at once; one killed sooner backs off (1 s doubling to 8 s) and, after \
            5 such quick deaths within a minute, shows as crash-looping until it stays up.
            """)

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "How long to go on, e.g. 60s or 5m.")
    var duration: TimeSpan

    @Option(help: "Time between two kills, e.g. 10s.")
    var interval: TimeSpan

    @Option(help: "Comma-separated kinds to pick from, e.g. ingest-worker,notifier. Default: every kind.")
    var kinds: String?

    @Option(help: "Seed of the choices. Default: a random one, printed.")
    var seed: UInt64?

    func validate() throws {
        _ = try victimKinds()
    }

    func run() async throws {
        do { try await chaos() } catch { Self.fail(error) }
    }

    /// The kinds named by --kinds, or every kind.
    private func victimKinds() throws -> Set<String> {
        let known = ServiceKind.allCases.map(\.rawValue)
        guard let kinds else { return Set(known) }
        let named = kinds.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if named.contains("supervisor") { throw ValidationError("chaos never kills the supervisor: nothing would restart it") }
        if let unknown = named.first(where: { !known.contains($0) }) {
            throw ValidationError("\(unknown) is not a kind; kinds: \(known.joined(separator: ", "))")
        }
        guard !named.isEmpty else { throw ValidationError("--kinds names no kind") }
        return Set(named)
    }

    private func chaos() async throws {
        let control = try Control(try cluster.load())
        _ = try await control.requireStatus()
        let allowed = try victimKinds()
        let seed = self.seed ?? UInt64.random(in: 0...UInt64.max)
        var random = SplitMix64(seed: seed)
        print("nimbus: chaos for \(duration), a kill every \(interval) among \(allowed.sorted().joined(separator: ",")); seed \(seed)")

        var killsByKind: [String: Int] = [:]
        var pending: [String] = []
        let start = ContinuousClock.now
        var round = 1
        while interval.duration * round <= duration.duration {
            try? await Task.sleep(until: start + interval.duration * round, clock: .continuous)
            round += 1
            guard let status = await control.status() else {
                print("\(timestamp())  skipped: the supervisor does not answer on \(control.endpoint)")
                continue
            }
            // The next kind of this round that has a process with a pid; sorted, so a seed picks the
            // same process from the same set whatever order status lists them in.
            if pending.isEmpty { pending = shuffled(allowed.sorted(), &random) }
            let alive = status.processes.filter { allowed.contains($0.kind) && $0.pid != nil }.sorted { $0.name < $1.name }
            guard let kind = pending.first(where: { kind in alive.contains { $0.kind == kind } }) else {
                print("\(timestamp())  skipped: no \(allowed.sorted().joined(separator: "/")) process has a pid (all restarting?)")
                continue
            }
            pending.removeAll { $0 == kind }
            let candidates = alive.filter { $0.kind == kind }
            let victim = candidates[random.index(below: candidates.count)]
            do {
                let answer = try await control.call(NimbusAction.kill, KillRequest(name: victim.name), host: control.hostOf(victim.name))
                let reply = try JSONDecoder().decode(KillReply.self, from: answer)
                print("\(timestamp())  killed \(reply.name) (pid \(reply.pid.map(String.init) ?? "?"))")
                killsByKind[victim.kind, default: 0] += 1
            } catch {
                // It may have died on its own since the status: a missed round, not a failed run.
                print("\(timestamp())  skipped: could not kill \(victim.name): \(error)")
            }
        }
        let total = killsByKind.values.reduce(0, +)
        let byKind = killsByKind.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        print("nimbus: chaos done: \(total) kill\(total == 1 ? "" : "s")" + (byKind.isEmpty ? "" : " (\(byKind))") + "; seed \(seed)")
        await control.client.close()
    }
}

/// Fisher-Yates with the seeded generator, so a seed replays the same order.
private func shuffled<T>(_ items: [T], _ random: inout SplitMix64) -> [T] {
    var items = items
    for i in stride(from: items.count - 1, to: 0, by: -1) {
        items.swapAt(i, random.index(below: i + 1))
    }
    return items
}
