import Foundation

/// Judges what `load` posted against what the pipeline delivered, as Jepsen's queue checker does:
/// an acknowledged order must arrive, once; an unacknowledged one may arrive (recovered) or not
/// (failed); nothing may arrive that was never sent. Pure: the caller gathers the evidence.
struct OrderAudit: Encodable {
    var runs: [String] = []
    var posted = 0
    var acknowledged = 0
    /// Acknowledged, and delivered: a row, and a mail to every checked subscriber.
    var ok = 0
    /// Not acknowledged, yet delivered (allowed: the answer was lost, not the order).
    var recovered = 0
    /// Acknowledged but without a row, or with a row some checked subscriber got no mail for.
    var lost = 0
    /// Two or more rows, or two or more mails to one subscriber (orthogonal to the classes above).
    var duplicated = 0
    /// Rows or mails of a recorded run whose id was never posted.
    var unexpected = 0
    /// Not acknowledged and not delivered (allowed).
    var failed = 0
    /// Rows not judged: no loadID, or a loadID of a run without records.
    var other = 0
    var subscribersChecked: [String] = []
    /// Up to `exampleLimit` ids of each bad class.
    var examples: [String: [String]] = [:]

    static let exampleLimit = 10

    var clean: Bool { lost == 0 && duplicated == 0 && unexpected == 0 }

    /// - Parameters:
    ///   - rows: each row's loadID (nil when it has none).
    ///   - mails: for each checked subscriber, the loadIDs of its notification mails.
    init(records: [LoadRecord], rows: [String?], mails: [String: [String]]) {
        // An id recorded twice (a retried run, an edited file) counts once, acknowledged if either was.
        var acknowledgedByID: [String: Bool] = [:]
        for record in records { acknowledgedByID[record.id] = (acknowledgedByID[record.id] ?? false) || record.acknowledged }
        let runs = Set(acknowledgedByID.keys.compactMap(LoadRecord.run(of:)))
        self.runs = runs.sorted()
        posted = acknowledgedByID.count
        acknowledged = acknowledgedByID.values.filter { $0 }.count
        subscribersChecked = mails.keys.sorted()

        var rowCount: [String: Int] = [:]
        for case let id? in rows { rowCount[id, default: 0] += 1 }
        other = rows.filter { $0.flatMap(LoadRecord.run(of:)).map { !runs.contains($0) } ?? true }.count
        let mailCount = mails.mapValues { ids in ids.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 } }

        var lostIDs: [String] = [], duplicatedIDs: [String] = []
        for (id, wasAcknowledged) in acknowledgedByID {
            let rows = rowCount[id] ?? 0
            let mailed = mailCount.values.map { $0[id] ?? 0 }
            let delivered = rows > 0 && mailed.allSatisfy { $0 > 0 }
            switch (delivered, wasAcknowledged) {
            case (true, true): ok += 1
            case (true, false): recovered += 1
            case (false, _) where wasAcknowledged || rows > 0: lostIDs.append(id)
            case (false, _): failed += 1
            }
            if rows > 1 || mailed.contains(where: { $0 > 1 }) { duplicatedIDs.append(id) }
        }
        let delivered = Set(rowCount.keys).union(mailCount.values.flatMap(\.keys))
        let unexpectedIDs = delivered.filter { id in
            acknowledgedByID[id] == nil && LoadRecord.run(of: id).map(runs.contains) == true
        }
        lost = lostIDs.count
        duplicated = duplicatedIDs.count
        unexpected = unexpectedIDs.count
        for (name, ids) in [("lost", lostIDs), ("duplicated", duplicatedIDs), ("unexpected", Array(unexpectedIDs))] where !ids.isEmpty {
            examples[name] = Array(ids.sorted(by: Self.loadOrder).prefix(Self.exampleLimit))
        }
    }

    /// By run, then by number: `r-2` before `r-10`.
    static func loadOrder(_ a: String, _ b: String) -> Bool {
        let (runA, runB) = (LoadRecord.run(of: a) ?? a, LoadRecord.run(of: b) ?? b)
        if runA != runB { return runA < runB }
        let (n, m) = (Int(a.dropFirst(runA.count + 1)), Int(b.dropFirst(runB.count + 1)))
        if let n, let m, n != m { return n < m }
        return a < b
    }
}
