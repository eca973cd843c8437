import Foundation
@testable import FunctionRuntime
@testable import LabFunctions
import Logging
import NimbusProtocol
import NimbusStack
import Synchronization
import TableCore
import Testing

/// A stand-in for the cluster: DynamoDB calls go to a real in-memory `Tables` core, SNS publishes are
/// recorded, and chosen calls fail.
final class FakeServices: ServiceCalling {
    let tables = Mutex(Tables(region: "us-east-1", account: "000000000000"))
    let published = Mutex<[[String: String]]>([])
    let failing = Mutex<Set<String>>([])  // items (orderID) / messages whose calls fail
    let transactions = Mutex(0)  // TransactWriteItems calls, applied or not

    init() throws {
        var changes: [TableChange] = []
        try tables.withLock { t in
            for (name, key) in [("orders", "orderID"), ("leases", "leaseKey")] {
                _ = try t.createTable(name: name, partitionKey: .init(name: key, type: "S"), sortKey: nil, streamViewType: nil, shards: 1,
                                      now: 0, changes: &changes)
            }
        }
    }

    struct Write: Decodable {
        var TableName: String
        var Item: Item?
        var Key: Item?
        var UpdateExpression: String?
        var ConditionExpression: String?
        var ExpressionAttributeNames: [String: String]?
        var ExpressionAttributeValues: [String: AttributeValue]?
    }

    /// As over the wire: a service's AWS error arrives as a `WireError` with its code.
    func call(_ action: String, body: Data, timeout: Duration) async throws -> Data {
        do { return try serve(action, body) } catch let error as TableError { throw WireError(code: error.code, message: error.message) }
    }

    func serve(_ action: String, _ body: Data) throws -> Data {
        var changes: [TableChange] = []
        switch action {
        case "dynamodb:PutItem":
            let w = try JSONDecoder().decode(Write.self, from: body)
            if case .s(let id)? = w.Item?["orderID"], failing.withLock({ $0.contains(id) }) { throw WireError(.internalFailure, "injected") }
            let condition = try w.ConditionExpression.map { try ConditionParser.parse($0, names: w.ExpressionAttributeNames, values: w.ExpressionAttributeValues) }
            _ = try tables.withLock { t in try t.putItem(w.TableName, w.Item!, condition: condition, now: 1, changes: &changes) }
            return Data("{}".utf8)
        case "dynamodb:TransactWriteItems":
            struct Transaction: Decodable { struct Entry: Decodable { var Put: Write }; var TransactItems: [Entry] }
            let puts = try JSONDecoder().decode(Transaction.self, from: body).TransactItems.map(\.Put)
            transactions.withLock { $0 += 1 }
            if puts.contains(where: { if case .s(let id)? = $0.Item?["orderID"] { failing.withLock { $0.contains(id) } } else { false } }) {
                throw WireError(.internalFailure, "injected")
            }
            let actions = try puts.map { w in
                Tables.TransactWrite.put(table: w.TableName, item: w.Item!, condition: try w.ConditionExpression.map {
                    try ConditionParser.parse($0, names: w.ExpressionAttributeNames, values: w.ExpressionAttributeValues)
                })
            }
            try tables.withLock { t in try t.transactWrite(actions, now: 1, changes: &changes) }
            return Data("{}".utf8)
        case "dynamodb:UpdateItem":
            let w = try JSONDecoder().decode(Write.self, from: body)
            let update = try UpdateParser.parse(w.UpdateExpression!, names: w.ExpressionAttributeNames, values: w.ExpressionAttributeValues)
            let condition = try w.ConditionExpression.map {
                try ConditionParser.parseKeepingPlaceholders($0, names: w.ExpressionAttributeNames, values: w.ExpressionAttributeValues).condition
            }
            let (_, new) = try tables.withLock { t in try t.updateItem(w.TableName, key: w.Key!, update: update.expression, condition: condition, now: 1, changes: &changes) }
            return try JSONEncoder().encode(["Attributes": new ?? [:]])
        case "sns:PublishBatch":
            struct Batch: Decodable { var TopicArn: String; var PublishBatchRequestEntries: [[String: String]] }
            let batch = try JSONDecoder().decode(Batch.self, from: body)
            var failed: [[String: String]] = []
            for entry in batch.PublishBatchRequestEntries {
                if failing.withLock({ $0.contains(entry["MessageDeduplicationId"] ?? "") }) {
                    failed.append(["Id": entry["Id"]!, "Code": "InternalError", "Message": "injected"])
                } else {
                    published.withLock { $0.append(entry.merging(["TopicArn": batch.TopicArn]) { a, _ in a }) }
                }
            }
            return try JSONEncoder().encode(["Successful": [[String: String]](), "Failed": failed])
        case "sns:Publish":
            let p = try JSONDecoder().decode([String: String].self, from: body)
            if failing.withLock({ $0.contains(p["MessageDeduplicationId"] ?? "") }) { throw WireError(.internalFailure, "injected") }
            published.withLock { $0.append(p) }
            return Data(#"{"MessageId":"m"}"#.utf8)
        default:
            throw WireError(.invalidAction, action)
        }
    }

    func item(_ id: String) -> Item? { tables.withLock { try? $0.getItem("orders", key: ["orderID": .s(id)]) } }
    var itemCount: Int { tables.withLock { $0.itemCount("orders") } }
}

func context(_ services: FakeServices, environment: [String: String] = [:]) -> FunctionContext {
    FunctionContext(functionName: "f", functionARN: "arn:aws:lambda:us-east-1:000000000000:function:f", environment: environment,
                    region: "us-east-1", account: "000000000000", logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() },
                    services: services)
}

