import Foundation
import Testing
@testable import EdgeService

/// The query protocol's translation, by the AWS models: form parameters (as botocore's QuerySerializer
/// writes them) to the JSON the nodes take, and the nodes' JSON to the XML botocore's QueryParser reads.
@Suite struct QueryProtocolTests {
    static let sqs = QueryProtocol(service: "sqs")!
    static let sns = QueryProtocol(service: "sns")!
    static let iam = QueryProtocol(service: "iam")!
    static let sts = QueryProtocol(service: "sts")!

    static func json(_ query: QueryProtocol, _ action: String, _ parameters: [(String, String)]) throws -> String {
        let form = [("Action", action), ("Version", "2012-11-05")] + parameters
        return String(decoding: try query.jsonBody(action: action, parameters: form, baseURL: "http://localhost:4566"), as: UTF8.self)
    }

    static func xml(_ query: QueryProtocol, _ action: String, _ answer: String) throws -> String {
        String(decoding: try query.xmlResponse(action: action, json: Data(answer.utf8), requestID: "req-1", baseURL: "http://localhost:4566"),
               as: UTF8.self)
    }

    static func error(_ body: () throws -> Any) -> EdgeError? {
        do {
            _ = try body()
            return nil
        } catch let error as EdgeError {
            return error
        } catch {
            return EdgeError("Unexpected", "\(error)")
        }
    }

    // MARK: Which actions

    @Test func servesTheNodesActionsAndNoneOfNimbussOwn() {
        for action in ["CreateQueue", "GetQueueUrl", "ListQueues", "GetQueueAttributes", "SetQueueAttributes", "SendMessage",
                       "SendMessageBatch", "ReceiveMessage", "DeleteMessage", "DeleteMessageBatch", "ChangeMessageVisibility",
                       "ChangeMessageVisibilityBatch", "PurgeQueue", "DeleteQueue"] {
            #expect(Self.sqs.supports(action), "sqs \(action)")
        }
        for action in ["CreateTopic", "DeleteTopic", "ListTopics", "GetTopicAttributes", "SetTopicAttributes", "Subscribe",
                       "ConfirmSubscription", "Unsubscribe", "ListSubscriptions", "ListSubscriptionsByTopic", "Publish", "PublishBatch",
                       "GetSubscriptionAttributes", "SetSubscriptionAttributes"] {
            #expect(Self.sns.supports(action), "sns \(action)")
        }
        for action in ["CreatePolicy", "GetPolicy", "ListPolicies", "DeletePolicy", "CreateRole", "GetRole", "ListRoles", "DeleteRole",
                       "AttachRolePolicy", "DetachRolePolicy", "ListAttachedRolePolicies"] {
            #expect(Self.iam.supports(action), "iam \(action)")
        }
        #expect(Self.sts.supports("GetCallerIdentity"))
        #expect(Self.sts.supports("AssumeRole"))
        // Nimbus-internal (the IAM node serves them over nimbus/1 only) and what the nodes do not serve.
        for action in ["GetSigningKey", "GetAWSSigningKey", "GetServiceCredentials", "GetSessionToken", "PolicyVersion"] {
            #expect(!Self.sts.supports(action), "sts \(action)")
        }
        #expect(!Self.iam.supports("SimulatePrincipalPolicy"))
        #expect(!Self.iam.supports("CreateUser"))
        #expect(!Self.sqs.supports("TagQueue"))
        #expect(!Self.sns.supports("CreatePlatformApplication"))
        #expect(Self.error { try Self.json(Self.sts, "GetSigningKey", []) }?.code == "InvalidAction")
    }

    @Test func namespacesAreTheModels() throws {
        for query in [Self.sqs, Self.sns, Self.iam, Self.sts] {
            #expect(try query.model.get().metadata.xmlNamespace == query.namespace)
        }
    }

    // MARK: SQS, form to JSON

