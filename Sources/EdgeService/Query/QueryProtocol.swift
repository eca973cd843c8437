import Foundation
import NimbusRuntime

/// AWS's query protocol (form-encoded `Action=...&Version=...`, XML answers): SQS as older SDKs
/// speak it, SNS, IAM and STS. Driven by each service's model (Models/): the form's parameters
/// become the JSON shape the node takes, and the node's JSON answer the XML the SDK parses.
public struct QueryProtocol: Sendable {
    /// The IAM action prefix: sqs, sns, iam, sts.
    public let service: String

    /// nil when there is no model for `service`.
    public init?(service: String) {
        guard ["sqs", "sns", "iam", "sts"].contains(service) else { return nil }
        self.service = service
    }

    /// Whether the model knows `action` (and the node serves it).
    public func supports(_ action: String) -> Bool { false }

    /// The JSON body for the node, from the request's parameters (`Action` and `Version` among them).
    /// `baseURL` is where the caller reached the edge (queue URLs are made from it).
    public func jsonBody(action: String, parameters: [(String, String)], baseURL: String) throws -> Data {
        throw EdgeError("InvalidAction", "The action \(action) is not valid for this endpoint.")
    }

    /// The XML answer for the node's JSON answer.
    public func xmlResponse(action: String, json: Data, requestID: String, baseURL: String) throws -> Data {
        throw EdgeError("InternalFailure", "no XML for \(action)", status: 500, sender: false)
    }

    /// `<ErrorResponse>` as the query protocol's SDKs parse it.
    public func xmlError(_ error: EdgeError, requestID: String) -> EdgeResponse {
        let body = """
            <?xml version="1.0"?><ErrorResponse xmlns="\(namespace)"><Error><Type>\(error.sender ? "Sender" : "Receiver")</Type>\
            <Code>\(XMLText.escape(error.code))</Code><Message>\(XMLText.escape(error.message))</Message><Detail/></Error>\
            <RequestId>\(requestID)</RequestId></ErrorResponse>
            """
        return EdgeResponse(status: error.status, headers: [("Content-Type", "text/xml"), ("x-amzn-RequestId", requestID)], body: Data(body.utf8))
    }

    public var namespace: String {
        switch service {
        case "sqs": return "http://queue.amazonaws.com/doc/2012-11-05/"
        case "sns": return "http://sns.amazonaws.com/doc/2010-03-31/"
        case "iam": return "https://iam.amazonaws.com/doc/2010-05-08/"
        default: return "https://sts.amazonaws.com/doc/2011-06-15/"
        }
    }

    /// The node the service's actions go to.
    public var node: ServiceKind {
        switch service {
        case "sqs": return .queue
        case "sns": return .notifier
        default: return .iam
        }
    }
}

enum XMLText {
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\r": out += "&#xD;"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
