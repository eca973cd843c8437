import Crypto
import Foundation
import NimbusProtocol

/// AWS Signature Version 4 as the SDKs sign an HTTP request (docs.aws.amazon.com, "Create a signed
/// AWS API request"), in an `Authorization` header or a presigned query string. Pure: the caller
/// hands the request's parts and, once it knows the access key, the derived signing key.
public struct SigV4Request: Sendable, Equatable {
    public var accessKeyId: String
    /// `yyyymmdd` of the credential scope.
    public var date: String
    public var region: String
    public var service: String
    public var signedHeaders: [String]
    public var signature: String
    /// `X-Amz-Date` (`yyyyMMddTHHmmssZ`).
    public var timestamp: String
    public var sessionToken: String?
    /// Presigned: the query string carries the signature, and the payload is not signed.
    public var presigned: Bool
    /// Presigned: seconds the signature is good for from `timestamp`.
    public var expires: Int?

    /// Why a request's signature information cannot be read, in AWS's words.
    public struct Failure: Error, Equatable, Sendable {
        public enum Kind: Sendable { case missing, incomplete, expired, mismatch, badDate }
        public var kind: Kind
        public var message: String
    }

    /// Reads the signature information: the `Authorization` header first, else the query string.
    /// `headers` are lower-cased names; `query` the decoded query parameters.
    public static func parse(headers: [String: String], query: [(String, String)]) throws(Failure) -> SigV4Request {
        if let authorization = headers["authorization"] {
            return try parseHeader(authorization, headers: headers)
        }
        if query.contains(where: { $0.0 == "X-Amz-Signature" }) {
            return try parsePresigned(query)
        }
        throw Failure(kind: .missing, message: "Request is missing Authentication Token")
    }

