import Testing
@testable import IAMCore

@Suite struct IAMRegistryTests {
    let trustLambda = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#

    @Test func policiesAndRolesFollowIAMsRules() throws {
        var reg = IAMRegistry(account: account)
        var changes: [IAMChange] = []
        let policy = try reg.createPolicy(name: "Lambda-Write-DynamoDB", document: writeDynamo, description: nil, now: 1, changes: &changes)
        #expect(policy.arn == "arn:aws:iam::000000000000:policy/Lambda-Write-DynamoDB")
        #expect(throws: PolicyError("EntityAlreadyExists", "A policy called Lambda-Write-DynamoDB already exists. Duplicate names are not allowed.")) {
            _ = try reg.createPolicy(name: "Lambda-Write-DynamoDB", document: writeDynamo, description: nil, now: 1, changes: &changes)
        }
        #expect(throws: PolicyError.self) { _ = try reg.createPolicy(name: "bad name", document: writeDynamo, description: nil, now: 1, changes: &changes) }
        #expect(throws: PolicyError.self) { _ = try reg.createPolicy(name: "Broken", document: "{", description: nil, now: 1, changes: &changes) }
        let role = try reg.createRole(name: "Lambda-SQS-DynamoDB", trustPolicy: trustLambda, description: nil, now: 1, changes: &changes)
        #expect(role.arn == ingestRole)
        #expect(throws: PolicyError.self) { _ = try reg.createRole(name: "NoPrincipal", trustPolicy: writeDynamo, description: nil, now: 1, changes: &changes) }
        try reg.attachRolePolicy(role: role.name, policyArn: policy.arn, changes: &changes)
        #expect(reg.attachmentCount(policy.arn) == 1)
        #expect(throws: PolicyError.self) { try reg.attachRolePolicy(role: role.name, policyArn: "arn:aws:iam::000000000000:policy/Nope", changes: &changes) }
        #expect(throws: PolicyError.self) { try reg.deletePolicy(arn: policy.arn, changes: &changes) }
        #expect(throws: PolicyError.self) { try reg.deleteRole(role.name, changes: &changes) }
        #expect(reg.listPolicies(scope: "AWS").map(\.name) == ["AmazonAPIGatewayPushToCloudWatchLogs"])
        #expect(reg.listPolicies(scope: "Local").map(\.name) == ["Lambda-Write-DynamoDB"])
        #expect(throws: PolicyError.self) { try reg.deletePolicy(arn: IAMRegistry.awsManaged[0].arn, changes: &changes) }
    }

    @Test func decisionsFollowAttachmentsAndDetachingRevokes() throws {
        var reg = IAMRegistry(account: account)
        var changes: [IAMChange] = []
        let policy = try reg.createPolicy(name: "Lambda-Write-DynamoDB", document: writeDynamo, description: nil, now: 1, changes: &changes)
        _ = try reg.createRole(name: "Lambda-SQS-DynamoDB", trustPolicy: trustLambda, description: nil, now: 1, changes: &changes)
        let put = AuthorizationRequest(principal: "arn:aws:sts::000000000000:assumed-role/Lambda-SQS-DynamoDB/ingest-worker-1",
                                       action: "dynamodb:PutItem", resource: tableARN)
        #expect(reg.authorize(put, resourcePolicy: nil) == .implicitDeny)
        try reg.attachRolePolicy(role: "Lambda-SQS-DynamoDB", policyArn: policy.arn, changes: &changes)
        #expect(reg.authorize(put, resourcePolicy: nil) == .allow)
        try reg.detachRolePolicy(role: "Lambda-SQS-DynamoDB", policyArn: policy.arn, changes: &changes)
        #expect(reg.authorize(put, resourcePolicy: nil) == .implicitDeny)
        #expect(try reg.mayAssume("Lambda-SQS-DynamoDB", service: "lambda.amazonaws.com"))
        #expect(try !reg.mayAssume("Lambda-SQS-DynamoDB", service: "apigateway.amazonaws.com"))
    }

    @Test func restoringFromTheChangesGivesTheSameRegistry() throws {
        var reg = IAMRegistry(account: account)
        var changes: [IAMChange] = []
        let policy = try reg.createPolicy(name: "P", document: writeDynamo, description: "d", now: 5, changes: &changes)
        _ = try reg.createRole(name: "R", trustPolicy: trustLambda, description: nil, now: 5, changes: &changes)
        try reg.attachRolePolicy(role: "R", policyArn: policy.arn, changes: &changes)
        var policies: [String: ManagedPolicy] = [:]
        var roles: [String: Role] = [:]
        for change in changes {
            switch change {
            case .putPolicy(let p): policies[p.arn] = p
            case .deletePolicy(let arn): policies[arn] = nil
            case .putRole(let r): roles[r.name] = r
            case .deleteRole(let n): roles[n] = nil
            }
        }
        var restored = IAMRegistry(account: account)
        restored.restore(policies: Array(policies.values), roles: Array(roles.values))
        #expect(try restored.getRole("R").attached == [policy.arn])
        #expect(restored.authorize(AuthorizationRequest(principal: "arn:aws:iam::000000000000:role/R", action: "dynamodb:PutItem", resource: tableARN),
                                   resourcePolicy: nil) == .allow)
    }
}
