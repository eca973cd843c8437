// The system's OpenSSL (Debian: libssl-dev), for the notifier's SMTP client (STARTTLS and SMTPS).
// swift-crypto's BoringSSL has prefixed symbols and headers, so the two do not collide.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
