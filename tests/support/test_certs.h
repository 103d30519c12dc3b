// Keys, certificates and an in-memory TLS server for tests, on the OpenSSL
// API: a private CA hierarchy in a few lines, PEM/DER encodings, a CA file for
// --tls-ca-file, and TestTlsServerSession, a sans-IO TLS server (memory BIOs)
// that a test pumps bytes to and from, or drives from a socket.
//
//   auto root_key = MakeKey(KeyType::kRsa2048);
//   auto root = MakeCert({.cn = "Test Root", .o = "Test CA", .key = root_key.get(), .is_ca = true, ...});
//   auto leaf_key = MakeKey(KeyType::kEcP256);
//   auto leaf = MakeCert({.cn = "www.example.test", .key = leaf_key.get(), .issuer = root.get(),
//                         .issuer_key = root_key.get(), .sans = {"DNS:www.example.test"}, ...});
//
// (g++ 12 warns about the members such designated initializers leave out:
// add `#pragma GCC diagnostic ignored "-Wmissing-field-initializers"` to the test.)
//
// Every function returns owning pointers (or an empty pointer / false on
// failure, with OpenSSL's error queue left for the caller to print).
#pragma once

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ndo::testing {

struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslDeleter {
  void operator()(SSL* s) const { SSL_free(s); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using SslPtr = std::unique_ptr<SSL, SslDeleter>;

// OpenSSL's error queue as text (and cleared), for failure messages.
inline std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

// Unix seconds of a UTC date (certificate validity in tests and the demo).
inline int64_t UnixTime(int year, int month, int day) {
  tm t{};
  t.tm_year = year - 1900;
  t.tm_mon = month - 1;
  t.tm_mday = day;
  return timegm(&t);
}

// ---------------------------------------------------------------------------
// Keys

enum class KeyType { kRsa2048, kRsa1024, kEcP256, kEcP384, kEd25519 };

inline PkeyPtr MakeKey(KeyType type) {
  switch (type) {
    case KeyType::kRsa2048: return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048)));
    case KeyType::kRsa1024: return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(1024)));
    case KeyType::kEcP256: return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    case KeyType::kEcP384: return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
    case KeyType::kEd25519: return PkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// Certificates

struct CertSpec {
  // Subject (each left out when empty).
  std::string cn, o, ou, country;
  EVP_PKEY* key = nullptr;  // the subject's key (its public half goes into the certificate)
  // The issuer; both null for a self-signed certificate (signed with `key`).
  const X509* issuer = nullptr;
  EVP_PKEY* issuer_key = nullptr;
  int64_t not_before = 0;  // Unix seconds
  int64_t not_after = 0;
  // OpenSSL config syntax, one entry each: "DNS:www.example.test", "IP:192.0.2.1",
  // "IP:2001:db8::1", "email:ops@example.test", "URI:https://example.test/".
  std::vector<std::string> sans;
  std::string serial_hex = "01";  // positive, hex
  bool is_ca = false;
  // The keyUsage extension (OpenSSL syntax); empty: a sensible default for a CA
  // or a server. "none" leaves the extension out.
  std::string key_usage;
  // Digest for the signature; null: SHA-256 (none for Ed25519/Ed448 keys).
  const EVP_MD* digest = nullptr;
};

namespace internal {

inline bool AddNameEntry(X509_NAME* name, const char* field, const std::string& value) {
  if (value.empty()) return true;
  return X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.data()),
                                    static_cast<int>(value.size()), -1, 0) == 1;
}

inline bool AddExtension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

inline bool IsRawKey(EVP_PKEY* key) {
  int id = EVP_PKEY_get_base_id(key);
  return id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448;
}

}  // namespace internal

