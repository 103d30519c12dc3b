// A sans-IO TLS client handshake for certificate collection, on OpenSSL with
// memory BIOs: the caller moves bytes between the session and a socket (or a
// test), and passes the time in. Verification is done by ndo itself after the
// handshake (EvaluateChain), so a handshake with an untrusted, expired or
// self-signed certificate still completes and yields its chain.
#pragma once

#include <ctime>
#include <memory>
#include <string>
#include <string_view>

#include "scan/service/evidence.h"
#include "base/status.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct x509_store_st X509_STORE;

namespace ndo {

// Client settings shared by all sessions of a scan. Thread-compatible: one
// context per thread, or shared read-only after creation.
class TlsClientContext {
 public:
  // Trusts the system store (OpenSSL's default paths) plus, when non-empty,
  // the PEM certificates in `extra_ca_file` (a private CA of the network).
  static Result<std::shared_ptr<TlsClientContext>> Create(const std::string& extra_ca_file = "");
  ~TlsClientContext();
  SSL_CTX* ssl_ctx() const { return ctx_; }
  X509_STORE* trust_store() const;

 private:
  TlsClientContext() = default;
  SSL_CTX* ctx_ = nullptr;
};

class TlsClientSession {
 public:
  enum class State { kHandshaking, kDone, kFailed };

  // `sni` may be empty (the target was given as an address).
  static Result<std::unique_ptr<TlsClientSession>> Create(std::shared_ptr<TlsClientContext> ctx, std::string sni);
  ~TlsClientSession();

  // Bytes to send to the server now (the ClientHello first).
  std::string TakeOutput();
  // Bytes received from the server; returns the new state.
  State OnData(std::string_view bytes);
  // The server closed the connection.
  State OnEof();
  State state() const { return state_; }

  // The evidence so far: version, cipher, the peer's chain, and the verdict
  // of that chain against the trust store at Unix time `now` for the SNI name.
  // `error` describes a failure (or the caller's reason, e.g. "timeout").
  TlsEvidence Finish(time_t now, const std::string& error = "");

 private:
  struct Impl;
  explicit TlsClientSession(std::unique_ptr<Impl> impl);
  State Advance();
  std::unique_ptr<Impl> impl_;
  State state_ = State::kHandshaking;
};

// Parses one DER certificate; Corruption on malformed input.
Result<CertificateInfo> ParseCertificate(std::string_view der);

// Verifies `chain` (leaf first, DER in CertificateInfo::der) against `store`
// at Unix time `now`, for `hostname` if non-empty. `detail` gets OpenSSL's
// message. Order of verdicts: self-signed leaf, expired, not yet valid,
// untrusted issuer, name mismatch, trusted.
TlsVerdict EvaluateChain(const std::vector<CertificateInfo>& chain, X509_STORE* store, const std::string& hostname,
                         time_t now, std::string* detail);

}  // namespace ndo
