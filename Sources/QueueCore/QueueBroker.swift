import DequeModule
import Foundation
import HeapModule
import NimbusProtocol

/// SQS standard-queue semantics as a pure state machine: no clock, no disk, no sockets. Every method
/// takes the time (epoch ms) and appends what must become durable to `changes`; the shell commits
/// those, many calls per transaction, before it answers. Long polling is the shell's: it calls
/// `receive` again when `nextWake` says something may have changed.
public struct QueueBroker: Sendable {
    public let region: String
    public let account: String
    private(set) var queues: [String: QueueState] = [:]
    private var nextSeq: Int64 = 1
    private var lastPurge: [String: Int64] = [:]
    /// Sends made with an idempotency key in the last `idempotencyWindow`, by queue and key; and the
    /// same in the order they were made, to forget them oldest first (entries whose key was sent
    /// again, or whose queue was deleted, are stale there: checked on use).
    private(set) var idempotentSends: [IdempotencyKey: IdempotentSend] = [:]
    private var idempotentOrder = Deque<IdempotentSend>()
    /// At most this many keys are remembered; beyond it the oldest are forgotten first.
    public let idempotencyKeyLimit: Int
    /// How long a send's idempotency key is honoured: 5 minutes, as SQS FIFO's deduplication interval.
    public static let idempotencyWindow: Int64 = 300_000

    struct IdempotencyKey: Hashable {
        var queue: String
        var key: String
    }

    struct Pending: Comparable {
        var visibleAt: Int64
        var seq: Int64
        static func < (a: Pending, b: Pending) -> Bool { (a.visibleAt, a.seq) < (b.visibleAt, b.seq) }
    }

    struct QueueState: Sendable {
        var record: StoredQueue
        var messages: [Int64: StoredMessage] = [:]
        /// Visible messages in delivery order; entries may be stale (deleted, received): checked on use.
        var ready = Deque<Int64>()
        /// Messages not yet visible (delayed, in flight), by the time they become visible.
        var pending = Heap<Pending>()

        mutating func schedule(_ message: StoredMessage, now: Int64) {
            if message.visibleAt <= now { ready.append(message.seq) } else { pending.insert(Pending(visibleAt: message.visibleAt, seq: message.seq)) }
        }

        /// Moves every message whose time has come to the ready list.
        mutating func promote(now: Int64) {
            while let first = pending.min, first.visibleAt <= now {
                pending.removeMin()
                if let message = messages[first.seq], message.visibleAt == first.visibleAt { ready.append(first.seq) }
            }
        }
    }

    public init(region: String, account: String, idempotencyKeyLimit: Int = 100_000) {
        self.region = region
        self.account = account
        self.idempotencyKeyLimit = max(1, idempotencyKeyLimit)
    }

    // MARK: Restoring from the store

    /// Rebuilds the state from what the store holds (at start, after a crash). Idempotency keys
    /// whose window has passed are left out, and the newest `idempotencyKeyLimit` kept.
    public mutating func restore(queues stored: [StoredQueue], messages: [StoredMessage], idempotentSends sends: [IdempotentSend] = [],
                                 now: Int64) {
        queues = [:]
        for q in stored { queues[q.name] = QueueState(record: q) }
        for m in messages.sorted(by: { $0.seq < $1.seq }) {
            guard queues[m.queue] != nil else { continue }
            queues[m.queue]!.messages[m.seq] = m
            queues[m.queue]!.schedule(m, now: now)
            nextSeq = max(nextSeq, m.seq + 1)
        }
        idempotentSends = [:]
        idempotentOrder = []
        let live = sends.filter { queues[$0.queue] != nil && now - $0.sentTimestamp < Self.idempotencyWindow }
            .sorted { $0.sentTimestamp < $1.sentTimestamp }
        for send in live.suffix(idempotencyKeyLimit) {
            idempotentSends[IdempotencyKey(queue: send.queue, key: send.key)] = send
            idempotentOrder.append(send)
        }
    }

    // MARK: Names and URLs

    public func url(_ name: String) -> String { SQSNames.url(region: region, account: account, name: name) }
    public func arn(_ name: String) -> String { SQSNames.arn(region: region, account: account, name: name) }

