import ArgumentParser
import Foundation
import NimbusConfig
import NimbusRuntime

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that every order nimbus load recorded arrived once: a row, and a mail to each confirmed subscriber.",
        discussion: """
            First waits for the pipeline to drain: POC-Queue empty (visible, in flight, delayed), the \
            orders table's stream read to its end (the stream workers' checkpoints), the notifier's \
            outbox empty, every process running, and the orders table's row count and the mail sink's \
            mailboxes unchanged for 3 s. Then judges each recorded order as Jepsen's queue \
            checker does: ok (acknowledged, delivered once), recovered (not acknowledged, delivered: \
            allowed), failed (not acknowledged, not delivered: allowed), lost (acknowledged but no row, \
            or a row some confirmed email subscriber got no mail for), duplicated (two rows, or two \
            mails to one subscriber) and unexpected (a row or mail of a recorded run that was never \
            posted). Mails are read from the local mail sink's mailboxes; Nimbus does not keep when a \
            subscription was confirmed, so subscribers must be confirmed before the load begins (one \
            confirmed later misses the earlier orders' mails, reported lost). \
            Exit status: 0 when nothing is lost, duplicated or unexpected; 1 when something is; 2 when \
            the pipeline did not drain within --timeout.
            """)

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "How long to wait for the pipeline to drain, e.g. 120s or 5m.")
    var timeout = TimeSpan(seconds: 120)

    @Flag(help: "Print the result as JSON.")
    var json = false

    @Option(help: "The load records: a directory of *.jsonl files, or one file. Default: <dataDirectory>/load.")
    var records: String?

    /// How long rows and mails must stay the same before the pipeline counts as drained.
    static let quietPeriod = Duration.seconds(3)
    static let pollInterval = Duration.milliseconds(500)

    func run() async throws {
        do { try await verify() } catch let exit as ExitCode { throw exit } catch { Self.fail(error) }
    }

    private func verify() async throws {
        let located = try cluster.load()
        let source = records.map { URL(fileURLWithPath: $0) } ?? LoadRecords.directory(located)
        let recorded = try LoadRecords.read(source)
        guard !recorded.isEmpty else { throw CLIError("no load records in \(source.path) (run nimbus load first)") }
        let control = try Control(located)
        defer { Task { await control.client.close() } }
        _ = try await control.requireStatus()
        let probes = PipelineProbes(located: located, control: control)
        let mailDirectory = located.config.mailSinkDirectoryURL(relativeTo: located.base)

        let started = ContinuousClock.now
        let stillBusy = await waitForDrain(probes, mailDirectory: mailDirectory)
        let waited = ContinuousClock.now - started

        var notes: [String] = []
        let rows = try await probes.rowLoadIDs()
        let mails = try await notificationLoadIDs(probes, mailDirectory: mailDirectory, notes: &notes)
        let audit = OrderAudit(records: recorded, rows: rows, mails: mails)
        let verdict = !stillBusy.isEmpty ? "not drained" : audit.clean ? "ok" : "violations"
        let waitedSeconds = Double(waited.components.seconds) + Double(waited.components.attoseconds) / 1e18

        if json {
            var object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(audit)) as? [String: Any] ?? [:]
            object["verdict"] = verdict
            object["drained"] = stillBusy.isEmpty
            object["stillBusy"] = stillBusy
            object["waitedSeconds"] = (waitedSeconds * 10).rounded() / 10
            object["notes"] = notes
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self))
        } else {
            print(Self.render(audit, notes: notes))
            switch verdict {
            case "ok": print(String(format: "nimbus: verify: ok: no order lost, duplicated or unexpected (drained after %.1f s)", waitedSeconds))
            case "violations": print("nimbus: verify: FAILED: \(audit.lost) lost, \(audit.duplicated) duplicated, \(audit.unexpected) unexpected")
            default: break
            }
        }
        if !stillBusy.isEmpty {
            FileHandle.standardError.write(Data("nimbus: the pipeline did not drain within \(timeout): \(stillBusy.joined(separator: "; "))\n".utf8))
            throw ExitCode(2)
        }
        if !audit.clean { throw ExitCode(1) }
    }

    /// Waits until nothing is left to do and rows and mails have stopped changing for
    /// `quietPeriod`; returns what was still busy when `timeout` ran out (empty when drained).
    private func waitForDrain(_ probes: PipelineProbes, mailDirectory: URL) async -> [String] {
        let deadline = ContinuousClock.now + timeout.duration
        var lastProgress: (rows: Int, mailBytes: Int)?
        var quietSince = ContinuousClock.now
        while true {
            let now = ContinuousClock.now
            var busy = await probes.unfinishedWork()
            var rows = -1
            do { rows = try await probes.rowCount() } catch { busy.append("\(probes.table): \(error)") }
            let progress = (rows: rows, mailBytes: SinkMailboxes.totalBytes(in: mailDirectory))
            if !busy.isEmpty || lastProgress.map({ $0 != progress }) ?? true {
                quietSince = now
                lastProgress = progress
            } else if now - quietSince >= Self.quietPeriod {
                return []
            }
            if now >= deadline { return busy.isEmpty ? ["rows or mails were still arriving"] : busy }
            try? await Task.sleep(for: Self.pollInterval)
        }
    }

    /// The loadIDs of the notification mails each confirmed email subscriber got.
    private func notificationLoadIDs(_ probes: PipelineProbes, mailDirectory: URL, notes: inout [String]) async throws -> [String: [String]] {
        let subscribers = try await probes.confirmedEmailSubscribers()
        guard probes.located.config.instances(.mailSink) > 0 else {
            if !subscribers.isEmpty { notes.append("mail is sent through a relay (services.mail-sink.instances: 0): mails not checked") }
            return [:]
        }
        let all = try SinkMailboxes.mails(in: mailDirectory)
        var loadIDs: [String: [String]] = [:]
        var withoutLoadID = 0
        for subscriber in subscribers {
            let theirs = all.filter { $0.recipient.caseInsensitiveCompare(subscriber) == .orderedSame }
            // Confirmed, so it was sent a confirmation; with no mail at all, its mail went elsewhere.
            guard !theirs.isEmpty else {
                notes.append("\(subscriber) has no mailbox in \(mailDirectory.path): its mails not checked")
                continue
            }
            let notifications = theirs.filter { !$0.isSubscriptionConfirmation }
            let ids = notifications.compactMap { PipelineProbes.loadID(inNotification: $0.firstBodyLine) }
            withoutLoadID += notifications.count - ids.count
            loadIDs[subscriber] = ids
        }
        if withoutLoadID > 0 { notes.append("\(withoutLoadID) notification mail(s) carry no loadID: not judged") }
        if subscribers.isEmpty { notes.append("\(probes.topic) has no confirmed email subscriber: mails not checked") }
        return loadIDs
    }

    static func render(_ audit: OrderAudit, notes: [String]) -> String {
        var lines = [
            ("runs", audit.runs.joined(separator: " ")),
            ("posted", "\(audit.posted)"), ("acknowledged", "\(audit.acknowledged)"),
            ("ok", "\(audit.ok)"), ("recovered", "\(audit.recovered)"), ("lost", "\(audit.lost)"),
            ("duplicated", "\(audit.duplicated)"), ("unexpected", "\(audit.unexpected)"),
            ("failed", "\(audit.failed)"), ("other", "\(audit.other)"),
            ("subscribers checked", "\(audit.subscribersChecked.count)"
                + (audit.subscribersChecked.isEmpty ? "" : " (\(audit.subscribersChecked.joined(separator: ", ")))")),
        ].map { "\($0): \($1)" }
        for name in ["lost", "duplicated", "unexpected"] {
            if let ids = audit.examples[name] { lines.append("\(name) examples: \(ids.joined(separator: " "))") }
        }
        lines += notes.map { "note: \($0)" }
        return lines.joined(separator: "\n")
    }
}
