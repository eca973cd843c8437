import Foundation

/// One AWS service model as Scripts/edge-models trims it (Models/<service>.json, from botocore): the
/// operations the edge serves and the shapes they reach, with the traits the query protocol reads.
struct ServiceModel: Sendable, Decodable {
    struct Metadata: Sendable, Decodable {
        var apiVersion: String
        var xmlNamespace: String
    }

    struct Operation: Sendable, Decodable {
        var input: String?
        var output: String?
        /// The element the output's members are wrapped in (`SendMessageResult`).
        var resultWrapper: String?
    }

    /// A reference to a shape, with the traits a member or list element puts over it.
    struct ShapeRef: Sendable, Decodable {
        var shape: String
        var locationName: String?
        var flattened: Bool?
    }

    struct Member: Sendable, Decodable {
        var name: String
        var shape: String
        var locationName: String?
        var flattened: Bool?

        var ref: ShapeRef { ShapeRef(shape: shape, locationName: locationName, flattened: flattened) }
    }

    enum ShapeType: String, Sendable, Decodable {
        case structure, list, map, string, integer, long, boolean, timestamp, blob, float, double
    }

    struct Shape: Sendable, Decodable {
        var type: ShapeType
        /// Structures: in the model's order, which is the order of the XML elements.
        var members: [Member]?
        var required: [String]?
        var member: ShapeRef?
        var key: ShapeRef?
        var value: ShapeRef?
        var locationName: String?
        var flattened: Bool?
    }

    /// A shape as one reference sees it: the reference's locationName and flattened win over the shape's.
    struct Resolved: Sendable {
        var name: String
        var shape: Shape
        var locationName: String?
        var flattened: Bool
    }

    var metadata: Metadata
    var operations: [String: Operation]
    var shapes: [String: Shape]

    func resolve(_ ref: ShapeRef) throws(EdgeError) -> Resolved {
        guard let shape = shapes[ref.shape] else {
            throw EdgeError("InternalFailure", "the service model has no shape \(ref.shape)", status: 500, sender: false)
        }
        return Resolved(name: ref.shape, shape: shape, locationName: ref.locationName ?? shape.locationName,
                        flattened: ref.flattened ?? shape.flattened ?? false)
    }

    func resolve(shapeNamed name: String) throws(EdgeError) -> Resolved {
        try resolve(ShapeRef(shape: name))
    }

    // MARK: Loading

    /// Each model is read and parsed once, on first use.
    static let sqs = load("sqs")
    static let sns = load("sns")
    static let iam = load("iam")
    static let sts = load("sts")

    static func named(_ service: String) -> Result<ServiceModel, EdgeError>? {
        switch service {
        case "sqs": return sqs
        case "sns": return sns
        case "iam": return iam
        case "sts": return sts
        default: return nil
        }
    }

    static func load(_ service: String) -> Result<ServiceModel, EdgeError> {
        guard let url = Bundle.module.url(forResource: service, withExtension: "json", subdirectory: "Models") else {
            return .failure(EdgeError("InternalFailure", "the edge has no model for \(service) (Models/\(service).json)", status: 500, sender: false))
        }
        do {
            return .success(try JSONDecoder().decode(ServiceModel.self, from: Data(contentsOf: url)))
        } catch {
            return .failure(EdgeError("InternalFailure", "Models/\(service).json: \(error)", status: 500, sender: false))
        }
    }
}