    /// The queue a QueueUrl names: `https://host/ACCOUNT/NAME` (any host), or `/ACCOUNT/NAME`.
    /// The queue a URL names: its last two non-empty path segments are the account and the name.
    /// (Scanned from the end: this runs on every request, and splitting the URL was ~5 % of a send.)
    func name(fromURL url: String) throws(QueueError) -> String {
        let utf8 = url.utf8
        var end = utf8.endIndex
        func segment() -> Substring.UTF8View? {
            while end > utf8.startIndex, utf8[utf8.index(before: end)] == 0x2F { end = utf8.index(before: end) }
            guard end > utf8.startIndex else { return nil }
            var start = end
            while start > utf8.startIndex, utf8[utf8.index(before: start)] != 0x2F { start = utf8.index(before: start) }
            defer { end = start }
            return url[start..<end].utf8
        }
        guard let last = segment(), let owner = segment(), owner.elementsEqual(account.utf8) else {
            throw QueueError(.nonExistentQueue, "The specified queue does not exist.")
        }
        let name = String(Substring(last))
        guard queues[name] != nil else { throw QueueError(.nonExistentQueue, "The specified queue does not exist.") }
        return name
    }

    static func validateName(_ name: String) throws(QueueError) {
        if name.hasSuffix(".fifo") { throw QueueError(.invalidParameterValue, "FIFO queues are not supported by Nimbus.") }
        guard (1...80).contains(name.count), name.utf8.allSatisfy({ b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F
        }) else {
            throw QueueError(.invalidParameterValue,
                             "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length")
        }
    }

    // MARK: Queues

    public mutating func createQueue(_ name: String, attributes: [String: String], tags: [String: String], now: Int64,
                                     changes: inout [StoreChange]) throws(QueueError) -> String {
        try Self.validateName(name)
        var wanted = QueueAttributes()
        try wanted.apply(attributes)
        if let existing = queues[name] {
            // Idempotent when nothing differs, as SQS is; a different attribute is an error.
            var same = existing.record.attributes
            try same.apply(attributes)
            guard same == existing.record.attributes else {
                throw QueueError(.queueAlreadyExists, "A queue already exists with the same name and a different value for attribute(s) \(attributes.keys.sorted().joined(separator: ", ")).")
            }
            return url(name)
        }
        try checkDeadLetterTarget(wanted)
        let record = StoredQueue(name: name, attributes: wanted, createdTimestamp: now, lastModifiedTimestamp: now, tags: tags)
        queues[name] = QueueState(record: record)
        changes.append(.putQueue(record))
        return url(name)
    }

    public func getQueueUrl(_ name: String) throws(QueueError) -> String {
        guard queues[name] != nil else { throw QueueError(.nonExistentQueue, "The specified queue does not exist.") }
        return url(name)
    }

    public func listQueues(prefix: String?, maxResults: Int?, nextToken: String?) throws(QueueError) -> ListQueuesResponse {
        if let maxResults, !(1...1000).contains(maxResults) {
            throw QueueError(.invalidParameterValue, "MaxResults must be an integer between 1 and 1000.")
        }
        let names = queues.keys.filter { $0.hasPrefix(prefix ?? "") }.sorted()
        let start = nextToken.flatMap { token in names.firstIndex { $0 > token } } ?? (nextToken == nil ? 0 : names.count)
        let limit = maxResults ?? 1000
        let page = Array(names[start..<min(names.count, start + limit)])
        let more = maxResults != nil && start + limit < names.count
        return ListQueuesResponse(QueueUrls: page.map(url), NextToken: more ? page.last : nil)
    }

    static let attributeNames = [
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed",
        "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn", "VisibilityTimeout", "MaximumMessageSize",
        "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds", "RedrivePolicy", "Policy",
    ]

