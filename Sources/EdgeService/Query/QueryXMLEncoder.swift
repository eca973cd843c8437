import Foundation

/// A node's JSON answer as the query protocol's XML, by the operation's output shape: what botocore's
/// QueryParser (parsers.py) and the other SDKs read. Members go by their locationName or name; lists
/// are `<Name><member>..</member></Name>`, or the elements repeated (named by the element's
/// locationName) when flattened; maps `<Name><entry><key>..</key><value>..</value></entry></Name>`,
/// or `<Name><Key>..</Key><Value>..</Value></Name>` repeated when flattened. Members the shape does
/// not know are left out.
struct QueryXMLEncoder {
    let model: ServiceModel

    /// `<{Action}Response xmlns=...><{Action}Result>...</{Action}Result><ResponseMetadata>...`; an
    /// operation without an output shape has no Result element.
    func response(action: String, operation: ServiceModel.Operation, answer: JSONValue, requestID: String) throws(EdgeError) -> Data {
        var out = "<?xml version=\"1.0\"?><\(action)Response xmlns=\"\(XMLText.escape(model.metadata.xmlNamespace))\">"
        if let output = operation.output {
            let resolved = try model.resolve(shapeNamed: output)
            let wrapper = operation.resultWrapper ?? "\(action)Result"
            out += "<\(wrapper)>"
            try members(of: resolved, answer, into: &out)
            out += "</\(wrapper)>"
        }
        out += "<ResponseMetadata><RequestId>\(XMLText.escape(requestID))</RequestId></ResponseMetadata></\(action)Response>"
        return Data(out.utf8)
    }

    func members(of resolved: ServiceModel.Resolved, _ value: JSONValue, into out: inout String) throws(EdgeError) {
        guard case .object = value else { return }
        for member in resolved.shape.members ?? [] {
            guard let memberValue = value[member.name], !memberValue.isNull else { continue }
            let memberShape = try model.resolve(member.ref)
            let name = memberShape.locationName ?? member.name
            switch memberShape.shape.type {
            case .list where memberShape.flattened:
                guard let elementRef = memberShape.shape.member else { continue }
                let element = try model.resolve(elementRef)
                for item in memberValue.items where !item.isNull {
                    try write(item, as: element, named: element.locationName ?? name, into: &out)
                }
            case .map where memberShape.flattened:
                try entries(of: memberShape, memberValue, entryName: name, into: &out)
            default:
                try write(memberValue, as: memberShape, named: name, into: &out)
            }
        }
    }

    func write(_ value: JSONValue, as resolved: ServiceModel.Resolved, named name: String, into out: inout String) throws(EdgeError) {
        switch resolved.shape.type {
        case .structure:
            guard case .object = value else { return }
            out += "<\(name)>"
            try members(of: resolved, value, into: &out)
            out += "</\(name)>"
        case .list:
            guard let elementRef = resolved.shape.member else { return }
            let element = try model.resolve(elementRef)
            out += "<\(name)>"
            for item in value.items where !item.isNull {
                try write(item, as: element, named: element.locationName ?? "member", into: &out)
            }
            out += "</\(name)>"
        case .map:
            out += "<\(name)>"
            try entries(of: resolved, value, entryName: "entry", into: &out)
            out += "</\(name)>"
        default:
            guard let text = scalarText(value, as: resolved) else { return }
            out += "<\(name)>\(XMLText.escape(text))</\(name)>"
        }
    }

    /// A map's entries, each `<entryName><key>..</key><value>..</value></entryName>`, sorted by key.
    func entries(of resolved: ServiceModel.Resolved, _ value: JSONValue, entryName: String, into out: inout String) throws(EdgeError) {
        guard case .object(let pairs) = value, let keyRef = resolved.shape.key, let valueRef = resolved.shape.value else { return }
        let keyShape = try model.resolve(keyRef)
        let valueShape = try model.resolve(valueRef)
        let keyName = keyShape.locationName ?? "key"
        let valueName = valueShape.locationName ?? "value"
        for (key, entryValue) in pairs.sorted(by: { $0.0 < $1.0 }) where !entryValue.isNull {
            out += "<\(entryName)><\(keyName)>\(XMLText.escape(key))</\(keyName)>"
            try write(entryValue, as: valueShape, named: valueName, into: &out)
            out += "</\(entryName)>"
        }
    }

    /// A scalar's text by its shape's type; nil for a value that cannot be one (left out).
    func scalarText(_ value: JSONValue, as resolved: ServiceModel.Resolved) -> String? {
        switch resolved.shape.type {
        case .boolean:
            switch value {
            case .bool(let flag): return flag ? "true" : "false"
            case .integer(let number): return number != 0 ? "true" : "false"
            case .string(let text): return text.lowercased()
            default: return nil
            }
        case .timestamp:
            // Nodes give epoch seconds or milliseconds (a number, or digits in a string), or ISO-8601.
            switch value {
            case .integer(let number): return ISOTime.string(epoch: Double(number))
            case .double(let number): return ISOTime.string(epoch: number)
            case .string(let text): return Double(text).flatMap { ISOTime.string(epoch: $0) } ?? text
            default: return nil
            }
        case .string where resolved.name == "policyDocumentType":
            // IAM gives policy documents URL-encoded (botocore's json_decode_policies undoes it).
            return value.text.map(Self.percentEncoded)
        default:
            return value.text
        }
    }

    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }
}

extension JSONValue {
    var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    /// A list's items; a lone value where a list belongs counts as a list of one.
    var items: [JSONValue] {
        if case .array(let items) = self { return items }
        return [self]
    }

    /// A scalar as text (numbers as JSON writes them); nil for arrays, objects and null.
    var text: String? {
        switch self {
        case .string(let text): return text
        case .bool(let flag): return flag ? "true" : "false"
        case .integer(let number): return String(number)
        case .double(let number): return number.rounded() == number && abs(number) < 1e15 ? String(Int64(number)) : "\(number)"
        case .null, .array, .object: return nil
        }
    }
}
