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

    /// The service's model; a failure to load it is the edge's fault (InternalFailure).
    var model: Result<ServiceModel, EdgeError> {
        ServiceModel.named(service) ?? .failure(EdgeError("InternalFailure", "no model for \(service)", status: 500, sender: false))
    }

    /// Whether the model knows `action` (and the node serves it): the models hold only the actions
    /// the nodes serve as AWS does, so Nimbus's own (sts:GetSigningKey, ...) are refused here.
    public func supports(_ action: String) -> Bool {
        (try? model.get().operations[action]) != nil
    }

    /// The JSON body for the node, from the request's parameters (`Action` and `Version` among them).
    /// `baseURL` is where the caller reached the edge (the dispatcher maps queue URLs; nothing else
    /// in these models is made from it).
    public func jsonBody(action: String, parameters: [(String, String)], baseURL: String) throws -> Data {
        let (model, operation) = try modelAndOperation(action)
        return try QueryFormDecoder(model: model).jsonBody(operation: operation, parameters: parameters)
    }

    /// The XML answer for the node's JSON answer.
    public func xmlResponse(action: String, json: Data, requestID: String, baseURL: String) throws -> Data {
        let (model, operation) = try modelAndOperation(action)
        let answer: JSONValue
        do {
            answer = json.isEmpty ? .object([]) : try JSONValue.parse(json)
        } catch {
            throw EdgeError("InternalFailure", "the \(service) node's answer to \(action) is not JSON", status: 500, sender: false)
        }
        return try QueryXMLEncoder(model: model).response(action: action, operation: operation, answer: answer, requestID: requestID)
    }

    func modelAndOperation(_ action: String) throws(EdgeError) -> (ServiceModel, ServiceModel.Operation) {
        let model = try model.get()
        guard let operation = model.operations[action] else {
            throw EdgeError("InvalidAction", "The action \(action) is not valid for this endpoint.")
        }
        return (model, operation)
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
            case "\t", "\n": out.unicodeScalars.append(scalar)
            // Characters XML 1.0 cannot carry at all (SQS refuses them in bodies; another protocol's
            // message might hold one): replaced, so that the rest of the answer still parses.
            case _ where scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF: out += "\u{FFFD}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