    static func parseHeader(_ value: String, headers: [String: String]) throws(Failure) -> SigV4Request {
        let trimmed = Self.trim(Substring(value))
        guard trimmed.hasPrefix("AWS4-HMAC-SHA256") else {
            throw Failure(kind: .incomplete, message: "Only AWS4-HMAC-SHA256 (Signature Version 4) is supported, not \(trimmed.split(separator: " ").first ?? "")")
        }
        var fields: [String: String] = [:]
        for part in trimmed.dropFirst("AWS4-HMAC-SHA256".count).split(separator: ",") {
            let pair = Self.trim(part).split(separator: "=", maxSplits: 1).map(String.init)
            if pair.count == 2 { fields[pair[0]] = pair[1] }
        }
        guard let credential = fields["Credential"], let signed = fields["SignedHeaders"], let signature = fields["Signature"] else {
            let missing = ["Credential", "SignedHeaders", "Signature"].filter { fields[$0] == nil }
            throw Failure(kind: .incomplete, message: "Authorization header requires \(missing.map { "'\($0)'" }.joined(separator: ", ")) parameter(s). Authorization=\(value)")
        }
        guard let timestamp = headers["x-amz-date"] ?? headers["date"].flatMap(Self.amzDate(fromHTTPDate:)) else {
            throw Failure(kind: .incomplete, message: "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
        }
        let scope = try Self.scope(credential)
        return SigV4Request(accessKeyId: scope.0, date: scope.1, region: scope.2, service: scope.3,
                            signedHeaders: signed.split(separator: ";").map { $0.lowercased() }, signature: signature,
                            timestamp: timestamp, sessionToken: headers["x-amz-security-token"], presigned: false, expires: nil)
    }

    static func parsePresigned(_ query: [(String, String)]) throws(Failure) -> SigV4Request {
        func value(_ name: String) -> String? { query.first { $0.0 == name }?.1 }
        guard value("X-Amz-Algorithm") == "AWS4-HMAC-SHA256" else {
            throw Failure(kind: .incomplete, message: "X-Amz-Algorithm must be AWS4-HMAC-SHA256")
        }
        guard let credential = value("X-Amz-Credential"), let timestamp = value("X-Amz-Date"), let signed = value("X-Amz-SignedHeaders"),
              let signature = value("X-Amz-Signature") else {
            throw Failure(kind: .incomplete, message: "A presigned request needs X-Amz-Credential, X-Amz-Date, X-Amz-SignedHeaders and X-Amz-Signature")
        }
        let scope = try Self.scope(credential)
        return SigV4Request(accessKeyId: scope.0, date: scope.1, region: scope.2, service: scope.3,
                            signedHeaders: signed.split(separator: ";").map { $0.lowercased() }, signature: signature, timestamp: timestamp,
                            sessionToken: value("X-Amz-Security-Token"), presigned: true, expires: value("X-Amz-Expires").flatMap { Int($0) })
    }

    /// `AKID/yyyymmdd/region/service/aws4_request`.
    static func scope(_ credential: String) throws(Failure) -> (String, String, String, String) {
        let parts = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 5, parts[4] == "aws4_request", parts[1].count == 8, !parts[0].isEmpty else {
            throw Failure(kind: .incomplete, message: "Credential should be scoped to a valid region, not '\(credential)'. Credential=\(credential)")
        }
        return (parts[0], parts[1], parts[2], parts[3])
    }

    /// The request's time, in seconds since the epoch.
    public func time() throws(Failure) -> Int64 {
        guard let seconds = Self.seconds(amzDate: timestamp) else {
            throw Failure(kind: .badDate, message: "X-Amz-Date must be yyyyMMddTHHmmssZ, not '\(timestamp)'")
        }
        return seconds
    }

    /// Too old or too far ahead (15 minutes, as AWS), or past a presigned request's expiry; and the
    /// credential's day must be X-Amz-Date's (a key derived for one day is good for that day only).
    public func checkTime(nowSeconds: Int64, skewSeconds: Int64 = 900) throws(Failure) {
        let at = try time()
        guard timestamp.hasPrefix(date) else {
            throw Failure(kind: .incomplete, message: "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '\(date)' != '\(timestamp.prefix(8))'")
        }
        if presigned {
            // AWS takes 1 second to 7 days.
            guard let lifetime = expires, (1...604_800).contains(lifetime) else {
                throw Failure(kind: .incomplete, message: "X-Amz-Expires must be a number of seconds from 1 to 604800")
            }
            let expires = Int64(lifetime)
            if nowSeconds > at + expires || at > nowSeconds + skewSeconds {
                throw Failure(kind: .expired, message: "Request has expired")
            }
            return
        }
        if abs(nowSeconds - at) > skewSeconds {
            let now = Self.amzDate(seconds: nowSeconds)
            throw Failure(kind: .expired, message: at < nowSeconds
                ? "Signature expired: \(timestamp) is now earlier than \(Self.amzDate(seconds: nowSeconds - skewSeconds)) (\(now) - 15 min.)"
                : "Signature not yet current: \(timestamp) is still later than \(Self.amzDate(seconds: nowSeconds + skewSeconds)) (\(now) + 15 min.)")
        }
    }

    // MARK: The canonical request

    /// The string to sign for the request's parts. `rawPath` and `rawQuery` as they came on the
    /// wire (percent-encoded); `headers` with lower-cased names (several values joined by ",").
    public func stringToSign(method: String, rawPath: String, rawQuery: String, headers: [String: String], body: Data,
                             unsignedPayload: Bool = false) -> String {
        let canonical = canonicalRequest(method: method, rawPath: rawPath, rawQuery: rawQuery, headers: headers, body: body,
                                         unsignedPayload: unsignedPayload)
        return "AWS4-HMAC-SHA256\n\(timestamp)\n\(date)/\(region)/\(service)/aws4_request\n" + Self.hexSHA256(Array(canonical.utf8))
    }

    /// `unsignedPayload`: the payload is `UNSIGNED-PAYLOAD` (what S3's presigned URLs, and some
    /// clients' for other services, sign) rather than the body's SHA-256 (what botocore's
    /// presigned URLs for SQS, STS and the rest sign).
    public func canonicalRequest(method: String, rawPath: String, rawQuery: String, headers: [String: String], body: Data,
                                 unsignedPayload: Bool = false) -> String {
        let path = rawPath.isEmpty ? "/" : Self.encode(rawPath, keepSlash: true)
        var pairs: [(String, String)] = []
        for item in rawQuery.split(separator: "&", omittingEmptySubsequences: true) {
            let kv = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = Self.formDecode(String(kv[0])), value = kv.count > 1 ? Self.formDecode(String(kv[1])) : ""
            if presigned && key == "X-Amz-Signature" { continue }
            pairs.append((Self.encode(key, keepSlash: false), Self.encode(value, keepSlash: false)))
        }
        pairs.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        let query = pairs.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
        let canonicalHeaders = signedHeaders.map { name in
            "\(name):\(Self.collapse(headers[name] ?? ""))\n"
        }.joined()
        let payload: String
        if let declared = headers["x-amz-content-sha256"] {
            payload = declared
        } else if unsignedPayload {
            payload = "UNSIGNED-PAYLOAD"
        } else {
            payload = Self.hexSHA256(body)
        }
        return "\(method)\n\(path)\n\(query)\n\(canonicalHeaders)\n\(signedHeaders.joined(separator: ";"))\n\(payload)"
    }

    /// What the signature must cover for the request to mean what it was signed for: the Host, the
    /// X-Amz-Target that picks the operation, and a declared payload hash that is the body's (only an
    /// empty body may go unsigned). Checked before the signature: a replay cannot swap the body, and a
    /// presigned URL cannot be reused for another operation.
    public func checkCoverage(headers: [String: String], rawBody: Data) throws(Failure) {
        guard signedHeaders.contains("host") else {
            throw Failure(kind: .incomplete, message: "'Host' must be a signed header")
        }
        if headers["x-amz-target"] != nil, !signedHeaders.contains("x-amz-target") {
            throw Failure(kind: .incomplete, message: "'X-Amz-Target' must be a signed header")
        }
        if let declared = headers["x-amz-content-sha256"] {
            if declared == "UNSIGNED-PAYLOAD" || declared.hasPrefix("STREAMING-") {
                guard rawBody.isEmpty else {
                    throw Failure(kind: .mismatch, message: "The request body must be signed (x-amz-content-sha256: \(declared) is for S3)")
                }
            } else if declared.lowercased() != Self.hexSHA256(rawBody) {
                throw Failure(kind: .mismatch, message: "The provided 'x-amz-content-sha256' header does not match what was computed.")
            }
        }
        if presigned && !rawBody.isEmpty && headers["x-amz-content-sha256"] == nil {
            // A presigned URL signs the empty body (or nothing): a body it did not cover is refused.
            throw Failure(kind: .mismatch, message: "A presigned URL carries no body")
        }
    }

    /// Compares the request's signature with the one `signingKey` (AWS's kSigning for this scope) makes.
    public func verify(signingKey: SymmetricKey, method: String, rawPath: String, rawQuery: String, headers: [String: String], body: Data) -> Bool {
        func matches(_ method: String, unsignedPayload: Bool) -> Bool {
            let text = stringToSign(method: method, rawPath: rawPath, rawQuery: rawQuery, headers: headers, body: body, unsignedPayload: unsignedPayload)
            let expected = Hex.encode(Data(HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: signingKey)))
            return Self.constantTimeEqual(expected, signature.lowercased())
        }
        if matches(method, unsignedPayload: false) { return true }
        guard presigned else { return false }
        // A presigned URL's payload is the body's hash (botocore) or UNSIGNED-PAYLOAD (S3-style
        // signers), the body being empty either way (checkCoverage); and an SDK presigning a
        // query-protocol action without naming GET signs it as the POST the action is, though the
        // URL is then fetched with GET (every parameter is in the signed query string either way).
        guard body.isEmpty else { return false }
        let methods = method == "GET" ? ["GET", "POST"] : [method]
        return methods.contains { candidate in
            (candidate != method && matches(candidate, unsignedPayload: false))
                || (headers["x-amz-content-sha256"] == nil && matches(candidate, unsignedPayload: true))
        }
    }

