import CZlib
import Foundation

/// `Content-Encoding: gzip` request bodies (the AWS CLI may compress large ones), inflated with
/// zlib. Bounded: a body that inflates past `limit` is refused rather than filling memory.
enum Gzip {
    struct TooLarge: Error {}
    struct Corrupt: Error { var reason: String }

    static func inflate(_ data: Data, limit: Int) throws -> Data {
        var stream = z_stream()
        // 16 + MAX_WBITS: a gzip header, not zlib's.
        guard inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw Corrupt(reason: "zlib would not start")
        }
        defer { inflateEnd(&stream) }
        var output = Data()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        var input = [UInt8](data)
        let status: Int32 = input.withUnsafeMutableBufferPointer { source in
            stream.next_in = source.baseAddress
            stream.avail_in = uInt(source.count)
            var result: Int32 = Z_OK
            repeat {
                result = chunk.withUnsafeMutableBufferPointer { target in
                    stream.next_out = target.baseAddress
                    stream.avail_out = uInt(target.count)
                    return CZlib.inflate(&stream, Z_NO_FLUSH)
                }
                let produced = chunk.count - Int(stream.avail_out)
                output.append(contentsOf: chunk[0..<produced])
                if output.count > limit { return -100 }
            } while result == Z_OK && (stream.avail_in > 0 || stream.avail_out == 0)
            return result
        }
        if status == -100 { throw TooLarge() }
        guard status == Z_STREAM_END else { throw Corrupt(reason: "the gzip body is truncated or corrupt (zlib status \(status))") }
        return output
    }
}