    public func getQueueAttributes(_ url: String, names: [String], now: Int64) throws(QueueError) -> [String: String] {
        let name = try name(fromURL: url)
        let q = queues[name]!
        let wanted = names.contains("All") ? Self.attributeNames : names
        for n in wanted where !Self.attributeNames.contains(n) {
            throw QueueError(.invalidAttributeName, "Unknown Attribute \(n).")
        }
        var visible = 0, inFlight = 0, delayed = 0
        if wanted.contains(where: { $0.hasPrefix("ApproximateNumber") }) {
            for m in q.messages.values {
                if m.visibleAt <= now { visible += 1 } else if m.receiveCount > 0 { inFlight += 1 } else { delayed += 1 }
            }
        }
        let a = q.record.attributes
        var out: [String: String] = [:]
        for n in wanted {
            switch n {
            case "ApproximateNumberOfMessages": out[n] = "\(visible)"
            case "ApproximateNumberOfMessagesNotVisible": out[n] = "\(inFlight)"
            case "ApproximateNumberOfMessagesDelayed": out[n] = "\(delayed)"
            case "CreatedTimestamp": out[n] = "\(q.record.createdTimestamp / 1000)"
            case "LastModifiedTimestamp": out[n] = "\(q.record.lastModifiedTimestamp / 1000)"
            case "QueueArn": out[n] = arn(name)
            case "VisibilityTimeout": out[n] = "\(a.visibilityTimeout)"
            case "MaximumMessageSize": out[n] = "\(a.maximumMessageSize)"
            case "MessageRetentionPeriod": out[n] = "\(a.messageRetentionPeriod)"
            case "DelaySeconds": out[n] = "\(a.delaySeconds)"
            case "ReceiveMessageWaitTimeSeconds": out[n] = "\(a.receiveMessageWaitTimeSeconds)"
            case "RedrivePolicy":
                if let r = a.redrivePolicy { out[n] = "{\"deadLetterTargetArn\":\"\(r.deadLetterTargetArn)\",\"maxReceiveCount\":\(r.maxReceiveCount)}" }
            case "Policy":
                if let p = a.policy { out[n] = p }
            default: break
            }
        }
        return out
    }

    public mutating func setQueueAttributes(_ url: String, _ attributes: [String: String], now: Int64,
                                            changes: inout [StoreChange]) throws(QueueError) {
        let name = try name(fromURL: url)
        var record = queues[name]!.record
        try record.attributes.apply(attributes)
        try checkDeadLetterTarget(record.attributes)
        record.lastModifiedTimestamp = now
        queues[name]!.record = record
        changes.append(.putQueue(record))
    }

    /// SQS refuses a redrive policy whose dead-letter queue does not exist (in this account).
    private func checkDeadLetterTarget(_ attributes: QueueAttributes) throws(QueueError) {
        guard let arn = attributes.redrivePolicy?.deadLetterTargetArn else { return }
        let parts = arn.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[2] == "sqs", String(parts[4]) == account, queues[String(parts[5])] != nil else {
            throw QueueError(.invalidParameterValue, "Value \(arn) for parameter RedrivePolicy is invalid. Reason: Dead letter target does not exist.")
        }
    }

    /// The queue's access policy, for the authorizer.
    public func policy(ofQueueNamed name: String) -> String? { queues[name]?.record.attributes.policy }

    /// Every queue's access policy by queue name (queues without one are absent).
    public var policiesByQueueName: [String: String] { queues.compactMapValues { $0.record.attributes.policy } }

    public mutating func deleteQueue(_ url: String, changes: inout [StoreChange]) throws(QueueError) {
        let name = try name(fromURL: url)
        queues[name] = nil
        // Its keys go with it (the store drops them with the queue's rows).
        if idempotentSends.keys.contains(where: { $0.queue == name }) { idempotentSends = idempotentSends.filter { $0.key.queue != name } }
        changes.append(.deleteQueue(name))
    }

    public mutating func purgeQueue(_ url: String, now: Int64, changes: inout [StoreChange]) throws(QueueError) {
        let name = try name(fromURL: url)
        if let last = lastPurge[name], now - last < 60_000 {
            throw QueueError(.purgeQueueInProgress, "Only one PurgeQueue operation on \(name) is allowed every 60 seconds.")
        }
        lastPurge[name] = now
        for seq in queues[name]!.messages.keys { changes.append(.deleteMessage(seq)) }
        queues[name]!.messages = [:]
        queues[name]!.ready = []
        queues[name]!.pending = Heap()
    }

    // MARK: Sending

    public struct Outgoing: Sendable {
        public var body: String
        public var delaySeconds: Int?
        public var attributes: [String: MessageAttributeValue]?
        /// The Nimbus extension `NimbusIdempotencyKey` (see `IdempotentSend`).
        public var idempotencyKey: String?
        /// FIFO's member, refused on a standard queue as AWS refuses it.
        public var deduplicationId: String?
        public init(body: String, delaySeconds: Int? = nil, attributes: [String: MessageAttributeValue]? = nil,
                    idempotencyKey: String? = nil, deduplicationId: String? = nil) {
            self.body = body
            self.delaySeconds = delaySeconds
            self.attributes = attributes
            self.idempotencyKey = idempotencyKey
            self.deduplicationId = deduplicationId
        }
    }

    public mutating func sendMessage(_ url: String, _ message: Outgoing, senderId: String, now: Int64,
                                     changes: inout [StoreChange]) throws(QueueError) -> SendMessageResponse {
        try send(to: try name(fromURL: url), message, senderId: senderId, now: now, changes: &changes)
    }