func sqsRecord(_ id: String, _ body: String) -> SQSEvent.Record {
    SQSEvent.Record(messageId: id, receiptHandle: "h-\(id)", body: body, attributes: [:], md5OfBody: "", eventSourceARN: "arn:aws:sqs:us-east-1:000000000000:POC-Queue", awsRegion: "us-east-1")
}

@Suite struct IngestOrdersTests {
    @Test func orderIDsAreStableVersion5UUIDsOfTheMessageID() {
        let a = IngestOrders.orderID(forMessage: "m-1")
        #expect(a == IngestOrders.orderID(forMessage: "m-1"))
        #expect(a != IngestOrders.orderID(forMessage: "m-2"))
        #expect(UUID(uuidString: a) != nil)
        #expect(Array(a)[14] == "5")
        #expect("89ab".contains(Array(a)[19]))
        // Pinned (Python's uuid over the same SHA-1): the id must not change between versions.
        #expect(a == "487fa997-2180-5dba-8b8d-0e482e8d10c0")
    }

    /// The poller's ReceiveMessage request, written by hand, says what JSONEncoder would.
    @Test func theReceiveRequestIsWrittenAsJSONEncoderWritesIt() throws {
        let receive = Receive(QueueUrl: "https://sqs.us-east-1.amazonaws.com/000000000000/POC-Queue", MaxNumberOfMessages: 10, WaitTimeSeconds: 5)
        let fast = try #require(receive.handWrittenJSON)
        #expect(try JSONSerialization.jsonObject(with: fast) as? NSDictionary == JSONSerialization.jsonObject(with: JSONEncoder().encode(receive)) as? NSDictionary)
        var other = receive
        other.AttributeNames = ["SentTimestamp"]
        #expect(other.handWrittenJSON == nil)
    }

