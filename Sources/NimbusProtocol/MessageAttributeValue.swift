/// A message attribute as SQS's and SNS's JSON protocols carry it (the same shape in both).
public struct MessageAttributeValue: Codable, Equatable, Sendable {
    public var DataType: String
    public var StringValue: String?
    /// Base64, as in the JSON protocols.
    public var BinaryValue: String?

    public init(DataType: String, StringValue: String? = nil, BinaryValue: String? = nil) {
        self.DataType = DataType
        self.StringValue = StringValue
        self.BinaryValue = BinaryValue
    }
}
