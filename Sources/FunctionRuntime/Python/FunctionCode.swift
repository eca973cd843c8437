import Foundation
import NimbusStack

/// What a Python function runs, as the stack gives it (AWS::Lambda::Function's Code):
/// - `Code: {ZipFile: |...}` — the source inline, CloudFormation's form for a short Python function:
///   written to `<data>/functions/<FunctionName>/index.py` (module `index`, so `Handler: index.NAME`,
///   as CloudFormation does with ZipFile).
/// - `Code: path/to/folder` — a local folder holding the modules, the form `aws cloudformation package`
///   takes before it uploads the folder to S3 (Nimbus has no S3, so the folder is used where it is;
///   a relative path is relative to the stack file's folder).
/// `S3Bucket`/`S3Key` and `ImageUri` are refused: Nimbus has no S3 and no container images.
public enum FunctionCode: Sendable, Equatable {
    case inline(String)
    case folder(String)

    init(_ value: StackValue, resolver: StackResolver, logicalID: String) throws {
        switch value {
        case .map(let map):
            if let zip = map["ZipFile"] {
                self = .inline(try resolver.string(zip))
            } else if map["S3Bucket"] != nil || map["S3Key"] != nil {
                throw FunctionDefinitionError(description: "\(logicalID): Code.S3Bucket/S3Key needs S3, which Nimbus does not have: "
                                              + "give Code: {ZipFile: ...} or a local folder (Code: path/to/folder)")
            } else if map["ImageUri"] != nil {
                throw FunctionDefinitionError(description: "\(logicalID): Code.ImageUri: Nimbus runs no container images; "
                                              + "give Code: {ZipFile: ...} or a local folder (Code: path/to/folder)")
            } else {
                throw FunctionDefinitionError(description: "\(logicalID): Code must be {ZipFile: SOURCE} or a local folder path")
            }
        case .list:
            throw FunctionDefinitionError(description: "\(logicalID): Code must be {ZipFile: SOURCE} or a local folder path")
        default:
            let path = try resolver.string(value)
            guard !path.isEmpty else { throw FunctionDefinitionError(description: "\(logicalID): Code is an empty path") }
            self = .folder(path)
        }
    }

    /// The folder the runtime imports the handler's module from (LAMBDA_TASK_ROOT): the inline source
    /// written out (atomically: several workers of one kind may write it at once), or the folder itself.
    public func taskRoot(function: String, dataDirectory: URL, stackDirectory: URL?) throws -> URL {
        switch self {
        case .inline(let source):
            let folder = dataDirectory.appendingPathComponent("functions").appendingPathComponent(function)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let file = folder.appendingPathComponent("index.py")
            if (try? String(contentsOf: file, encoding: .utf8)) != source {
                let temporary = folder.appendingPathComponent(".index.py.\(getpid()).tmp")
                try Data(source.utf8).write(to: temporary)
                guard rename(temporary.path, file.path) == 0 else {
                    let reason = String(cString: strerror(errno))
                    try? FileManager.default.removeItem(at: temporary)
                    throw FunctionDefinitionError(description: "cannot write \(file.path): \(reason)")
                }
            }
            return folder
        case .folder(let path):
            let url = path.hasPrefix("/") || stackDirectory == nil
                ? URL(fileURLWithPath: path) : stackDirectory!.appendingPathComponent(path)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw FunctionDefinitionError(description: "the code folder \(url.standardizedFileURL.path) does not exist")
            }
            return url.standardizedFileURL
        }
    }
}

extension FunctionDefinition {
    /// The built-in runtime: a Swift handler compiled into the worker. Declared as AWS declares a
    /// custom runtime (Swift on Lambda runs on `provided.al2023`), with `Code` naming the handler's
    /// bundle in the `nimbus-builtin` bucket, so the template is valid CloudFormation; `nimbus-swift`
    /// is the older spelling, still read.
    public static let builtInRuntime = "provided.al2023"
    static let builtInRuntimes: Set<String> = ["provided.al2023", "provided.al2", "provided", "nimbus-swift"]
    /// The bucket whose keys name built-in handlers (`S3Key: LabFunctions.IngestOrders.zip`).
    public static let builtInBucket = "nimbus-builtin"

    /// Reads and checks what a Python function needs (Runtime, Handler, Code, MemorySize); a
    /// built-in function needs none of it.
    mutating func loadRuntime(_ resource: StackTemplate.Resource, resolver: StackResolver) throws {
        let p = resource.properties
        let runtime = try p["Runtime"].map { try resolver.string($0) } ?? Self.builtInRuntime
        if Self.builtInRuntimes.contains(runtime) {
            // The handler is compiled into the worker; Code, when given, must say so.
            if case .map(let code)? = p["Code"], let bucket = code["S3Bucket"], try resolver.string(bucket) != Self.builtInBucket {
                throw FunctionDefinitionError(description: "\(resource.logicalID): Runtime \(runtime) runs a handler built into the worker: "
                                              + "Code is {S3Bucket: \(Self.builtInBucket), S3Key: HANDLER.zip}; for Python give Runtime python3.x")
            }
            return
        }
        if let code = p["Code"] { self.code = try FunctionCode(code, resolver: resolver, logicalID: resource.logicalID) }
        guard PythonRuntime.isPython(runtime) else {
            throw FunctionDefinitionError(description: "\(resource.logicalID): Runtime \(runtime) is not one Nimbus runs "
                                          + "(\(Self.builtInRuntime) with Code {S3Bucket: \(Self.builtInBucket), ...} for a built-in handler, or python3.x)")
        }
        let handler = try p["Handler"].map { try resolver.string($0) } ?? ""
        guard let dot = handler.lastIndex(of: "."), dot != handler.startIndex, handler.index(after: dot) != handler.endIndex else {
            throw FunctionDefinitionError(description: "\(resource.logicalID): a Python function's Handler is MODULE.FUNCTION "
                                          + "(index.lambda_handler for Code: {ZipFile: ...}), not \"\(handler)\"")
        }
        guard code != nil else {
            throw FunctionDefinitionError(description: "\(resource.logicalID): a Python function needs Code: {ZipFile: ...} or a local folder")
        }
        if let m = p["MemorySize"] {
            guard let mb = Int(try resolver.string(m)), (128...10_240).contains(mb) else {
                throw FunctionDefinitionError(description: "\(resource.logicalID): MemorySize must be 128..10240 (MB)")
            }
        }
    }
}