    @Test func sqsSendMessageWithMessageAttributes() throws {
        let body = try Self.json(Self.sqs, "SendMessage", [
            ("QueueUrl", "http://localhost:4566/000000000000/POC-Queue"), ("MessageBody", "{\"order\": 1}\n"), ("DelaySeconds", "5"),
            ("MessageAttribute.1.Name", "kind"), ("MessageAttribute.1.Value.DataType", "String"),
            ("MessageAttribute.1.Value.StringValue", "order & co"),
            ("MessageAttribute.2.Name", "blob"), ("MessageAttribute.2.Value.DataType", "Binary"),
            ("MessageAttribute.2.Value.BinaryValue", "AAEC"),
            ("X-Amz-Signature", "abc"), ("Unknown.1.Thing", "x"),
        ])
        #expect(body == #"{"QueueUrl":"http://localhost:4566/000000000000/POC-Queue","MessageBody":"{\"order\": 1}\n","DelaySeconds":5,"#
            + #""MessageAttributes":{"kind":{"StringValue":"order & co","DataType":"String"},"blob":{"BinaryValue":"AAEC","DataType":"Binary"}}}"#)
    }

    @Test func sqsSetQueueAttributesAttributeMap() throws {
        let body = try Self.json(Self.sqs, "SetQueueAttributes", [
            ("QueueUrl", "http://h/000000000000/q"),
            ("Attribute.2.Name", "DelaySeconds"), ("Attribute.2.Value", "3"),
            ("Attribute.1.Name", "VisibilityTimeout"), ("Attribute.1.Value", "60"),
        ])
        #expect(body == #"{"QueueUrl":"http://h/000000000000/q","Attributes":{"VisibilityTimeout":"60","DelaySeconds":"3"}}"#)
    }

    @Test func sqsReceiveMessageFlattenedNameLists() throws {
        let body = try Self.json(Self.sqs, "ReceiveMessage", [
            ("QueueUrl", "http://h/000000000000/q"), ("AttributeName.1", "All"), ("MessageAttributeName.1", "kind"),
            ("MessageAttributeName.2", "trace"), ("MaxNumberOfMessages", "10"), ("WaitTimeSeconds", "0"),
        ])
        #expect(body == #"{"QueueUrl":"http://h/000000000000/q","AttributeNames":["All"],"MessageAttributeNames":["kind","trace"],"#
            + #""MaxNumberOfMessages":10,"WaitTimeSeconds":0}"#)
        // An empty list goes under the member's own name (botocore: `AttributeNames=`).
        #expect(try Self.json(Self.sqs, "ReceiveMessage", [("QueueUrl", "u"), ("AttributeNames", "")])
            == #"{"QueueUrl":"u","AttributeNames":[]}"#)
    }

    @Test func sqsBatchEntriesAndTags() throws {
        let body = try Self.json(Self.sqs, "SendMessageBatch", [
            ("QueueUrl", "u"),
            ("SendMessageBatchRequestEntry.1.Id", "a"), ("SendMessageBatchRequestEntry.1.MessageBody", "one"),
            ("SendMessageBatchRequestEntry.2.Id", "b"), ("SendMessageBatchRequestEntry.2.MessageBody", "two"),
            ("SendMessageBatchRequestEntry.2.MessageAttribute.1.Name", "n"),
            ("SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.DataType", "Number"),
            ("SendMessageBatchRequestEntry.2.MessageAttribute.1.Value.StringValue", "7"),
        ])
        #expect(body == #"{"QueueUrl":"u","Entries":[{"Id":"a","MessageBody":"one"},{"Id":"b","MessageBody":"two","#
            + #""MessageAttributes":{"n":{"StringValue":"7","DataType":"Number"}}}]}"#)
        #expect(try Self.json(Self.sqs, "CreateQueue", [("QueueName", "q"), ("Tag.1.Key", "team"), ("Tag.1.Value", "lab")])
            == #"{"QueueName":"q","tags":{"team":"lab"}}"#)
    }

