import Crypto
import Foundation
import NimbusAuth
import Testing
@testable import EdgeService

/// Signature V4 against AWS's published example (the SigV4 test suite's "get-vanilla": AKIDEXAMPLE,
/// 2015-08-30 12:36:00 UTC, us-east-1, service "service"), and the refusals a caller can meet.
@Suite struct SigV4Tests {
    static let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    static let headers = [
        "host": "example.amazonaws.com",
        "x-amz-date": "20150830T123600Z",
        "authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    ]

    @Test func awsExampleVerifies() throws {
        let request = try SigV4Request.parse(headers: Self.headers, query: [])
        #expect(request.accessKeyId == "AKIDEXAMPLE" && request.region == "us-east-1" && request.service == "service")
        #expect(request.canonicalRequest(method: "GET", rawPath: "/", rawQuery: "", headers: Self.headers, body: Data()) == """
            GET
            /

            host:example.amazonaws.com
            x-amz-date:20150830T123600Z

            host;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        let key = AWSSigningKey.derive(secret: Self.secret, date: "20150830", region: "us-east-1", service: "service")
        #expect(request.verify(signingKey: key, method: "GET", rawPath: "/", rawQuery: "", headers: Self.headers, body: Data()))
        // Anything signed that changes breaks it: the method, a header, the body, the key.
        #expect(!request.verify(signingKey: key, method: "POST", rawPath: "/", rawQuery: "", headers: Self.headers, body: Data()))
        var moved = Self.headers
        moved["host"] = "elsewhere.amazonaws.com"
        #expect(!request.verify(signingKey: key, method: "GET", rawPath: "/", rawQuery: "", headers: moved, body: Data()))
        #expect(!request.verify(signingKey: key, method: "GET", rawPath: "/", rawQuery: "", headers: Self.headers, body: Data("x".utf8)))
        let other = AWSSigningKey.derive(secret: "not it", date: "20150830", region: "us-east-1", service: "service")
        #expect(!request.verify(signingKey: other, method: "GET", rawPath: "/", rawQuery: "", headers: Self.headers, body: Data()))
    }

    @Test func queryParametersAreSortedAndEncodedAsAWSDoes() throws {
        let request = try SigV4Request.parse(headers: Self.headers, query: [])
        let canonical = request.canonicalRequest(method: "GET", rawPath: "/a b/%C3%A9", rawQuery: "Param2=value2&Param1=value%201&b=+x",
                                                 headers: Self.headers, body: Data())
        let lines = canonical.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines[1] == "/a%20b/%25C3%25A9", "a path's % is encoded again, as the SDKs do for services other than S3")
        #expect(lines[2] == "Param1=value%201&Param2=value2&b=%20x")
    }