    // MARK: Helpers

    static func hexSHA256(_ bytes: some DataProtocol) -> String { Hex.encode(Data(SHA256.hash(data: bytes))) }

    /// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters kept, everything else
    /// %XX upper-case (a `%` already there is encoded again, as the SDKs do for a path).
    static func encode(_ text: String, keepSlash: Bool) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
    public static func formDecode(_ text: String) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = Array(text.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "+") {
                bytes.append(0x20)
            } else if byte == UInt8(ascii: "%"), iterator.count >= 2,
                      let value = UInt8(String(decoding: iterator.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(value)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A header value as canonical: trimmed, runs of spaces made one.
    static func collapse(_ value: String) -> String {
        // Nearly every value is canonical already: no spaces at either end, none doubled.
        var previousSpace = true, clean = true
        for byte in value.utf8 {
            let space = byte == 0x20 || byte == 0x09
            if space && (previousSpace || byte == 0x09) { clean = false; break }
            previousSpace = space
        }
        if clean && !previousSpace { return value }
        var out = ""
        var lastSpace = false
        for character in trim(Substring(value)) {
            if character == " " || character == "\t" {
                if !lastSpace { out.append(" ") }
                lastSpace = true
            } else {
                out.append(character)
                lastSpace = false
            }
        }
        return out
    }

    /// Spaces and tabs off both ends (Foundation's trimmingCharacters goes through NSString: a
    /// tenth of the edge's CPU when it was used here).
    static func trim(_ text: Substring) -> Substring {
        var start = text.startIndex, end = text.endIndex
        while start < end, text[start] == " " || text[start] == "\t" { start = text.index(after: start) }
        while end > start {
            let last = text.index(before: end)
            guard text[last] == " " || text[last] == "\t" else { break }
            end = last
        }
        return text[start..<end]
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<x.count { difference |= x[i] ^ y[i] }
        return difference == 0
    }

    static func seconds(amzDate text: String) -> Int64? {
        let bytes = Array(text.utf8)
        guard bytes.count == 16, bytes[8] == UInt8(ascii: "T"), bytes[15] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? { Int(String(decoding: bytes[range], as: UTF8.self)) }
        guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8),
              let hour = number(9..<11), let minute = number(11..<13), let second = number(13..<15),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        return Int64(UTCTime.days(year: year, month: month, day: day)) * 86400 + Int64(hour * 3600 + minute * 60 + second)
    }

    static func amzDate(seconds: Int64) -> String { UTCTime.iso8601(wholeSeconds: Int(seconds), compact: true) }

    /// An RFC 7231 `Date` header as `X-Amz-Date`.
    static func amzDate(fromHTTPDate text: String) -> String? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: text) else { return nil }
        return amzDate(seconds: Int64(date.timeIntervalSince1970))
    }
}