    @Test func sqsBadInputIsAnAWSError() {
        let missing = Self.error { try Self.json(Self.sqs, "SendMessage", [("QueueUrl", "u")]) }
        #expect(missing == EdgeError("MissingParameter", "The request must contain the parameter MessageBody."))
        let notANumber = Self.error { try Self.json(Self.sqs, "SendMessage", [("QueueUrl", "u"), ("MessageBody", "b"), ("DelaySeconds", "soon")]) }
        #expect(notANumber?.code == "InvalidParameterValue")
        #expect(notANumber?.message.contains("DelaySeconds") == true)
        let tooBig = Self.error { try Self.json(Self.sqs, "ReceiveMessage", [("QueueUrl", "u"), ("MaxNumberOfMessages", "99999999999")]) }
        #expect(tooBig?.code == "InvalidParameterValue")
        let nestedMissing = Self.error {
            try Self.json(Self.sqs, "SendMessage", [("QueueUrl", "u"), ("MessageBody", "b"), ("MessageAttribute.1.Name", "k"),
                                                    ("MessageAttribute.1.Value.StringValue", "v")])
        }
        #expect(nestedMissing == EdgeError("MissingParameter", "The request must contain the parameter MessageAttribute.1.Value.DataType."))
        let keyless = Self.error { try Self.json(Self.sqs, "SetQueueAttributes", [("QueueUrl", "u"), ("Attribute.1.Value", "3")]) }
        #expect(keyless == EdgeError("MissingParameter", "The request must contain the parameter Attribute.1.Name."))
        let badBlob = Self.error {
            try Self.json(Self.sqs, "SendMessage", [("QueueUrl", "u"), ("MessageBody", "b"), ("MessageAttribute.1.Name", "k"),
                                                    ("MessageAttribute.1.Value.DataType", "Binary"), ("MessageAttribute.1.Value.BinaryValue", "%%")])
        }
        #expect(badBlob?.code == "InvalidParameterValue")
    }

    // MARK: SQS, JSON to XML

