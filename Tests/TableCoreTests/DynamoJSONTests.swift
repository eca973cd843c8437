import Foundation
import NimbusProtocol
import Testing
@testable import TableCore

/// The hand-written DynamoDB JSON must say and read exactly what the Codable path does.
@Suite struct DynamoJSONTests {
    static let item: Item = [
        "orderID": .s("o-1 \"quoted\" ünï 🚀\n"),
        "count": .n("-12500"),
        "blob": .b(Data([0, 1, 2, 255])),
        "flag": .bool(false), "yes": .bool(true), "nothing": .null,
        "map": .m(["inner": .l([.s("a"), .n("1"), .m([:])])]),
        "list": .l([]),
        "tags": .ss(["x", "y"]), "numbers": .ns(["1", "2.5"]), "blobs": .bs([Data([1]), Data([2])]),
    ]

    @Test func anItemWrittenByHandReadsBackThroughJSONDecoder() throws {
        #expect(try JSONDecoder().decode(Item.self, from: DynamoJSON.encode(Self.item)) == Self.item)
    }

    @Test func aStreamRecordWrittenByHandReadsBackThroughJSONDecoder() throws {
        for newImage in [Self.item, nil] as [Item?] {
            let record = StreamRecord(eventID: "e-1", eventName: "INSERT", awsRegion: "us-east-1",
                                      dynamodb: .init(ApproximateCreationDateTime: 1_795_705_841.123, Keys: ["orderID": .s("o-1")], NewImage: newImage,
                                                      OldImage: newImage == nil ? ["orderID": .s("o-0")] : nil, SequenceNumber: "000000000000000000042",
                                                      SizeBytes: 77, StreamViewType: "NEW_AND_OLD_IMAGES"),
                                      eventSourceARN: "arn:aws:dynamodb:us-east-1:000000000000:table/orders/stream/x", shard: 0)
            #expect(try JSONDecoder().decode(StreamRecord.self, from: record.jsonData()) == record)
            // The store hands over the item's JSON it just wrote, to be used as NewImage as it is.
            if let newImage {
                #expect(record.jsonData(newImageJSON: DynamoJSON.encode(newImage)) == record.jsonData())
            }
        }
    }

    @Test func eventIDsAre32HexDigitsAndUniqueSequenceNumbersAreZeroPadded() throws {
        var tables = Tables(region: "us-east-1", account: "000000000000", eventIDPrefix: "00112233aabbccdd")
        var changes: [TableChange] = []
        let table = try tables.createTable(name: "ids", partitionKey: .init(name: "k", type: "S"), sortKey: nil, streamViewType: "KEYS_ONLY",
                                           shards: 1, now: 0, changes: &changes)
        for i in 0..<20 { _ = try tables.putItem("ids", ["k": .s("\(i)")], condition: nil, now: 0, changes: &changes) }
        let records = changes.compactMap { change -> StreamRecord? in
            if case .appendRecord(_, let record) = change { return record } else { return nil }
        }
        #expect(records.count == 20)
        #expect(Set(records.map(\.eventID)).count == 20)
        #expect(records.allSatisfy { $0.eventID.count == 32 && $0.eventID.hasPrefix("00112233aabbccdd") && $0.eventID.allSatisfy(\.isHexDigit) })
        #expect(records.last?.eventID == "00112233aabbccdd0000000000000014")
        #expect(records.map(\.dynamodb.SequenceNumber).first == "000000000000000000001")
        #expect(Tables.sequenceNumber(shard: 3, counter: 12_345_678_901_234_567_890) == "312345678901234567890")
        #expect(records.allSatisfy { $0.eventSourceARN == "arn:aws:dynamodb:us-east-1:000000000000:table/ids/stream/\(table.streamLabel!)" })
    }

    @Test(arguments: [
        #"{"S":"x"}"#, #"{"N":" 42 "}"#, #"{"N":"1E+2"}"#, #"{"B":"AAEC"}"#, #"{"M":{"a":{"L":[{"S":"b"},{"NS":["1","2"]}]}}}"#,
        #"{"SS":["a","b"]}"#, #"{"BS":["AA==","AQ=="]}"#, #"{"L":[]}"#, #"{"M":{}}"#,
    ])
    func validValuesReadAsTheCodablePathReadsThem(text: String) throws {
        let expected = try JSONDecoder().decode(AttributeValue.self, from: Data(text.utf8))
        let fast = try #require(StringJSON.parse(Data(text.utf8)).flatMap(DynamoJSON.value))
        #expect(fast == expected)
    }

    @Test(arguments: [
        #"{"N":"12abc"}"#, #"{"N":"1e200"}"#, #"{"B":"%%%"}"#, #"{"SS":[]}"#, #"{"SS":["a","a"]}"#, #"{"NS":["1","1.0"]}"#,
        #"{"S":"a","N":"1"}"#, #"{}"#, #"{"X":"y"}"#, #"{"S":["not a string"]}"#, #"{"M":{"a":{"N":"x"}}}"#,
    ])
    func invalidValuesAreLeftToTheCodablePath(text: String) {
        #expect(StringJSON.parse(Data(text.utf8)).flatMap(DynamoJSON.value) == nil)
        #expect(throws: (any Error).self) { try JSONDecoder().decode(AttributeValue.self, from: Data(text.utf8)) }
    }
}
