import Foundation

/// Limits every node enforces on what it receives.
public struct ProtocolLimits: Sendable, Equatable {
    /// Largest frame libzmq lets through (it drops the connection of a peer that sends more).
    public var maxFrameBytes: Int
    /// Frames kept of one message, routing frames included; the rest is read and dropped.
    public var maxFrames: Int
    public var maxIDLength: Int
    public var maxActionLength: Int
    public var maxResourceLength: Int

    public init(
        maxFrameBytes: Int = 8 * 1024 * 1024, maxFrames: Int = 8, maxIDLength: Int = 128,
        maxActionLength: Int = 128, maxResourceLength: Int = 2048
    ) {
        self.maxFrameBytes = maxFrameBytes
        self.maxFrames = maxFrames
        self.maxIDLength = maxIDLength
        self.maxActionLength = maxActionLength
        self.maxResourceLength = maxResourceLength
    }

    public static let standard = ProtocolLimits()
}

/// Why a message could not be decoded, and what to answer. `replyID` is the request id when the
/// header was readable enough to recover it ("" otherwise).
public struct FrameDecodeFailure: Error, Sendable, Equatable {
    public var error: WireError
    public var replyID: String
    /// True when the sender said it wanted no answer (a heartbeat, a reply): log and drop.
    public var dropSilently: Bool

    public init(error: WireError, replyID: String = "", dropSilently: Bool = false) {
        self.error = error
        self.replyID = replyID
        self.dropSilently = dropSilently
    }
}

/// Nimbus messages are ZeroMQ multipart messages of three frames after any routing frames:
///
///     [tag "nimbus/1"] [header JSON] [body JSON]
///
/// The codec knows nothing of sockets; the runtime splits routing frames off before calling it.
public enum FrameCodec {
    public static let protocolName = "nimbus"
    public static let version = 1
    public static let tag = Data("nimbus/1".utf8)

    public static func encode(_ envelope: Envelope) -> [Data] {
        [tag, encodeHeader(envelope.header), envelope.body]
    }

    /// Header JSON, written by hand: it is on every message, and JSONEncoder costs ~8 µs.
    public static func encodeHeader(_ h: EnvelopeHeader) -> Data {
        var out: [UInt8] = []
        out.reserveCapacity(160)
        JSONText.append("{\"kind\":\"", to: &out)
        out.append(contentsOf: h.kind.rawValue.utf8)
        JSONText.append("\",\"id\":", to: &out)
        JSONText.appendString(h.id, to: &out)
        if let action = h.action {
            JSONText.append(",\"action\":", to: &out)
            JSONText.appendString(action, to: &out)
        }
        if let resource = h.resource {
            JSONText.append(",\"resource\":", to: &out)
            JSONText.appendString(resource, to: &out)
        }
        if let sender = h.sender {
            JSONText.append(",\"sender\":{\"name\":", to: &out)
            JSONText.appendString(sender.name, to: &out)
            JSONText.append(",\"incarnation\":", to: &out)
            JSONText.appendString(sender.incarnation, to: &out)
            out.append(0x7D)
        }
        if let auth = h.auth {
            JSONText.append(",\"auth\":{\"accessKeyId\":", to: &out)
            JSONText.appendString(auth.accessKeyId, to: &out)
            if let token = auth.sessionToken {
                JSONText.append(",\"sessionToken\":", to: &out)
                JSONText.appendString(token, to: &out)
            }
            JSONText.append(",\"timestamp\":", to: &out)
            JSONText.appendInteger(auth.timestamp, to: &out)
            JSONText.append(",\"signature\":", to: &out)
            JSONText.appendString(auth.signature, to: &out)
            out.append(0x7D)
        }
        out.append(0x7D)
        return Data(out)
    }