    @Test func timeIsCheckedAgainstFifteenMinutesAndPresignedExpiry() throws {
        let request = try SigV4Request.parse(headers: Self.headers, query: [])
        let at = try request.time()
        #expect(at == 1_440_938_160)
        try request.checkTime(nowSeconds: at + 899)
        #expect(throws: SigV4Request.Failure.self) { try request.checkTime(nowSeconds: at + 901) }
        #expect(throws: SigV4Request.Failure.self) { try request.checkTime(nowSeconds: at - 901) }

        let presigned = try SigV4Request.parse(headers: ["host": "h"], query: [
            ("Action", "ListQueues"), ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
            ("X-Amz-Credential", "AKID/20150830/us-east-1/sqs/aws4_request"), ("X-Amz-Date", "20150830T123600Z"),
            ("X-Amz-Expires", "60"), ("X-Amz-SignedHeaders", "host"), ("X-Amz-Signature", "00"),
        ])
        #expect(presigned.presigned && presigned.service == "sqs")
        try presigned.checkTime(nowSeconds: at + 59)
        #expect(throws: SigV4Request.Failure.self) { try presigned.checkTime(nowSeconds: at + 61) }
        let canonical = presigned.canonicalRequest(method: "GET", rawPath: "/", rawQuery: "Action=ListQueues&X-Amz-Signature=00",
                                                   headers: ["host": "h"], body: Data())
        #expect(!canonical.contains("X-Amz-Signature"))
        #expect(canonical.hasSuffix("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "botocore signs the empty body's hash")
        #expect(presigned.canonicalRequest(method: "GET", rawPath: "/", rawQuery: "", headers: ["host": "h"], body: Data(),
                                           unsignedPayload: true).hasSuffix("UNSIGNED-PAYLOAD"))
    }

    @Test func theSignatureMustCoverWhatTheRequestMeans() throws {
        let request = try SigV4Request.parse(headers: Self.headers, query: [])
        try request.checkCoverage(headers: Self.headers, rawBody: Data("{}".utf8))
        // An unsigned X-Amz-Target would let a signature be replayed as another operation.
        var retargeted = Self.headers
        retargeted["x-amz-target"] = "DynamoDB_20120810.DeleteTable"
        #expect(throws: SigV4Request.Failure.self) { try request.checkCoverage(headers: retargeted, rawBody: Data()) }
        // A declared payload hash must be the body's, and only an empty body may go unsigned.
        var declared = Self.headers
        declared["x-amz-content-sha256"] = SigV4Request.hexSHA256(Data())
        #expect(throws: SigV4Request.Failure.self) { try request.checkCoverage(headers: declared, rawBody: Data("{}".utf8)) }
        try request.checkCoverage(headers: declared, rawBody: Data())
        declared["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
        #expect(throws: SigV4Request.Failure.self) { try request.checkCoverage(headers: declared, rawBody: Data("x".utf8)) }
        let hostless = try SigV4Request.parse(headers: ["x-amz-date": "20150830T123600Z", "authorization":
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=x-amz-date, Signature=00"], query: [])
        #expect(throws: SigV4Request.Failure.self) { try hostless.checkCoverage(headers: Self.headers, rawBody: Data()) }
    }

    @Test func presignedLifetimesAndScopeDaysAreBounded() throws {
        let at: Int64 = 1_440_938_160
        for expires in ["0", "604801", "9223372036854775807", "-9223372036854775808"] {
            let presigned = try SigV4Request.parse(headers: ["host": "h"], query: [
                ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"), ("X-Amz-Credential", "AKID/20150830/us-east-1/sqs/aws4_request"),
                ("X-Amz-Date", "20150830T123600Z"), ("X-Amz-Expires", expires), ("X-Amz-SignedHeaders", "host"), ("X-Amz-Signature", "00"),
            ])
            #expect(throws: SigV4Request.Failure.self) { try presigned.checkTime(nowSeconds: at) }
        }
        var otherDay = Self.headers
        otherDay["x-amz-date"] = "20150831T000100Z"
        let request = try SigV4Request.parse(headers: otherDay, query: [])
        #expect(throws: SigV4Request.Failure.self) { try request.checkTime(nowSeconds: at + 86_400) }
    }

    @Test func unreadableSignaturesAreRefusedWithAWSsWords() {
        #expect(throws: SigV4Request.Failure.self) { try SigV4Request.parse(headers: [:], query: []) }
        #expect(throws: SigV4Request.Failure.self) {
            try SigV4Request.parse(headers: ["authorization": "AWS4-HMAC-SHA256 Credential=AKID/2015/us-east-1/sqs/aws4_request"], query: [])
        }
        #expect(throws: SigV4Request.Failure.self) {
            try SigV4Request.parse(headers: ["authorization": "AWS AKID:sig", "x-amz-date": "20150830T123600Z"], query: [])
        }
        #expect(SigV4Request.seconds(amzDate: "20151330T123600Z") == nil)
        #expect(EdgeAuthenticator.refusal(.init(kind: .expired, message: "Signature expired")).code == "RequestExpired")
    }

    @Test func gzipBodiesInflateWithinTheirLimit() throws {
        // `printf 'hello hello hello' | gzip -n`
        let gz = Data([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0xc8, 0x40, 0x90, 0x00,
                       0x80, 0x88, 0xf9, 0xe5, 0x11, 0x00, 0x00, 0x00])
        #expect(String(decoding: try Gzip.inflate(gz, limit: 100), as: UTF8.self) == "hello hello hello")
        #expect(throws: Gzip.TooLarge.self) { try Gzip.inflate(gz, limit: 5) }
        #expect(throws: Gzip.Corrupt.self) { try Gzip.inflate(gz.prefix(12), limit: 100) }
    }

    @Test func jsonErrorsAreShapedPerService() throws {
        let sqs = JSONService.sqs.error(EdgeError("AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist."), requestID: "r")
        #expect(sqs.headers.contains { $0 == ("x-amzn-query-error", "AWS.SimpleQueueService.NonExistentQueue;Sender") })
        let body = try JSONSerialization.jsonObject(with: sqs.body) as? [String: String]
        #expect(body?["__type"] == "com.amazonaws.sqs#QueueDoesNotExist")
        let dynamo = JSONService.dynamodb.error(EdgeError("InvalidClientTokenId", "bad", status: 403), requestID: "r")
        #expect((try JSONSerialization.jsonObject(with: dynamo.body) as? [String: String])?["__type"]
            == "com.amazonaws.dynamodb.v20120810#UnrecognizedClientException")
        #expect(JSONService.parse(target: "DynamoDBStreams_20120810.GetRecords")! == (.streams, "GetRecords"))
        #expect(JSONService.parse(target: "Nope.GetRecords") == nil)
    }
}