    /// The stream worker's PublishBatch request and its `{"default": ...}` messages, written by hand,
    /// say what JSONEncoder would (the messages byte for byte: they are what subscribers receive).
    @Test func thePublishBatchIsWrittenAsJSONEncoderWritesIt() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for image in [#"{"order":{"S":"{\"item\": \"latex gloves\"} a/b ✓ 🚀 \\ \n"},"orderID":{"S":"o-1"}}"#, "{}", ""] {
            #expect(NotifyOrders.defaultMessage(image) == String(decoding: try encoder.encode(["default": image]), as: UTF8.self))
        }
        let batch = PublishBatch(TopicArn: "arn:aws:sns:us-east-1:000000000000:POC-Topic", PublishBatchRequestEntries: [
            PublishEntry(Id: "r0", Message: NotifyOrders.defaultMessage(#"{"a":"\"q\""}"#), MessageDeduplicationId: "e-0"),
            PublishEntry(Id: "r1", Message: "{}", MessageDeduplicationId: "e-1"),
        ])
        let fast = try #require(batch.handWrittenJSON)
        #expect(try JSONSerialization.jsonObject(with: fast) as? NSDictionary == JSONSerialization.jsonObject(with: JSONEncoder().encode(batch)) as? NSDictionary)
    }

    /// The hand-written PutItem and TransactWriteItems requests say what JSONEncoder would.
    @Test func thePutItemAndTransactionRequestsAreWrittenAsJSONEncoderWritesThem() throws {
        let put = IngestOrders.Put(TableName: "orders", Item: ["orderID": .s("o-1"), "order": .s(#"{"item": "gloves \ \"x\" ✓"}"#)])
        let other = IngestOrders.Put(TableName: "orders", Item: ["orderID": .s("o-2"), "order": .s("{}")])
        for request in [put, IngestOrders.Transaction(puts: [put, other])] as [any HandWrittenRequest] {
            let fast = try #require(request.handWrittenJSON)
            let viaFast = try JSONSerialization.jsonObject(with: fast) as? NSDictionary
            let viaEncoder = try JSONSerialization.jsonObject(with: JSONEncoder().encode(request)) as? NSDictionary
            #expect(viaFast != nil && viaFast == viaEncoder)
        }
    }

    @Test func redeliveryWritesNoSecondOrderAndFailuresAreReportedPerRecord() async throws {
        let services = try FakeServices()
        let f = IngestOrders()
        let body = #"{"item": "latex gloves", "customerID": "12345"}"#
        let first = try await f.handle(SQSEvent(Records: [sqsRecord("m-1", body), sqsRecord("m-2", "b")]), context: context(services))
        #expect(first.batchItemFailures.isEmpty)
        #expect(services.itemCount == 2)
        #expect(services.transactions.withLock { $0 } == 1, "a batch goes to the table as one transaction")
        #expect(services.item(IngestOrders.orderID(forMessage: "m-1"))?["order"] == .s(body))
        // The same message again (at-least-once delivery): success, still two orders.
        let again = try await f.handle(SQSEvent(Records: [sqsRecord("m-1", body)]), context: context(services))
        #expect(again.batchItemFailures.isEmpty && services.itemCount == 2)
        // In a batch, it cancels the batch's transaction; written one by one, the new order lands.
        let mixed = try await f.handle(SQSEvent(Records: [sqsRecord("m-1", body), sqsRecord("m-5", "e")]), context: context(services))
        #expect(mixed.batchItemFailures.isEmpty && services.itemCount == 3)
        #expect(services.transactions.withLock { $0 } == 2)
        // One record's write fails: only it is reported.
        _ = services.failing.withLock { $0.insert(IngestOrders.orderID(forMessage: "m-4")) }
        let partial = try await f.handle(SQSEvent(Records: [sqsRecord("m-3", "c"), sqsRecord("m-4", "d")]), context: context(services))
        #expect(partial.failedIdentifiers == ["m-4"])
        #expect(services.itemCount == 4)
    }
}

@Suite struct NotifyOrdersTests {
    func record(_ n: Int, _ name: String = "INSERT") -> DynamoDBStreamEvent.Record {
        .init(eventID: "e\(n)", eventName: name, eventVersion: "1.1", eventSource: "aws:dynamodb", awsRegion: "us-east-1", eventSourceARN: "arn",
              dynamodb: .init(ApproximateCreationDateTime: 1, Keys: ["orderID": .s("o\(n)")],
                              NewImage: name == "REMOVE" ? nil : ["orderID": .s("o\(n)"), "order": .s("x")],
                              OldImage: nil, SequenceNumber: String(format: "%021d", n), SizeBytes: 10, StreamViewType: "NEW_IMAGE"))
    }

    @Test func publishesInsertsAsTheLabDoesWithTheEventIDForDeduplication() async throws {
        let services = try FakeServices()
        let topic = "arn:aws:sns:us-east-1:000000000000:POC-Topic"
        let out = try await NotifyOrders().handle(DynamoDBStreamEvent(Records: [record(1), record(2, "MODIFY"), record(3, "REMOVE")]),
                                                  context: context(services, environment: ["TOPIC_ARN": topic]))
        #expect(out.batchItemFailures.isEmpty)
        let sent = services.published.withLock { $0 }
        #expect(sent.count == 1)
        #expect(sent[0]["TopicArn"] == topic && sent[0]["MessageStructure"] == "json" && sent[0]["MessageDeduplicationId"] == "e1")
        let message = try JSONDecoder().decode([String: String].self, from: Data(sent[0]["Message"]!.utf8))
        let image = try JSONDecoder().decode(Item.self, from: Data(message["default"]!.utf8))
        #expect(image == ["orderID": .s("o1"), "order": .s("x")])
    }

    @Test func failuresAreReportedInStreamOrder() async throws {
        let services = try FakeServices()
        services.failing.withLock { $0.formUnion(["e3", "e2"]) }
        let out = try await NotifyOrders().handle(DynamoDBStreamEvent(Records: (1...4).map { record($0) }),
                                                  context: context(services, environment: ["TOPIC_ARN": "t"]))
        #expect(out.failedIdentifiers == [String(format: "%021d", 2), String(format: "%021d", 3)])
        await #expect(throws: WireError.self) { try await NotifyOrders().handle(DynamoDBStreamEvent(Records: [record(1)]), context: context(services)) }
    }
}

@Suite struct StreamLeasesTests {
    @Test func oneOwnerAtATimeAndExpiredLeasesAreTakenOver() async throws {
        let services = try FakeServices()
        let now = Mutex(100.0)
        let clock: @Sendable () -> Double = { now.withLock { $0 } }
        let a = StreamLeases(table: "leases", owner: "a", duration: 10, services: services, clock: clock)
        let b = StreamLeases(table: "leases", owner: "b", duration: 10, services: services, clock: clock)
        let lease = try await a.acquire("k")
        #expect(lease?.checkpoint == nil && lease?.counter == 1)
        #expect(try await b.acquire("k") == nil)
        #expect(try await a.checkpoint("k", sequence: "0001"))
        now.withLock { $0 = 125 }  // a's lease has expired
        let taken = try await b.acquire("k")
        #expect(taken?.checkpoint == "0001" && taken?.counter == 2)
        // a lost it: its checkpoint is refused.
        #expect(try await a.checkpoint("k", sequence: "0002") == false)
        await b.release("k")
        #expect(try await a.acquire("k")?.checkpoint == "0001")
    }
}

@Suite struct FunctionDefinitionTests {
    @Test func theLabStackDeclaresBothFunctionsAndTheirTriggers() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../stacks/poc-lab.yaml").standardizedFileURL.path
        let template = try StackTemplate.load(path: path)
        let resolver = StackResolver(template: template, region: "us-east-1", account: "000000000000",
                                     getAtt: { id, attribute in attribute == "StreamArn" ? "arn:aws:dynamodb:us-east-1:000000000000:table/orders/stream/L" : nil })
        let ingest = try FunctionDefinition.load("POC-Lambda-1", template: template, resolver: resolver)
        #expect(ingest.roleARN == "arn:aws:iam::000000000000:role/Lambda-SQS-DynamoDB")
        #expect(ingest.environment["TABLE_NAME"] == "orders")
        #expect(ingest.mappings.count == 1)
        #expect(ingest.mappings[0].eventSourceARN == "arn:aws:sqs:us-east-1:000000000000:POC-Queue")
        #expect(ingest.mappings[0].batchSize == 10 && ingest.mappings[0].reportBatchItemFailures && !ingest.mappings[0].isStream)
        let notify = try FunctionDefinition.load("POC-Lambda-2", template: template, resolver: resolver)
        #expect(notify.environment["TOPIC_ARN"] == "arn:aws:sns:us-east-1:000000000000:POC-Topic")
        #expect(notify.mappings.first?.isStream == true && notify.mappings.first?.batchSize == 100)
        #expect(notify.mappings.first?.startingPosition == "TRIM_HORIZON")
        #expect(throws: FunctionDefinitionError.self) { try FunctionDefinition.load("nope", template: template, resolver: resolver) }
    }

    @Test func badMappingsAreRefusedWithTheirReason() throws {
        let yaml = """
            Resources:
              F: {Type: AWS::Lambda::Function, Properties: {FunctionName: f}}
              M: {Type: AWS::Lambda::EventSourceMapping, Properties: {FunctionName: f, EventSourceArn: "arn:aws:dynamodb:r:a:table/t/stream/x", BatchSize: 5}}
            """
        let template = try StackTemplate.parse(yaml)
        let resolver = StackResolver(template: template, region: "r", account: "a")
        #expect { try FunctionDefinition.load("f", template: template, resolver: resolver) } throws: { error in
            "\(error)".contains("StartingPosition")
        }
    }
}
