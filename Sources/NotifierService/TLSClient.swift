import COpenSSL
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a TLS client trusts and offers, made once and shared by every connection of a client (SMTP, HTTP):
/// TLS 1.2 or newer, the peer's certificate verified against the system's CA store (or a given PEM
/// file) and against the host name we connected to.
final class TLSClientContext: @unchecked Sendable {
    // An SSL_CTX is safe to share between connections once configured; it is never changed after init.
    let context: OpaquePointer

    /// `toleratingUnexpectedEOF`: a peer that closes the connection without TLS's close_notify reads
    /// as a clean close instead of an error (for HTTP, where an answer's length says where it ends).
    init(caFile: String?, toleratingUnexpectedEOF: Bool = false) throws {
        // OpenSSL writes to its socket with write(2), which raises SIGPIPE when the server has gone;
        // the default action would kill the node. (Plain writes use MSG_NOSIGNAL instead.)
        signal(SIGPIPE, SIG_IGN)
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw TLSError("cannot create a TLS context: \(TLSClientContext.lastError())") }
        self.context = context
        SSL_CTX_ctrl(context, SSL_CTRL_SET_MIN_PROTO_VERSION, Int(TLS1_2_VERSION), nil)
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        if toleratingUnexpectedEOF { SSL_CTX_set_options(context, nimbus_ssl_op_ignore_unexpected_eof()) }
        if let caFile {
            // Retryable like any connection failure: the mail is not at fault, and the file can be fixed.
            guard SSL_CTX_load_verify_locations(context, caFile, nil) == 1 else {
                throw TLSError("cannot load the CA certificates in \(caFile): \(TLSClientContext.lastError())")
            }
        } else if SSL_CTX_set_default_verify_paths(context) != 1 {
            throw TLSError("cannot load the system's CA certificates: \(TLSClientContext.lastError())")
        }
    }

    deinit { SSL_CTX_free(context) }

    /// The oldest queued OpenSSL error as text (and the queue emptied), or "unknown error".
    static func lastError() -> String {
        var text = "unknown error"
        let code = ERR_get_error()
        if code != 0 {
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        ERR_clear_error()
        return text
    }
}

/// A TLS failure: a handshake refused (with OpenSSL's reason) or a read or write that failed. The
/// connection is not usable after it.
struct TLSError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One TLS session over a connected, blocking socket (its SO_RCVTIMEO/SO_SNDTIMEO bound every read
/// and write, the handshake included). The socket stays the caller's to close.
final class TLSStream {
    private let ssl: OpaquePointer
    private var open = true

    /// Runs the handshake as a client of `host`; throws when it fails or the certificate does not
    /// verify (with OpenSSL's reason: expired, self-signed, wrong name, ...).
    init(context: TLSClientContext, socket: Int32, host: String) throws {
        guard let ssl = SSL_new(context.context) else { throw TLSError("cannot start TLS: \(TLSClientContext.lastError())") }
        self.ssl = ssl
        SSL_set_fd(ssl, socket)
        let parameters = SSL_get0_param(ssl)
        if Self.isIPAddress(host) {
            X509_VERIFY_PARAM_set1_ip_asc(parameters, host)
        } else {
            // SNI names the host (never an address, RFC 6066), and the certificate must name it too.
            _ = host.withCString { SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, Int(TLSEXT_NAMETYPE_host_name), UnsafeMutableRawPointer(mutating: $0)) }
            X509_VERIFY_PARAM_set1_host(parameters, host, 0)
        }
        ERR_clear_error()
        let result = SSL_connect(ssl)
        guard result == 1 else {
            let verify = SSL_get_verify_result(ssl)
            let reason = verify != X509_V_OK
                ? "certificate verification failed: \(String(cString: X509_verify_cert_error_string(verify)))"
                : describe(result, operation: "handshake")
            SSL_free(ssl)
            open = false
            // A certificate that does not verify will not verify on the next attempt either, but the
            // operator may fix the relay or the CA file: left retryable, like every connection failure.
            throw TLSError("TLS handshake with \(host) failed: \(reason)")
        }
    }

    deinit { close() }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            ERR_clear_error()
            let n = bytes[offset...].withUnsafeBytes { SSL_write(ssl, $0.baseAddress, Int32($0.count)) }
            guard n > 0 else { throw TLSError("write over TLS failed: \(describe(n, operation: "write"))") }
            offset += Int(n)
        }
    }

    /// Up to `buffer.count` bytes; 0 when the server closed the session.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        ERR_clear_error()
        let n = SSL_read(ssl, buffer.baseAddress, Int32(buffer.count))
        if n > 0 { return Int(n) }
        let error = SSL_get_error(ssl, n)
        if error == SSL_ERROR_ZERO_RETURN { return 0 }
        throw TLSError("read over TLS failed: \(describe(n, operation: "read"))")
    }

    /// Sends close_notify (best effort) and frees the session.
    func close() {
        guard open else { return }
        open = false
        SSL_shutdown(ssl)
        SSL_free(ssl)
    }

    private func describe(_ result: Int32, operation: String) -> String {
        let saved = errno
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return "the server did not answer in time"
        case SSL_ERROR_SYSCALL:
            if saved == EAGAIN || saved == EWOULDBLOCK { return "the server did not answer in time" }
            return saved == 0 ? "the server closed the connection during the \(operation)" : String(cString: strerror(saved))
        case SSL_ERROR_ZERO_RETURN:
            return "the server closed the TLS session"
        default:
            return TLSClientContext.lastError()
        }
    }

    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}