    @Test func sqsReceiveMessageAnswer() throws {
        let answer = #"{"Messages":[{"MessageId":"m-1","ReceiptHandle":"r<1>","MD5OfBody":"abc","Body":"<order id=\"1\"/>","#
            + #""Attributes":{"SentTimestamp":"1765130400000","ApproximateReceiveCount":"1"},"MD5OfMessageAttributes":"def","#
            + #""MessageAttributes":{"kind":{"DataType":"String","StringValue":"order"},"raw":{"DataType":"Binary","BinaryValue":"AAEC"}}}]}"#
        #expect(try Self.xml(Self.sqs, "ReceiveMessage", answer) == """
            <?xml version="1.0"?><ReceiveMessageResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/"><ReceiveMessageResult>\
            <Message><MessageId>m-1</MessageId><ReceiptHandle>r&lt;1&gt;</ReceiptHandle><MD5OfBody>abc</MD5OfBody>\
            <Body>&lt;order id=&quot;1&quot;/&gt;</Body>\
            <Attribute><Name>ApproximateReceiveCount</Name><Value>1</Value></Attribute>\
            <Attribute><Name>SentTimestamp</Name><Value>1765130400000</Value></Attribute>\
            <MD5OfMessageAttributes>def</MD5OfMessageAttributes>\
            <MessageAttribute><Name>kind</Name><Value><StringValue>order</StringValue><DataType>String</DataType></Value></MessageAttribute>\
            <MessageAttribute><Name>raw</Name><Value><BinaryValue>AAEC</BinaryValue><DataType>Binary</DataType></Value></MessageAttribute>\
            </Message></ReceiveMessageResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></ReceiveMessageResponse>
            """)
        // No messages: an empty Result, as SQS answers.
        #expect(try Self.xml(Self.sqs, "ReceiveMessage", #"{"Messages":[]}"#).contains("<ReceiveMessageResult></ReceiveMessageResult>"))
    }

    @Test func sqsBatchAndListAnswers() throws {
        let batch = try Self.xml(Self.sqs, "SendMessageBatch", #"{"Successful":[{"Id":"a","MessageId":"m","MD5OfMessageBody":"x"}],"#
            + #""Failed":[{"Id":"b","SenderFault":true,"Code":"InvalidParameterValue","Message":"too big"}]}"#)
        #expect(batch.contains("<SendMessageBatchResult><SendMessageBatchResultEntry><Id>a</Id><MessageId>m</MessageId>"
            + "<MD5OfMessageBody>x</MD5OfMessageBody></SendMessageBatchResultEntry><BatchResultErrorEntry><Id>b</Id>"
            + "<SenderFault>true</SenderFault><Code>InvalidParameterValue</Code><Message>too big</Message></BatchResultErrorEntry>"
            + "</SendMessageBatchResult>"))
        let list = try Self.xml(Self.sqs, "ListQueues", #"{"QueueUrls":["http://h/0/a","http://h/0/b"]}"#)
        #expect(list.contains("<ListQueuesResult><QueueUrl>http://h/0/a</QueueUrl><QueueUrl>http://h/0/b</QueueUrl></ListQueuesResult>"))
        let deleted = try Self.xml(Self.sqs, "DeleteMessage", "{}")
        #expect(deleted == """
            <?xml version="1.0"?><DeleteMessageResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/">\
            <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></DeleteMessageResponse>
            """)
    }

    // MARK: SNS

    @Test func snsSubscribeAndSetTopicAttributes() throws {
        let subscribe = try Self.json(Self.sns, "Subscribe", [
            ("TopicArn", "arn:aws:sns:us-east-1:000000000000:t"), ("Protocol", "sqs"), ("Endpoint", "arn:aws:sqs:us-east-1:000000000000:q"),
            ("ReturnSubscriptionArn", "true"),
            ("Attributes.entry.1.key", "RawMessageDelivery"), ("Attributes.entry.1.value", "true"),
            ("Attributes.entry.2.key", "FilterPolicy"), ("Attributes.entry.2.value", #"{"kind":["order"]}"#),
        ])
        #expect(subscribe == #"{"TopicArn":"arn:aws:sns:us-east-1:000000000000:t","Protocol":"sqs","Endpoint":"arn:aws:sqs:us-east-1:000000000000:q","#
            + #""Attributes":{"RawMessageDelivery":"true","FilterPolicy":"{\"kind\":[\"order\"]}"},"ReturnSubscriptionArn":true}"#)
        let set = try Self.json(Self.sns, "SetTopicAttributes", [("TopicArn", "arn:t"), ("AttributeName", "DisplayName"), ("AttributeValue", "Orders")])
        #expect(set == #"{"TopicArn":"arn:t","AttributeName":"DisplayName","AttributeValue":"Orders"}"#)
        #expect(Self.error { try Self.json(Self.sns, "Subscribe", [("TopicArn", "arn:t"), ("ReturnSubscriptionArn", "yes"), ("Protocol", "sqs")]) }?
            .code == "InvalidParameterValue")
        #expect(Self.error { try Self.json(Self.sns, "Subscribe", [("TopicArn", "arn:t")]) }
            == EdgeError("MissingParameter", "The request must contain the parameter Protocol."))
    }

    @Test func snsPublishWithMessageAttributes() throws {
        let body = try Self.json(Self.sns, "Publish", [
            ("TopicArn", "arn:t"), ("Message", "hello"), ("Subject", "hi"),
            ("MessageAttributes.entry.1.Name", "kind"), ("MessageAttributes.entry.1.Value.DataType", "String"),
            ("MessageAttributes.entry.1.Value.StringValue", "order"),
            ("MessageAttributes.entry.2.Name", "n"), ("MessageAttributes.entry.2.Value.DataType", "Number"),
            ("MessageAttributes.entry.2.Value.StringValue", "3"),
        ])
        #expect(body == #"{"TopicArn":"arn:t","Message":"hello","Subject":"hi","#
            + #""MessageAttributes":{"kind":{"DataType":"String","StringValue":"order"},"n":{"DataType":"Number","StringValue":"3"}}}"#)
        #expect(try Self.xml(Self.sns, "Publish", #"{"MessageId":"m-1"}"#) == """
            <?xml version="1.0"?><PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>m-1</MessageId>\
            </PublishResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></PublishResponse>
            """)
    }

    @Test func snsPublishBatchEntries() throws {
        let body = try Self.json(Self.sns, "PublishBatch", [
            ("TopicArn", "arn:t"),
            ("PublishBatchRequestEntries.member.1.Id", "1"), ("PublishBatchRequestEntries.member.1.Message", "one"),
            ("PublishBatchRequestEntries.member.2.Id", "2"), ("PublishBatchRequestEntries.member.2.Message", "two"),
            ("PublishBatchRequestEntries.member.2.MessageAttributes.entry.1.Name", "k"),
            ("PublishBatchRequestEntries.member.2.MessageAttributes.entry.1.Value.DataType", "String"),
            ("PublishBatchRequestEntries.member.2.MessageAttributes.entry.1.Value.StringValue", "v"),
        ])
        #expect(body == #"{"TopicArn":"arn:t","PublishBatchRequestEntries":[{"Id":"1","Message":"one"},{"Id":"2","Message":"two","#
            + #""MessageAttributes":{"k":{"DataType":"String","StringValue":"v"}}}]}"#)
        #expect(Self.error { try Self.json(Self.sns, "PublishBatch", [("TopicArn", "arn:t"), ("PublishBatchRequestEntries.member.1.Message", "m")]) }
            == EdgeError("MissingParameter", "The request must contain the parameter PublishBatchRequestEntries.member.1.Id."))
        let answer = try Self.xml(Self.sns, "PublishBatch", #"{"Successful":[{"Id":"1","MessageId":"m"}],"Failed":[]}"#)
        #expect(answer.contains("<PublishBatchResult><Successful><member><Id>1</Id><MessageId>m</MessageId></member></Successful>"
            + "<Failed></Failed></PublishBatchResult>"))
    }

    @Test func snsAttributeAndListAnswers() throws {
        let attributes = try Self.xml(Self.sns, "GetTopicAttributes", #"{"Attributes":{"TopicArn":"arn:t","DisplayName":"A & B"}}"#)
        #expect(attributes.contains("<GetTopicAttributesResult><Attributes><entry><key>DisplayName</key><value>A &amp; B</value></entry>"
            + "<entry><key>TopicArn</key><value>arn:t</value></entry></Attributes></GetTopicAttributesResult>"))
        let subscriptions = try Self.xml(Self.sns, "ListSubscriptionsByTopic", #"{"Subscriptions":[{"SubscriptionArn":"arn:t:1","Owner":"0","#
            + #""Protocol":"sqs","Endpoint":"arn:q","TopicArn":"arn:t"}],"NextToken":null}"#)
        #expect(subscriptions.contains("<ListSubscriptionsByTopicResult><Subscriptions><member><SubscriptionArn>arn:t:1</SubscriptionArn>"
            + "<Owner>0</Owner><Protocol>sqs</Protocol><Endpoint>arn:q</Endpoint><TopicArn>arn:t</TopicArn></member></Subscriptions>"
            + "</ListSubscriptionsByTopicResult>"))
        let topics = try Self.xml(Self.sns, "ListTopics", #"{"Topics":[{"TopicArn":"arn:a"},{"TopicArn":"arn:b"}],"NextToken":"2"}"#)
        #expect(topics.contains("<ListTopicsResult><Topics><member><TopicArn>arn:a</TopicArn></member><member><TopicArn>arn:b</TopicArn>"
            + "</member></Topics><NextToken>2</NextToken></ListTopicsResult>"))
        #expect(try Self.xml(Self.sns, "DeleteTopic", "{}").contains("<DeleteTopicResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">"
            + "<ResponseMetadata>"))
    }

    // MARK: IAM and STS

    @Test func iamCreateRoleForm() throws {
        let trust = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#
        let body = try Self.json(Self.iam, "CreateRole", [
            ("RoleName", "r"), ("AssumeRolePolicyDocument", trust), ("MaxSessionDuration", "3600"),
            ("Tags.member.1.Key", "team"), ("Tags.member.1.Value", "lab"),
        ])
        #expect(body == #"{"RoleName":"r","AssumeRolePolicyDocument":"{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\","#
            + #"\"Principal\":{\"AWS\":\"*\"},\"Action\":\"sts:AssumeRole\"}]}","MaxSessionDuration":3600,"Tags":[{"Key":"team","Value":"lab"}]}"#)
    }

    @Test func iamListRolesAnswer() throws {
        let answer = #"{"Roles":[{"Path":"/","RoleName":"lab","RoleId":"AROA1","Arn":"arn:aws:iam::000000000000:role/lab","#
            + #""CreateDate":"2026-12-07T19:00:00Z","AssumeRolePolicyDocument":"{\"Version\": \"2012-10-17\"}"},"#
            + #"{"Path":"/","RoleName":"b","RoleId":"AROA2","Arn":"arn:b","CreateDate":1796670000000,"AssumeRolePolicyDocument":"{}"}],"IsTruncated":false}"#
        #expect(try Self.xml(Self.iam, "ListRoles", answer) == """
            <?xml version="1.0"?><ListRolesResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><ListRolesResult><Roles>\
            <member><Path>/</Path><RoleName>lab</RoleName><RoleId>AROA1</RoleId><Arn>arn:aws:iam::000000000000:role/lab</Arn>\
            <CreateDate>2026-12-07T19:00:00Z</CreateDate>\
            <AssumeRolePolicyDocument>%7B%22Version%22%3A%20%222012-10-17%22%7D</AssumeRolePolicyDocument></member>\
            <member><Path>/</Path><RoleName>b</RoleName><RoleId>AROA2</RoleId><Arn>arn:b</Arn><CreateDate>2026-12-07T19:00:00Z</CreateDate>\
            <AssumeRolePolicyDocument>%7B%7D</AssumeRolePolicyDocument></member>\
            </Roles><IsTruncated>false</IsTruncated></ListRolesResult><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>\
            </ListRolesResponse>
            """)
    }

    @Test func iamPolicyAnswers() throws {
        let policy = try Self.xml(Self.iam, "GetPolicy", #"{"Policy":{"PolicyName":"p","PolicyId":"ANPA1","Arn":"arn:p","Path":"/","#
            + #""DefaultVersionId":"v1","AttachmentCount":2,"IsAttachable":true,"CreateDate":"2026-12-07T19:00:00Z","UpdateDate":"2026-12-07T19:00:00Z"}}"#)
        #expect(policy.contains("<GetPolicyResult><Policy><PolicyName>p</PolicyName><PolicyId>ANPA1</PolicyId><Arn>arn:p</Arn><Path>/</Path>"
            + "<DefaultVersionId>v1</DefaultVersionId><AttachmentCount>2</AttachmentCount><IsAttachable>true</IsAttachable>"
            + "<CreateDate>2026-12-07T19:00:00Z</CreateDate><UpdateDate>2026-12-07T19:00:00Z</UpdateDate></Policy></GetPolicyResult>"))
        let attached = try Self.xml(Self.iam, "ListAttachedRolePolicies",
                                    #"{"AttachedPolicies":[{"PolicyName":"p","PolicyArn":"arn:p"}],"IsTruncated":false}"#)
        #expect(attached.contains("<AttachedPolicies><member><PolicyName>p</PolicyName><PolicyArn>arn:p</PolicyArn></member></AttachedPolicies>"
            + "<IsTruncated>false</IsTruncated>"))
    }

    @Test func stsAnswers() throws {
        let identity = #"{"UserId":"000000000000","Arn":"arn:aws:iam::000000000000:root","Account":"000000000000"}"#
        #expect(try Self.xml(Self.sts, "GetCallerIdentity", identity) == """
            <?xml version="1.0"?><GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>\
            <UserId>000000000000</UserId><Account>000000000000</Account><Arn>arn:aws:iam::000000000000:root</Arn></GetCallerIdentityResult>\
            <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></GetCallerIdentityResponse>
            """)
        // The node's Expiration is epoch milliseconds; its Principal is no member of the shape.
        let assumed = try Self.xml(Self.sts, "AssumeRole", #"{"Credentials":{"AccessKeyId":"ASIA1","SecretAccessKey":"s/k+","#
            + #""SessionToken":"tok","Expiration":1796670000123,"Principal":"arn:aws:sts::0:assumed-role/r/s"},"#
            + #""AssumedRoleUser":{"Arn":"arn:aws:sts::0:assumed-role/r/s","AssumedRoleId":"AROA1:s"}}"#)
        #expect(assumed.contains("<AssumeRoleResult><Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>s/k+</SecretAccessKey>"
            + "<SessionToken>tok</SessionToken><Expiration>2026-12-07T19:00:00Z</Expiration></Credentials><AssumedRoleUser>"
            + "<AssumedRoleId>AROA1:s</AssumedRoleId><Arn>arn:aws:sts::0:assumed-role/r/s</Arn></AssumedRoleUser></AssumeRoleResult>"))
        #expect(try Self.json(Self.sts, "AssumeRole", [("RoleArn", "arn:r"), ("RoleSessionName", "s"), ("DurationSeconds", "900"),
                                                       ("ServicePrincipal", "lambda.amazonaws.com")])
            == #"{"RoleArn":"arn:r","RoleSessionName":"s","DurationSeconds":900}"#)
        #expect(try Self.json(Self.sts, "GetCallerIdentity", []) == "{}")
    }

    @Test func answersThatAreNotJSONAreOurFault() {
        let error = Self.error { try Self.xml(Self.sns, "Publish", "<html>") }
        #expect(error?.code == "InternalFailure")
        #expect(error?.status == 500)
    }

    // MARK: Pieces

    @Test func isoTimestamps() {
        #expect(ISOTime.string(epochSeconds: 0) == "1970-01-01T00:00:00Z")
        #expect(ISOTime.string(epochSeconds: 951_782_400) == "2000-02-29T00:00:00Z")
        #expect(ISOTime.string(epochSeconds: 1_796_670_000) == "2026-12-07T19:00:00Z")
        #expect(ISOTime.string(epochSeconds: -1) == "1969-12-31T23:59:59Z")
        #expect(ISOTime.string(epoch: 1_796_670_000_999) == "2026-12-07T19:00:00Z")
        #expect(ISOTime.string(epoch: 1_796_670_000.5) == "2026-12-07T19:00:00Z")
        #expect(ISOTime.epochSeconds("2026-12-07T19:00:00Z") == 1_796_670_000)
        #expect(ISOTime.epochSeconds("2026-12-07T19:00:00.250Z") == 1_796_670_000.25)
    }

    @Test func xmlTextIsAlwaysWellFormed() {
        #expect(XMLText.escape("a<b>&\"'\r\n\t\u{1}z") == "a&lt;b&gt;&amp;&quot;&apos;&#xD;\n\t\u{FFFD}z")
    }

    @Test func jsonValuesKeepTheirKinds() throws {
        let value = try JSONValue.parse(Data(#"{"b":true,"i":1,"d":1.5,"s":"x\u0001\"","a":[false,0],"n":null}"#.utf8))
        #expect(value.serialized == #"{"a":[false,0],"b":true,"d":1.5,"i":1,"n":null,"s":"x\u0001\""}"#)
    }
}
