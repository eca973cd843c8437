import Foundation

/// UTC timestamps as AWS and mail write them, computed rather than through DateFormatter, which
/// builds an ICU formatter per call (tens of microseconds: a quarter of the notifier's CPU once).
public enum UTCTime {
    /// Year, month (1...12) and day (1...31) of a day count since 1970-01-01 (Howard Hinnant's
    /// civil-from-days).
    public static func civil(days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// The day count since 1970-01-01 of a civil date (Howard Hinnant's days-from-civil).
    public static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// `2026-07-01T12:00:00Z` (whole seconds), as the query protocol writes timestamps; with
    /// `compact`, `20260701T120000Z`, as SigV4's X-Amz-Date.
    public static func iso8601(wholeSeconds seconds: Int, compact: Bool = false) -> String {
        let (days, secondOfDay) = floorDivision(seconds, 86_400)
        let (y, m, d) = civil(days: days)
        var out: [UInt8] = []
        out.reserveCapacity(20)
        pad(y, 4, &out)
        if !compact { out.append(0x2D) }
        pad(m, 2, &out)
        if !compact { out.append(0x2D) }
        pad(d, 2, &out)
        out.append(0x54)
        if compact {
            pad(secondOfDay / 3600, 2, &out); pad(secondOfDay / 60 % 60, 2, &out); pad(secondOfDay % 60, 2, &out)
        } else {
            clock(secondOfDay, &out)
        }
        out.append(0x5A)
        return String(decoding: out, as: UTF8.self)
    }

    /// `yyyymmdd` of a day count since 1970-01-01.
    public static func compactDate(days: Int) -> String {
        let (y, m, d) = civil(days: days)
        var out: [UInt8] = []
        out.reserveCapacity(8)
        pad(y, 4, &out); pad(m, 2, &out); pad(d, 2, &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// `2026-07-01T12:00:00.123Z` (milliseconds truncated), as SNS and IAM write timestamps.
    public static func iso8601(seconds: Double) -> String {
        let millis = Int((seconds * 1000).rounded(.down))
        let (days, ms) = floorDivision(millis, 86_400_000)
        let (y, m, d) = civil(days: days)
        var out: [UInt8] = []
        out.reserveCapacity(24)
        pad(y, 4, &out); out.append(0x2D); pad(m, 2, &out); out.append(0x2D); pad(d, 2, &out)
        out.append(0x54)
        clock(ms / 1000, &out)
        out.append(0x2E); pad(ms % 1000, 3, &out)
        out.append(0x5A)
        return String(decoding: out, as: UTF8.self)
    }

    /// `Tue, 01 Jul 2026 12:00:00 +0000` (RFC 5322 3.3), for a mail's Date header.
    public static func rfc5322(seconds: Double) -> String {
        let whole = Int(seconds.rounded(.down))
        let (days, secondOfDay) = floorDivision(whole, 86_400)
        let (y, m, d) = civil(days: days)
        var out: [UInt8] = []
        out.reserveCapacity(31)
        // 1970-01-01 was a Thursday.
        out.append(contentsOf: weekdays[((days % 7) + 7 + 4) % 7].utf8)
        out.append(contentsOf: ", ".utf8)
        pad(d, 2, &out); out.append(0x20)
        out.append(contentsOf: months[m - 1].utf8); out.append(0x20)
        pad(y, 4, &out); out.append(0x20)
        clock(secondOfDay, &out)
        out.append(contentsOf: " +0000".utf8)
        return String(decoding: out, as: UTF8.self)
    }

    static let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    private static func floorDivision(_ a: Int, _ b: Int) -> (Int, Int) {
        let q = a >= 0 ? a / b : -((-a + b - 1) / b)
        return (q, a - q * b)
    }

    private static func clock(_ secondOfDay: Int, _ out: inout [UInt8]) {
        pad(secondOfDay / 3600, 2, &out); out.append(0x3A)
        pad(secondOfDay / 60 % 60, 2, &out); out.append(0x3A)
        pad(secondOfDay % 60, 2, &out)
    }

    private static func pad(_ value: Int, _ width: Int, _ out: inout [UInt8]) {
        var digits: [UInt8] = []
        var rest = value
        repeat {
            digits.append(0x30 + UInt8(rest % 10))
            rest /= 10
        } while rest > 0
        for _ in digits.count..<max(width, digits.count) { out.append(0x30) }
        out.append(contentsOf: digits.reversed())
    }
}