    /// Sends each entry on its own: one bad entry fails alone, as in SQS.
    public mutating func sendMessageBatch(_ url: String, _ entries: [SendMessageBatchEntry], senderId: String, now: Int64,
                                          changes: inout [StoreChange]) throws(QueueError) -> SendMessageBatchResponse {
        let name = try name(fromURL: url)
        try Self.validateBatch(entries.map(\.Id))
        // The whole batch is limited to SQS's fixed 1 MiB; each entry to the queue's MaximumMessageSize.
        let total = entries.reduce(0) { $0 + $1.MessageBody.utf8.count + Self.attributesSize($1.MessageAttributes) }
        let limit = Self.maxBatchBytes
        if total > limit {
            throw QueueError(.batchRequestTooLong, "Batch requests cannot be longer than \(limit) bytes. You have sent \(total) bytes.")
        }
        var response = SendMessageBatchResponse(Successful: [], Failed: [])
        for entry in entries {
            do {
                let sent = try send(to: name, Outgoing(body: entry.MessageBody, delaySeconds: entry.DelaySeconds, attributes: entry.MessageAttributes,
                                                       idempotencyKey: entry.NimbusIdempotencyKey, deduplicationId: entry.MessageDeduplicationId),
                                    senderId: senderId, now: now, changes: &changes)
                response.Successful.append(SendMessageBatchResultEntry(Id: entry.Id, MessageId: sent.MessageId, MD5OfMessageBody: sent.MD5OfMessageBody,
                                                                       MD5OfMessageAttributes: sent.MD5OfMessageAttributes))
            } catch {
                response.Failed.append(BatchResultErrorEntry(Id: entry.Id, SenderFault: true, Code: error.code, Message: error.message))
            }
        }
        return response
    }

    /// Sends one message. With an idempotency key, a send made with the same key on the same queue
    /// less than `idempotencyWindow` ago answers again what it answered, and nothing is enqueued;
    /// otherwise the key is remembered with the message (the same change batch, so the same
    /// transaction). The request is checked in full either way: an invalid one is refused.
    private mutating func send(to name: String, _ message: Outgoing, senderId: String, now: Int64,
                               changes: inout [StoreChange]) throws(QueueError) -> SendMessageResponse {
        if let id = message.deduplicationId {
            throw QueueError(.invalidParameterValue,
                             "Value \(id) for parameter MessageDeduplicationId is invalid. Reason: The request includes a parameter that is not valid for this queue type.")
        }
        if let key = message.idempotencyKey, !Self.isValidIdempotencyKey(key) {
            throw QueueError(.invalidParameterValue,
                             "Value for parameter NimbusIdempotencyKey is invalid. Reason: it must be 1 to 128 printable ASCII characters (no space).")
        }
        let attributes = queues[name]!.record.attributes
        try Self.validateBody(message.body)
        let attributesJSON = try Self.validate(message.attributes)
        let size = message.body.utf8.count + Self.attributesSize(message.attributes)
        if size > attributes.maximumMessageSize {
            throw QueueError(.invalidParameterValue,
                             "One or more parameters are invalid. Reason: Message must be shorter than \(attributes.maximumMessageSize) bytes.")
        }
        let delay = message.delaySeconds ?? attributes.delaySeconds
        guard (0...900).contains(delay) else {
            throw QueueError(.invalidParameterValue, "Value \(delay) for parameter DelaySeconds is invalid. Reason: must be between 0 and 900.")
        }
        if let key = message.idempotencyKey {
            forgetIdempotentSends(now: now, changes: &changes)
            if let first = idempotentSends[IdempotencyKey(queue: name, key: key)], now - first.sentTimestamp < Self.idempotencyWindow {
                return SendMessageResponse(MessageId: first.messageId, MD5OfMessageBody: first.md5OfBody,
                                           MD5OfMessageAttributes: first.md5OfMessageAttributes)
            }
        }
        let md5OfAttributes = message.attributes.flatMap { $0.isEmpty ? nil : Digests.md5OfAttributes($0) }
        let stored = StoredMessage(
            seq: nextSeq, queue: name, messageId: Digests.messageID(), body: message.body,
            md5OfBody: Digests.md5Hex(of: message.body), messageAttributes: attributesJSON,
            md5OfMessageAttributes: md5OfAttributes, senderId: senderId, sentTimestamp: now,
            visibleAt: now + Int64(delay) * 1000, receiveCount: 0, firstReceiveTimestamp: nil, receipt: nil)
        nextSeq += 1
        queues[name]!.messages[stored.seq] = stored
        queues[name]!.schedule(stored, now: now)
        changes.append(.putMessage(stored))
        if let key = message.idempotencyKey {
            remember(IdempotentSend(queue: name, key: key, messageId: stored.messageId, md5OfBody: stored.md5OfBody,
                                    md5OfMessageAttributes: md5OfAttributes, sentTimestamp: now), changes: &changes)
        }
        return SendMessageResponse(MessageId: stored.messageId, MD5OfMessageBody: stored.md5OfBody, MD5OfMessageAttributes: md5OfAttributes)
    }

