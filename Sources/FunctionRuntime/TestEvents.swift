/// Lambda's action names, as IAM policies spell them. Each is served by the worker that hosts the
/// function (`FunctionNodeService`); the AWS endpoint's Lambda REST API forwards to them under these
/// names ("lambda:" and the IAM action), bodies and answers in the shapes `LambdaAPI.swift` describes.
public enum LambdaAction {
    /// Runs a function once with a given event (the console's Test button; `nimbus invoke`). The body
    /// is the event itself.
    public static let invoke = "lambda:Invoke"
    /// Lambda's Invoke API (IAM authorizes it as lambda:InvokeFunction): RequestResponse, Event or
    /// DryRun, the event as text (`InvokeFunctionRequest`).
    public static let invokeFunction = "lambda:InvokeFunction"
    /// The function's configuration and code location (GetFunction's answer).
    public static let getFunction = "lambda:GetFunction"
    /// The function's configuration alone.
    public static let getFunctionConfiguration = "lambda:GetFunctionConfiguration"
    /// The functions this worker hosts (one), as ListFunctions lists them.
    public static let listFunctions = "lambda:ListFunctions"
    /// The worker's triggers, optionally filtered by function or event source.
    public static let listEventSourceMappings = "lambda:ListEventSourceMappings"
    public static let getEventSourceMapping = "lambda:GetEventSourceMapping"
    /// Enables or disables a trigger, or changes its BatchSize or MaximumBatchingWindowInSeconds.
    public static let updateEventSourceMapping = "lambda:UpdateEventSourceMapping"

    /// Every action a function's worker serves.
    public static let served: Set<String> = [invoke, invokeFunction, getFunction, getFunctionConfiguration, listFunctions,
                                             listEventSourceMappings, getEventSourceMapping, updateEventSourceMapping]
}

/// The Lambda console's test events for the lab's two triggers, shared by `nimbus invoke` and the
/// web console. They keep their fixed ids, so invoking one twice shows the functions' idempotency:
/// the order is written once, the notification sent once.
public enum TestEvents {
    /// The template names, as `nimbus invoke --template` and GET /console/api/templates spell them.
    public static let names = ["sqs", "dynamodb-update"]

    /// The template called `name` (one of `names`); nil for another name.
    public static func named(_ name: String, region: String, account: String) -> String? {
        switch name.lowercased() {
        case "sqs": return sqs(region: region, account: account)
        case "dynamodb-update": return dynamoDBUpdate(region: region, account: account)
        default: return nil
        }
    }

    /// "Hello from SQS!" (lab step 4.4), for the ingest worker.
    public static func sqs(region: String, account: String) -> String {
        """
        {"Records": [{"messageId": "19dd0b57-b21e-4ac1-bd88-01bbb068cb78", "receiptHandle": "MessageReceiptHandle",
          "body": "Hello from SQS!",
          "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1523232000000", "SenderId": "\(account)",
                         "ApproximateFirstReceiveTimestamp": "1523232000001"},
          "messageAttributes": {}, "md5OfBody": "7b270e59b47ff90a553787216d55d91d", "eventSource": "aws:sqs",
          "eventSourceARN": "arn:aws:sqs:\(region):\(account):MyQueue", "awsRegion": "\(region)"}]}
        """
    }

    /// An INSERT, a MODIFY and a REMOVE record (lab step 7.4), for the stream worker.
    public static func dynamoDBUpdate(region: String, account: String) -> String {
        let arn = "arn:aws:dynamodb:\(region):\(account):table/ExampleTableWithStream/stream/2015-06-27T00:48:05.899"
        return """
        {"Records": [
          {"eventID": "1", "eventVersion": "1.0", "eventName": "INSERT", "eventSource": "aws:dynamodb", "awsRegion": "\(region)",
           "eventSourceARN": "\(arn)",
           "dynamodb": {"Keys": {"Id": {"N": "101"}}, "NewImage": {"Message": {"S": "New item!"}, "Id": {"N": "101"}},
                        "StreamViewType": "NEW_AND_OLD_IMAGES", "SequenceNumber": "111", "SizeBytes": 26}},
          {"eventID": "2", "eventVersion": "1.0", "eventName": "MODIFY", "eventSource": "aws:dynamodb", "awsRegion": "\(region)",
           "eventSourceARN": "\(arn)",
           "dynamodb": {"Keys": {"Id": {"N": "101"}}, "NewImage": {"Message": {"S": "This item has changed"}, "Id": {"N": "101"}},
                        "OldImage": {"Message": {"S": "New item!"}, "Id": {"N": "101"}},
                        "StreamViewType": "NEW_AND_OLD_IMAGES", "SequenceNumber": "222", "SizeBytes": 59}},
          {"eventID": "3", "eventVersion": "1.0", "eventName": "REMOVE", "eventSource": "aws:dynamodb", "awsRegion": "\(region)",
           "eventSourceARN": "\(arn)",
           "dynamodb": {"Keys": {"Id": {"N": "101"}}, "OldImage": {"Message": {"S": "This item has changed"}, "Id": {"N": "101"}},
                        "StreamViewType": "NEW_AND_OLD_IMAGES", "SequenceNumber": "333", "SizeBytes": 38}}]}
        """
    }
}