inline X509Ptr MakeCert(const CertSpec& spec) {
  if (spec.key == nullptr || (spec.issuer == nullptr) != (spec.issuer_key == nullptr)) return nullptr;
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) return nullptr;

  BIGNUM* bn = nullptr;
  if (BN_hex2bn(&bn, spec.serial_hex.c_str()) == 0) return nullptr;
  ASN1_INTEGER* serial = BN_to_ASN1_INTEGER(bn, nullptr);
  BN_free(bn);
  bool ok = serial != nullptr && X509_set_serialNumber(cert.get(), serial) == 1;
  ASN1_INTEGER_free(serial);
  if (!ok) return nullptr;

  if (!ASN1_TIME_set(X509_getm_notBefore(cert.get()), static_cast<time_t>(spec.not_before)) ||
      !ASN1_TIME_set(X509_getm_notAfter(cert.get()), static_cast<time_t>(spec.not_after))) {
    return nullptr;
  }
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (!internal::AddNameEntry(subject, "C", spec.country) || !internal::AddNameEntry(subject, "O", spec.o) ||
      !internal::AddNameEntry(subject, "OU", spec.ou) || !internal::AddNameEntry(subject, "CN", spec.cn)) {
    return nullptr;
  }
  const X509* issuer = spec.issuer ? spec.issuer : cert.get();
  EVP_PKEY* signer = spec.issuer_key ? spec.issuer_key : spec.key;
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)) != 1) return nullptr;
  if (X509_set_pubkey(cert.get(), spec.key) != 1) return nullptr;

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, const_cast<X509*>(issuer), cert.get(), nullptr, nullptr, 0);
  if (!internal::AddExtension(cert.get(), &ctx, NID_basic_constraints,
                              spec.is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE")) {
    return nullptr;
  }
  std::string ku = spec.key_usage;
  if (ku.empty()) ku = spec.is_ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment";
  if (ku != "none" && !internal::AddExtension(cert.get(), &ctx, NID_key_usage, ku)) return nullptr;
  if (!spec.is_ca && !internal::AddExtension(cert.get(), &ctx, NID_ext_key_usage, "serverAuth")) return nullptr;
  if (!internal::AddExtension(cert.get(), &ctx, NID_subject_key_identifier, "hash")) return nullptr;
  if (spec.issuer != nullptr &&
      !internal::AddExtension(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always")) {
    return nullptr;
  }
  if (!spec.sans.empty()) {
    std::string joined;
    for (const auto& s : spec.sans) joined += (joined.empty() ? "" : ",") + s;
    if (!internal::AddExtension(cert.get(), &ctx, NID_subject_alt_name, joined)) return nullptr;
  }
  const EVP_MD* md = internal::IsRawKey(signer) ? nullptr : (spec.digest ? spec.digest : EVP_sha256());
  if (X509_sign(cert.get(), signer, md) <= 0) return nullptr;
  return cert;
}

inline X509Ptr UpRef(X509* x) {
  if (x != nullptr) X509_up_ref(x);
  return X509Ptr(x);
}

inline std::string ToDer(const X509* cert) {
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  if (len <= 0) return "";
  std::string out(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

inline X509Ptr FromDer(std::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

inline std::string ToPem(const X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "";
  std::string out;
  if (PEM_write_bio_X509(bio, cert) == 1) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    if (len > 0) out.assign(data, static_cast<size_t>(len));
  }
  BIO_free(bio);
  return out;
}

// The private key in PKCS#8 PEM, unencrypted.
inline std::string ToPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return "";
  std::string out;
  if (PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) == 1) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    if (len > 0) out.assign(data, static_cast<size_t>(len));
  }
  BIO_free(bio);
  return out;
}

inline bool WriteFile(const std::string& path, const std::string& data) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
  return std::fclose(f) == 0 && ok;
}

// A PEM bundle of `certs` (for TlsClientContext's extra CA file, --tls-ca-file).
inline bool WriteCaFile(const std::string& path, const std::vector<const X509*>& certs) {
  std::string pem;
  for (const X509* c : certs) {
    std::string one = ToPem(c);
    if (one.empty()) return false;
    pem += one;
  }
  return WriteFile(path, pem);
}

// ---------------------------------------------------------------------------
// TLS server

struct TlsServerOptions {
  int min_version = 0;  // 0: the library's lowest; TLS1_VERSION, TLS1_2_VERSION, ...
  int max_version = 0;  // 0: the library's highest
  int security_level = 0;
};