    // MARK: Idempotency keys

    /// A valid `NimbusIdempotencyKey` (and gateway `Idempotency-Key`): 1 to 128 printable ASCII
    /// characters without space (0x21-0x7E), as SQS's MessageDeduplicationId.
    public static func isValidIdempotencyKey(_ key: some StringProtocol) -> Bool {
        let utf8 = key.utf8
        return (1...128).contains(utf8.count) && utf8.allSatisfy { $0 >= 0x21 && $0 <= 0x7E }
    }

    /// Remembers a send's key, forgetting the oldest keys beyond `idempotencyKeyLimit`.
    private mutating func remember(_ send: IdempotentSend, changes: inout [StoreChange]) {
        idempotentSends[IdempotencyKey(queue: send.queue, key: send.key)] = send
        idempotentOrder.append(send)
        changes.append(.putIdempotentSend(send))
        while idempotentSends.count > idempotencyKeyLimit, let oldest = idempotentOrder.popFirst() {
            forget(oldest, changes: &changes)
        }
    }

    /// Forgets the keys whose window has passed, oldest first.
    private mutating func forgetIdempotentSends(now: Int64, changes: inout [StoreChange]) {
        while let oldest = idempotentOrder.first, now - oldest.sentTimestamp >= Self.idempotencyWindow {
            idempotentOrder.removeFirst()
            forget(oldest, changes: &changes)
        }
    }

    /// Forgets `send` unless its entry is stale (its key was sent again since, or its queue deleted).
    private mutating func forget(_ send: IdempotentSend, changes: inout [StoreChange]) {
        let id = IdempotencyKey(queue: send.queue, key: send.key)
        guard idempotentSends[id] == send else { return }
        idempotentSends[id] = nil
        changes.append(.deleteIdempotentSend(queue: send.queue, key: send.key))
    }

    /// SQS accepts #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF; Swift strings cannot hold
    /// surrogates, so what is left to refuse is other control characters and U+FFFE/U+FFFF.
    static func validateBody(_ body: String) throws(QueueError) {
        if body.isEmpty { throw QueueError(.missingParameter, "The request must contain the parameter MessageBody.") }
        // On the UTF-8 bytes: a control character is one byte below 0x20, and U+FFFE / U+FFFF are
        // EF BF BE / EF BF BF (decoding every scalar cost more than the rest of a send's checks).
        var body = body
        let valid = body.withUTF8 { bytes -> Bool in
            var i = 0
            while i < bytes.count {
                let b = bytes[i]
                if b < 0x20 && b != 0x9 && b != 0xA && b != 0xD { return false }
                if b == 0xEF, i + 2 < bytes.count, bytes[i + 1] == 0xBF, bytes[i + 2] == 0xBE || bytes[i + 2] == 0xBF { return false }
                i += 1
            }
            return true
        }
        if !valid {
            throw QueueError(.invalidMessageContents, "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF")
        }
    }

    static func validate(_ attributes: [String: MessageAttributeValue]?) throws(QueueError) -> Data? {
        guard let attributes, !attributes.isEmpty else { return nil }
        if attributes.count > 10 { throw QueueError(.invalidParameterValue, "Number of message attributes [\(attributes.count)] exceeds the allowed maximum [10].") }
        for (name, value) in attributes {
            guard !name.isEmpty, name.count <= 256, !name.hasPrefix("AWS."), !name.hasPrefix("Amazon.") else {
                throw QueueError(.invalidParameterValue, "The message attribute name '\(name)' is invalid.")
            }
            let base = value.DataType.split(separator: ".", maxSplits: 1).first.map(String.init) ?? ""
            switch base {
            case "String", "Number":
                guard let s = value.StringValue else {
                    throw QueueError(.invalidParameterValue, "The message attribute '\(name)' must contain a non-empty message attribute value for message attribute type '\(value.DataType)'.")
                }
                if base == "Number", Double(s) == nil {
                    throw QueueError(.invalidParameterValue, "Can't cast the value of message (user) attribute '\(name)' to a number.")
                }
            case "Binary":
                guard let b = value.BinaryValue, Data(base64Encoded: b) != nil else {
                    throw QueueError(.invalidParameterValue, "The message attribute '\(name)' must contain a base64 BinaryValue for type Binary.")
                }
            default:
                throw QueueError(.invalidParameterValue, "The type of message (user) attribute '\(name)' is invalid. You must use only the following supported type prefixes: Binary, Number, String.")
            }
        }
        return try? JSONEncoder().encode(attributes)
    }