    /// Decodes the frames that follow the routing frames, validating everything the runtime relies on.
    public static func decode(_ frames: ArraySlice<Data>, limits: ProtocolLimits = .standard) -> Result<Envelope, FrameDecodeFailure> {
        guard let tagFrame = frames.first else {
            return .failure(fail(.malformedFrame, "empty message: expected [tag, header, body]"))
        }
        if tagFrame != tag {
            if let version = foreignVersion(tagFrame) {
                return .failure(fail(.unsupportedProtocolVersion,
                                     "protocol version \(version) is not supported; this node speaks \(protocolName)/\(self.version)",
                                     id: recoverID(frames.dropFirst().first)))
            }
            return .failure(fail(.malformedFrame, "first frame is not the protocol tag \"\(protocolName)/\(version)\""))
        }
        guard frames.count == 3 else {
            return .failure(fail(.malformedFrame, "expected 3 frames [tag, header, body], got \(frames.count)",
                                 id: recoverID(frames.dropFirst().first)))
        }
        let headerFrame = frames[frames.startIndex + 1]
        let body = frames[frames.startIndex + 2]
        let header: EnvelopeHeader
        do {
            // The fast reader takes what Nimbus nodes write; anything else (escapes, unknown fields,
            // mistakes) goes through JSONDecoder, which also names what is wrong.
            header = try HeaderReader.read(headerFrame) ?? JSONDecoder().decode(EnvelopeHeader.self, from: headerFrame)
        } catch let DecodingError.keyNotFound(key, _) {
            return .failure(fail(.missingParameter, "header is missing the field \"\(key.stringValue)\"", id: recoverID(headerFrame)))
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            return .failure(fail(.invalidParameterValue, "header field \"\(field)\" has an invalid value", id: recoverID(headerFrame)))
        } catch let DecodingError.typeMismatch(_, context) where context.codingPath.isEmpty {
            return .failure(fail(.serializationException, "header is not a JSON object"))
        } catch let DecodingError.typeMismatch(_, context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            return .failure(fail(.invalidParameterValue, "header field \"\(field)\" has the wrong type", id: recoverID(headerFrame)))
        } catch {
            return .failure(fail(.serializationException, "header is not valid JSON"))
        }
        if let problem = validate(header, limits: limits) {
            var failure = fail(problem.0, problem.1, id: header.id.count <= limits.maxIDLength ? header.id : "")
            failure.dropSilently = header.kind != .request && header.kind != .heartbeat
            return .failure(failure)
        }
        return .success(Envelope(header: header, body: body))
    }

    static func validate(_ h: EnvelopeHeader, limits: ProtocolLimits) -> (ErrorCode, String)? {
        if h.id.isEmpty { return (.missingParameter, "header field \"id\" is empty") }
        if h.id.utf8.count > limits.maxIDLength {
            return (.invalidParameterValue, "header field \"id\" is longer than \(limits.maxIDLength) bytes")
        }
        if h.kind == .request {
            guard let action = h.action, !action.isEmpty else {
                return (.missingParameter, "a request needs the header field \"action\" (service:Operation)")
            }
            if action.utf8.count > limits.maxActionLength || !isWellFormedAction(action) {
                return (.invalidAction, "\"\(action.prefix(limits.maxActionLength))\" is not an action of the form service:Operation")
            }
        }
        if let resource = h.resource {
            if resource.utf8.count > limits.maxResourceLength || !resource.hasPrefix("arn:") {
                return (.invalidParameterValue, "header field \"resource\" must be an ARN of at most \(limits.maxResourceLength) bytes")
            }
        }
        return nil
    }

    /// `service:Operation` with a lowercase service prefix and an alphanumeric operation.
    public static func isWellFormedAction(_ action: String) -> Bool {
        // One pass over the bytes: this runs on every request (split allocated an array each time).
        var serviceLength = 0, operationLength = 0
        var inOperation = false
        for byte in action.utf8 {
            if !inOperation {
                if byte == 0x3A { inOperation = true; continue }
                guard (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x2D else { return false }
                serviceLength += 1
            } else {
                guard (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) else { return false }
                operationLength += 1
            }
        }
        return serviceLength > 0 && operationLength > 0
    }

    /// "nimbus/N" with N other than ours: the version it claims.
    static func foreignVersion(_ frame: Data) -> String? {
        let prefix = Data("\(protocolName)/".utf8)
        guard frame.count <= 32, frame.starts(with: prefix) else { return nil }
        return String(decoding: frame.dropFirst(prefix.count), as: UTF8.self)
    }

    /// Best effort: the "id" of a header that failed validation, so the error can still be matched.
    static func recoverID(_ frame: Data?) -> String {
        struct IDOnly: Decodable { var id: String }
        guard let frame, let parsed = try? JSONDecoder().decode(IDOnly.self, from: frame),
              parsed.id.utf8.count <= ProtocolLimits.standard.maxIDLength else { return "" }
        return parsed.id
    }

    static func fail(_ code: ErrorCode, _ message: String, id: String = "") -> FrameDecodeFailure {
        FrameDecodeFailure(error: WireError(code, message), replyID: id, dropSilently: false)
    }
}
