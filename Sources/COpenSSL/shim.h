// The system's OpenSSL (Debian: libssl-dev), for the notifier's SMTP client (STARTTLS and SMTPS) and its
// https deliveries.
// swift-crypto's BoringSSL has prefixed symbols and headers, so the two do not collide.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

// SSL_OP_IGNORE_UNEXPECTED_EOF is built by a macro Swift does not import.
static inline uint64_t nimbus_ssl_op_ignore_unexpected_eof(void) { return SSL_OP_IGNORE_UNEXPECTED_EOF; }