    static func attributesSize(_ attributes: [String: MessageAttributeValue]?) -> Int {
        (attributes ?? [:]).reduce(0) { sum, item in
            sum + item.key.utf8.count + item.value.DataType.utf8.count + (item.value.StringValue?.utf8.count ?? 0)
                + (item.value.BinaryValue.flatMap { Data(base64Encoded: $0)?.count } ?? 0)
        }
    }

    /// SQS's limit on a whole SendMessageBatch request.
    public static let maxBatchBytes = 1_048_576

    static func validateBatch(_ ids: [String]) throws(QueueError) {
        if ids.isEmpty { throw QueueError(.emptyBatchRequest, "There should be at least one entry in the request.") }
        if ids.count > 10 { throw QueueError(.tooManyEntriesInBatchRequest, "Maximum number of entries per request are 10. You have sent \(ids.count).") }
        for id in ids where !(1...80).contains(id.count) || !id.utf8.allSatisfy({ b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D || b == 0x5F
        }) {
            throw QueueError(.invalidBatchEntryId, "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.")
        }
        if Set(ids).count != ids.count { throw QueueError(.batchEntryIdsNotDistinct, "Two or more batch entries in the request have the same Id.") }
    }

    // MARK: Receiving

    public struct ReceiveOptions: Sendable {
        public var maxMessages = 1
        public var visibilityTimeout: Int?
        public var attributeNames: [String] = []
        public var messageAttributeNames: [String] = []
        public init() {}
    }

    /// Validates a receive before any wait, so a bad request fails at once.
    public func validateReceive(_ url: String, _ options: ReceiveOptions, waitSeconds: Int?) throws(QueueError) -> (name: String, wait: Int) {
        let name = try name(fromURL: url)
        guard (1...10).contains(options.maxMessages) else {
            throw QueueError(.invalidParameterValue, "Value \(options.maxMessages) for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.")
        }
        if let v = options.visibilityTimeout, !(0...43_200).contains(v) {
            throw QueueError(.invalidParameterValue, "Value \(v) for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200.")
        }
        let wait = waitSeconds ?? queues[name]!.record.attributes.receiveMessageWaitTimeSeconds
        guard (0...20).contains(wait) else {
            throw QueueError(.invalidParameterValue, "Value \(wait) for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.")
        }
        return (name, wait)
    }

    /// Takes up to `maxMessages` visible messages, hiding each for the visibility timeout with a fresh
    /// receipt handle. A message received more than the redrive policy allows moves to the dead-letter
    /// queue instead. An empty answer means the shell may wait (long poll).
    public mutating func receive(_ name: String, _ options: ReceiveOptions, now: Int64, nonce: () -> UInt64,
                                 changes: inout [StoreChange]) -> [ReceivedMessage] {
        // Taken out of the dictionary while it changes: a copy left behind would make the first
        // write copy every message of the queue (copy-on-write), on every receive.
        guard var q = queues.removeValue(forKey: name) else { return [] }
        let attributes = q.record.attributes
        let hide = Int64(options.visibilityTimeout ?? attributes.visibilityTimeout) * 1000
        let retention = Int64(attributes.messageRetentionPeriod) * 1000
        q.promote(now: now)
        var out: [ReceivedMessage] = []
        var received: [StoredMessage] = []
        var moved: [StoredMessage] = []
        while out.count < options.maxMessages, let seq = q.ready.popFirst() {
            guard var m = q.messages[seq], m.visibleAt <= now else { continue }
            if m.sentTimestamp + retention <= now {
                q.messages[seq] = nil
                changes.append(.deleteMessage(seq))
                continue
            }
            if let redrive = attributes.redrivePolicy, m.receiveCount >= redrive.maxReceiveCount,
               let target = ARNName(redrive.deadLetterTargetArn), target != name, queues[target] != nil {
                q.messages[seq] = nil
                changes.append(.deleteMessage(seq))
                moved.append(m)
                continue
            }
            m.receiveCount += 1
            if m.firstReceiveTimestamp == nil { m.firstReceiveTimestamp = now }
            m.visibleAt = now + hide
            m.receipt = String(nonce(), radix: 36)
            q.messages[seq] = m
            received.append(m)
            changes.append(.receiveMessage(m))
            out.append(Self.delivery(m, options))
        }
        // Scheduled only now: with VisibilityTimeout 0 a message is visible again at once, and must
        // not come round twice in one answer.
        for m in received { q.schedule(m, now: now) }
        queues[name] = q
        for m in moved { deadLetter(m, arn: attributes.redrivePolicy!.deadLetterTargetArn, now: now, changes: &changes) }
        return out
    }

