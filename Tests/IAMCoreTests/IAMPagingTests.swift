import Foundation
import Testing
@testable import IAMCore

/// IAM's list pagination (MaxItems, Marker, IsTruncated) and GetPolicyVersion, as the IAM API
/// reference describes them.
@Suite struct IAMPagingTests {
    let names = ["a", "b", "c", "d", "e"]

    @Test func pagesFollowTheMarkerToTheEnd() throws {
        var seen: [String] = []
        var marker: String?
        var pages = 0
        repeat {
            let page = try IAMPaging.page(names, name: { $0 }, maxItems: 2, marker: marker)
            #expect(page.items.count <= 2)
            seen += page.items
            marker = page.marker
            pages += 1
        } while marker != nil && pages < 10
        #expect(seen == names && pages == 3)
    }

    @Test func aPageThatReachesTheEndHasNoMarker() throws {
        #expect(try IAMPaging.page(names, name: { $0 }, maxItems: nil, marker: nil) == (names, nil))
        #expect(try IAMPaging.page(names, name: { $0 }, maxItems: 5, marker: nil).marker == nil)
        #expect(try IAMPaging.page(names, name: { $0 }, maxItems: 4, marker: nil).marker != nil)
        #expect(try IAMPaging.page([String](), name: { $0 }, maxItems: 1, marker: nil) == ([], nil))
        // A marker whose item is gone still places the page.
        let after = Data("bb".utf8).base64EncodedString()
        #expect(try IAMPaging.page(names, name: { $0 }, maxItems: 10, marker: after).items == ["c", "d", "e"])
    }

    @Test func badPagingIsAValidationError() {
        for (maxItems, marker) in [(0, nil), (1001, nil), (1, "%%% not base64")] as [(Int, String?)] {
            #expect(throws: PolicyError.self) { _ = try IAMPaging.page(names, name: { $0 }, maxItems: maxItems, marker: marker) }
        }
    }

    @Test func aPolicyHasItsDocumentAsVersionOne() throws {
        var reg = IAMRegistry(account: account)
        var changes: [IAMChange] = []
        let policy = try reg.createPolicy(name: "P", document: writeDynamo, description: nil, now: 1, changes: &changes)
        #expect(try reg.getPolicyVersion(arn: policy.arn, versionId: "v1").document == writeDynamo)
        #expect(try reg.getPolicyVersion(arn: IAMRegistry.awsManaged[0].arn, versionId: "v1") == IAMRegistry.awsManaged[0])
        #expect(throws: PolicyError("NoSuchEntity", "Policy \(policy.arn) version v2 does not exist or is not attachable.")) {
            _ = try reg.getPolicyVersion(arn: policy.arn, versionId: "v2")
        }
        #expect(throws: PolicyError.self) { _ = try reg.getPolicyVersion(arn: policy.arn + "-missing", versionId: "v1") }
        #expect((try? reg.getPolicyVersion(arn: policy.arn, versionId: "1"))?.name == nil)
        do {
            _ = try reg.getPolicyVersion(arn: policy.arn, versionId: "version1")
        } catch {
            #expect(error.code == "ValidationError")
        }
    }
}
