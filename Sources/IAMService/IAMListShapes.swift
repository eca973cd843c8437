import Foundation
import IAMCore

// IAM's paginated lists and GetPolicyVersion, in botocore's iam model shapes.

/// The paging members of a List request (MaxItems, Marker), read beside its own members.
struct PageRequest: Codable { var MaxItems: Int?; var Marker: String? }

struct PolicyVersionRequest: Codable { var PolicyArn: String; var VersionId: String }

/// PolicyVersion: `Document` is the policy as written (JSON); the AWS endpoint URL-encodes it, as
/// IAM's query protocol gives policy documents.
struct PolicyVersionShape: Codable {
    var Document: String
    var VersionId: String
    var IsDefaultVersion: Bool
    var CreateDate: String
}

enum IAMLists {
    /// A page of `items` for the request's MaxItems and Marker, and the answer's IsTruncated and Marker.
    static func page<T>(_ items: [T], key: (T) -> String, _ request: PageRequest) throws -> (items: [T], isTruncated: Bool, marker: String?) {
        let (page, marker) = try IAMPaging.page(items, name: key, maxItems: request.MaxItems, marker: request.Marker)
        return (page, marker != nil, marker)
    }
}