    private mutating func deadLetter(_ message: StoredMessage, arn: String, now: Int64, changes: inout [StoreChange]) {
        guard let target = ARNName(arn) else { return }
        var m = message
        m.seq = nextSeq
        nextSeq += 1
        m.queue = target
        m.visibleAt = now
        m.receipt = nil
        queues[target]!.messages[m.seq] = m
        queues[target]!.schedule(m, now: now)
        changes.append(.putMessage(m))
    }

    /// The queue name in an SQS ARN.
    private func ARNName(_ arn: String) -> String? {
        let parts = arn.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[2] == "sqs" else { return nil }
        return String(parts[5])
    }

    static func delivery(_ m: StoredMessage, _ options: ReceiveOptions) -> ReceivedMessage {
        var attributes: [String: String] = [:]
        let all = options.attributeNames.contains("All")
        func want(_ n: String) -> Bool { all || options.attributeNames.contains(n) }
        if want("ApproximateReceiveCount") { attributes["ApproximateReceiveCount"] = "\(m.receiveCount)" }
        if want("SentTimestamp") { attributes["SentTimestamp"] = "\(m.sentTimestamp)" }
        if want("SenderId") { attributes["SenderId"] = m.senderId }
        if want("ApproximateFirstReceiveTimestamp"), let first = m.firstReceiveTimestamp {
            attributes["ApproximateFirstReceiveTimestamp"] = "\(first)"
        }
        var messageAttributes: [String: MessageAttributeValue]?
        if !options.messageAttributeNames.isEmpty, let data = m.messageAttributes,
           let stored = try? JSONDecoder().decode([String: MessageAttributeValue].self, from: data) {
            let names = options.messageAttributeNames
            let picked = stored.filter { name, _ in
                names.contains("All") || names.contains(".*") || names.contains(name)
                    || names.contains { $0.hasSuffix(".*") && name.hasPrefix($0.dropLast(1)) }
            }
            messageAttributes = picked.isEmpty ? nil : picked
        }
        // The digest covers the attributes returned (SDKs check it against them), not all that were sent.
        let digest = messageAttributes.map(Digests.md5OfAttributes)
        return ReceivedMessage(
            MessageId: m.messageId, ReceiptHandle: ReceiptHandle(seq: m.seq, nonce: m.receipt ?? "").encoded,
            MD5OfBody: m.md5OfBody, Body: m.body, Attributes: attributes.isEmpty ? nil : attributes,
            MD5OfMessageAttributes: digest, MessageAttributes: messageAttributes)
    }

    /// When the next not-yet-visible message of `name` becomes visible (for a long poll's timer).
    public func nextVisibleAt(_ name: String) -> Int64? {
        queues[name]?.pending.min?.visibleAt
    }

    public func queueExists(_ name: String) -> Bool { queues[name] != nil }

    // MARK: Deleting and visibility

    /// Deletes the message a receipt handle names. A stale handle (the message was received again
    /// since) deletes nothing and still succeeds, as in SQS.
    public mutating func deleteMessage(_ url: String, receiptHandle: String, changes: inout [StoreChange]) throws(QueueError) {
        let name = try name(fromURL: url)
        try deleteMessage(in: name, receiptHandle: receiptHandle, changes: &changes)
    }

    private mutating func deleteMessage(in name: String, receiptHandle: String, changes: inout [StoreChange]) throws(QueueError) {
        guard let handle = ReceiptHandle(receiptHandle) else {
            throw QueueError(.receiptHandleIsInvalid, "The input receipt handle \"\(receiptHandle)\" is not a valid receipt handle.")
        }
        guard let m = queues[name]!.messages[handle.seq], m.receipt == handle.nonce else { return }
        queues[name]!.messages[handle.seq] = nil
        changes.append(.deleteMessage(handle.seq))
    }

