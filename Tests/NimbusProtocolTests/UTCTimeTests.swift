import Foundation
import Testing
@testable import NimbusProtocol

/// The computed timestamps must read exactly as Foundation's formatters write them.
@Suite struct UTCTimeTests {
    static let instants: [Double] = [0, 0.001, 59.999, 951_782_400, 951_868_799.5, 1_704_067_199.999, 1_795_705_841.123, 4_102_444_800.25,
                                     -1, -86_400.5]
        + (0..<200).map { Double($0) * 7_919_123.457 }

    @Test(arguments: instants)
    func iso8601MatchesFoundation(seconds: Double) {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let ours = UTCTime.iso8601(seconds: seconds)
        // Foundation rounds the fraction to the nearest millisecond, we truncate: compare to the millisecond below.
        let truncated = (seconds * 1000).rounded(.down) / 1000
        #expect(ours == formatter.string(from: Date(timeIntervalSince1970: truncated)))
    }

    @Test(arguments: instants)
    func rfc5322MatchesFoundation(seconds: Double) {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
        #expect(UTCTime.rfc5322(seconds: seconds) == formatter.string(from: Date(timeIntervalSince1970: seconds.rounded(.down))))
    }

    @Test func compactDates() {
        #expect(UTCTime.compactDate(days: 0) == "19700101")
        #expect(UTCTime.compactDate(days: 11_016) == "20000229")
        #expect(UTCTime.compactDate(days: -1) == "19691231")
    }
}

@Suite struct HexTests {
    @Test func lowerCaseTwoDigitsPerByte() {
        #expect(Hex.encode([0x00, 0x0f, 0xa0, 0xff]) == "000fa0ff")
        #expect(Hex.encode([UInt8]()) == "")
        let random = Hex.random(bytes: 16)
        #expect(random.count == 32 && random.allSatisfy { "0123456789abcdef".contains($0) })
        #expect(Hex.random(bytes: 5).count == 10)
    }

    @Test func sixteenBytesReadAsTheUUIDFoundationReads() {
        let bytes: [UInt8] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x46, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]
        let text = bytes.withUnsafeBytes { Hex.uuid($0) }
        #expect(text == "00112233-4455-4677-8899-aabbccddeeff")
        #expect(UUID(uuidString: text)?.uuidString.lowercased() == text)
    }
}