// A server-side SSL_CTX with `key` and `chain` (leaf first; the rest is sent
// as the chain). Also usable for socket servers (SSL_new + SSL_set_fd).
inline SslCtxPtr MakeServerCtx(EVP_PKEY* key, const std::vector<X509*>& chain, const TlsServerOptions& o = {}) {
  if (key == nullptr || chain.empty() || chain.front() == nullptr) return nullptr;
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return nullptr;
  SSL_CTX_set_security_level(ctx.get(), o.security_level);
  if (o.min_version != 0 && SSL_CTX_set_min_proto_version(ctx.get(), o.min_version) != 1) return nullptr;
  if (o.max_version != 0 && SSL_CTX_set_max_proto_version(ctx.get(), o.max_version) != 1) return nullptr;
  if (SSL_CTX_use_certificate(ctx.get(), chain.front()) != 1 || SSL_CTX_use_PrivateKey(ctx.get(), key) != 1 ||
      SSL_CTX_check_private_key(ctx.get()) != 1) {
    return nullptr;
  }
  for (size_t i = 1; i < chain.size(); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx.get(), chain[i]) != 1) return nullptr;
  }
  return ctx;
}

// A sans-IO TLS server on memory BIOs: feed it what the client sent
// (OnData), send what TakeOutput returns. Handshakes, then reads and writes
// application data.
class TestTlsServerSession {
 public:
  enum class State { kHandshaking, kDone, kFailed };

  static std::unique_ptr<TestTlsServerSession> Create(EVP_PKEY* key, const std::vector<X509*>& chain,
                                                      const TlsServerOptions& o = {}) {
    SslCtxPtr ctx = MakeServerCtx(key, chain, o);
    if (!ctx) return nullptr;
    return Create(ctx.get());
  }

  // With an existing server context (shared between sessions; SSL keeps a reference).
  static std::unique_ptr<TestTlsServerSession> Create(SSL_CTX* ctx) {
    std::unique_ptr<TestTlsServerSession> s(new TestTlsServerSession());
    s->ssl_.reset(SSL_new(ctx));
    if (!s->ssl_) return nullptr;
    s->rbio_ = BIO_new(BIO_s_mem());
    s->wbio_ = BIO_new(BIO_s_mem());
    if (s->rbio_ == nullptr || s->wbio_ == nullptr) {
      BIO_free(s->rbio_);
      BIO_free(s->wbio_);
      return nullptr;
    }
    SSL_set_bio(s->ssl_.get(), s->rbio_, s->wbio_);
    SSL_set_accept_state(s->ssl_.get());
    return s;
  }

  // Bytes from the client; advances the handshake (or buffers application data).
  State OnData(std::string_view bytes) {
    if (!bytes.empty()) BIO_write(rbio_, bytes.data(), static_cast<int>(std::min<size_t>(bytes.size(), INT_MAX)));
    if (state_ != State::kHandshaking) return state_;
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_.get());
    if (r == 1) {
      state_ = State::kDone;
    } else {
      int e = SSL_get_error(ssl_.get(), r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        error_ = OpenSslErrors();
        if (error_.empty()) error_ = "SSL_get_error " + std::to_string(e);
        state_ = State::kFailed;
      }
    }
    return state_;
  }

  // Bytes to send to the client.
  std::string TakeOutput() {
    std::string out;
    size_t pending = BIO_ctrl_pending(wbio_);
    if (pending == 0) return out;
    out.resize(pending);
    int n = BIO_read(wbio_, out.data(), static_cast<int>(std::min<size_t>(pending, INT_MAX)));
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    return out;
  }

  // Application data, after the handshake.
  bool Write(std::string_view data) {
    return state_ == State::kDone && SSL_write(ssl_.get(), data.data(), static_cast<int>(data.size())) > 0;
  }
  std::string Read() {
    std::string out;
    char buf[4096];
    int n;
    while (state_ == State::kDone && (n = SSL_read(ssl_.get(), buf, sizeof buf)) > 0) out.append(buf, n);
    ERR_clear_error();
    return out;
  }

  State state() const { return state_; }
  const std::string& error() const { return error_; }
  SSL* ssl() const { return ssl_.get(); }
  // The server name the client asked for (SNI), "" if none.
  std::string servername() const {
    const char* n = SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name);
    return n ? n : "";
  }

 private:
  TestTlsServerSession() = default;
  SslPtr ssl_;
  BIO* rbio_ = nullptr;  // owned by ssl_
  BIO* wbio_ = nullptr;  // owned by ssl_
  State state_ = State::kHandshaking;
  std::string error_;
};

}  // namespace ndo::testing