    public mutating func deleteMessageBatch(_ url: String, _ entries: [BatchHandleEntry], changes: inout [StoreChange]) throws(QueueError) -> HandleBatchResponse {
        let name = try name(fromURL: url)
        try Self.validateBatch(entries.map(\.Id))
        var response = HandleBatchResponse(Successful: [], Failed: [])
        for entry in entries {
            do {
                try deleteMessage(in: name, receiptHandle: entry.ReceiptHandle, changes: &changes)
                response.Successful.append(IdOnly(Id: entry.Id))
            } catch {
                response.Failed.append(BatchResultErrorEntry(Id: entry.Id, SenderFault: true, Code: error.code, Message: error.message))
            }
        }
        return response
    }

    /// Sets a received message's remaining invisibility, counted from now.
    public mutating func changeMessageVisibility(_ url: String, receiptHandle: String, timeout: Int, now: Int64,
                                                 changes: inout [StoreChange]) throws(QueueError) {
        let name = try name(fromURL: url)
        try changeVisibility(in: name, receiptHandle: receiptHandle, timeout: timeout, now: now, changes: &changes)
    }

    private mutating func changeVisibility(in name: String, receiptHandle: String, timeout: Int, now: Int64,
                                           changes: inout [StoreChange]) throws(QueueError) {
        guard (0...43_200).contains(timeout) else {
            throw QueueError(.invalidParameterValue, "Value \(timeout) for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200.")
        }
        guard let handle = ReceiptHandle(receiptHandle) else {
            throw QueueError(.receiptHandleIsInvalid, "The input receipt handle \"\(receiptHandle)\" is not a valid receipt handle.")
        }
        guard var m = queues[name]!.messages[handle.seq], m.receipt == handle.nonce, m.visibleAt > now else {
            throw QueueError(.messageNotInflight, "Message does not exist or is not available for visibility timeout change.")
        }
        m.visibleAt = now + Int64(timeout) * 1000
        queues[name]!.messages[handle.seq] = m
        queues[name]!.schedule(m, now: now)
        changes.append(.putMessage(m))
    }

    public mutating func changeMessageVisibilityBatch(_ url: String, _ entries: [BatchHandleEntry], now: Int64,
                                                      changes: inout [StoreChange]) throws(QueueError) -> HandleBatchResponse {
        let name = try name(fromURL: url)
        try Self.validateBatch(entries.map(\.Id))
        var response = HandleBatchResponse(Successful: [], Failed: [])
        for entry in entries {
            do throws(QueueError) {
                guard let timeout = entry.VisibilityTimeout else {
                    throw QueueError(.missingParameter, "The request must contain the parameter VisibilityTimeout.")
                }
                try changeVisibility(in: name, receiptHandle: entry.ReceiptHandle, timeout: timeout, now: now, changes: &changes)
                response.Successful.append(IdOnly(Id: entry.Id))
            } catch {
                response.Failed.append(BatchResultErrorEntry(Id: entry.Id, SenderFault: true, Code: error.code, Message: error.message))
            }
        }
        return response
    }

    // MARK: Retention

    /// Drops messages older than their queue's retention period, and idempotency keys older than
    /// their window.
    public mutating func expire(now: Int64, changes: inout [StoreChange]) {
        forgetIdempotentSends(now: now, changes: &changes)
        for name in queues.keys {
            let retention = Int64(queues[name]!.record.attributes.messageRetentionPeriod) * 1000
            for (seq, m) in queues[name]!.messages where m.sentTimestamp + retention <= now {
                queues[name]!.messages[seq] = nil
                changes.append(.deleteMessage(seq))
            }
        }
    }
}

/// A receipt handle: the message's sequence number and the nonce of this receive, opaque to clients.
struct ReceiptHandle {
    var seq: Int64
    var nonce: String

    var encoded: String { Data("nq1:\(seq):\(nonce)".utf8).base64EncodedString() }

    init(seq: Int64, nonce: String) {
        self.seq = seq
        self.nonce = nonce
    }

    init?(_ text: String) {
        guard text.utf8.count <= 1024, let data = Data(base64Encoded: text) else { return nil }
        let parts = String(decoding: data, as: UTF8.self).split(separator: ":")
        guard parts.count == 3, parts[0] == "nq1", let seq = Int64(parts[1]), !parts[2].isEmpty else { return nil }
        self.seq = seq
        self.nonce = String(parts[2])
    }
}
