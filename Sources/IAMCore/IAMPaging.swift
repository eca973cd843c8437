import Foundation

/// IAM's list pagination (ListRoles, ListPolicies, ListAttachedRolePolicies): `MaxItems` (1 to 1000,
/// default 100) a page, `IsTruncated` and a `Marker` to pass back for the next page. The marker is
/// opaque to callers; here it is the last name given, base64-encoded.
public enum IAMPaging {
    public static let defaultMaxItems = 100

    /// The page of `items` (already in order, each named by `name`) after `marker`, at most `maxItems`
    /// long, and the marker of the next page (nil: this page is the last, IsTruncated false).
    public static func page<T>(_ items: [T], name: (T) -> String, maxItems: Int?, marker: String?) throws(PolicyError)
        -> (items: [T], marker: String?)
    {
        let limit = maxItems ?? defaultMaxItems
        guard (1...1000).contains(limit) else {
            throw PolicyError("ValidationError", "1 validation error detected: Value '\(limit)' at 'maxItems' failed to satisfy constraint: Member must have value \(limit < 1 ? "greater than or equal to 1" : "less than or equal to 1000")")
        }
        var rest = items[...]
        if let marker {
            guard let data = Data(base64Encoded: marker), let after = String(data: data, encoding: .utf8) else {
                throw PolicyError("ValidationError", "Invalid Marker: \(marker)")
            }
            rest = rest.drop { name($0) <= after }
        }
        let page = Array(rest.prefix(limit))
        guard rest.count > page.count, let last = page.last else { return (page, nil) }
        return (page, Data(name(last).utf8).base64EncodedString())
    }
}
