import Foundation
import NimbusProtocol
import Testing
@testable import TableCore

/// The hand-written DynamoDB JSON must say and read exactly what the Codable path does.
@Suite struct DynamoJSONTests {
    static let item: Item = [
        "orderID": .s("o-1 \"quoted\" ünï 🚀\n"),
        "count": .n("-12.50e3"),
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
        }
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
