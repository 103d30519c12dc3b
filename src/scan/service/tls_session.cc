#include "scan/service/tls_session.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <utility>

namespace ndo {
namespace {

constexpr size_t kMaxCertificateDer = 64 * 1024;

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

// The oldest OpenSSL error in this thread's queue, as text; clears the queue.
std::string TakeOpenSslError(const std::string& fallback) {
  unsigned long first = ERR_get_error();
  ERR_clear_error();
  if (first == 0) return fallback;
  char buf[256];
  ERR_error_string_n(first, buf, sizeof buf);
  return buf;
}

bool IsIpLiteral(const std::string& s) {
  if (s.empty()) return false;
  if (s.front() == '[') return true;
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::string Utf8(const ASN1_STRING* s) {
  if (s == nullptr) return "";
  unsigned char* out = nullptr;
  int n = ASN1_STRING_to_UTF8(&out, s);
  if (n < 0 || out == nullptr) {
    ERR_clear_error();
    return "";
  }
  std::string r(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  OPENSSL_free(out);
  return r;
}

// The first entry of `nid` in `name`, as UTF-8; "" if there is none.
std::string FirstEntry(const X509_NAME* name, int nid) {
  if (name == nullptr) return "";
  int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0) return "";
  const X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
  return e == nullptr ? "" : Utf8(X509_NAME_ENTRY_get_data(e));
}

std::string Ia5(const ASN1_STRING* s) {
  if (s == nullptr) return "";
  const unsigned char* d = ASN1_STRING_get0_data(s);
  int n = ASN1_STRING_length(s);
  return d == nullptr || n <= 0 ? "" : std::string(reinterpret_cast<const char*>(d), static_cast<size_t>(n));
}

std::vector<std::string> SubjectAltNames(X509* x) {
  std::vector<std::string> out;
  int crit = 0;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, &crit, nullptr));
  if (names == nullptr) {
    ERR_clear_error();
    return out;
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    if (g == nullptr) continue;
    switch (g->type) {
      case GEN_DNS: out.push_back("DNS:" + Ia5(g->d.dNSName)); break;
      case GEN_EMAIL: out.push_back("email:" + Ia5(g->d.rfc822Name)); break;
      case GEN_URI: out.push_back("URI:" + Ia5(g->d.uniformResourceIdentifier)); break;
      case GEN_IPADD: {
        const ASN1_OCTET_STRING* ip = g->d.iPAddress;
        const unsigned char* d = ip ? ASN1_STRING_get0_data(ip) : nullptr;
        int n = ip ? ASN1_STRING_length(ip) : 0;
        char buf[INET6_ADDRSTRLEN] = {};
        if (d != nullptr && n == 4 && inet_ntop(AF_INET, d, buf, sizeof buf)) {
          out.push_back(std::string("IP:") + buf);
        } else if (d != nullptr && n == 16 && inet_ntop(AF_INET6, d, buf, sizeof buf)) {
          out.push_back(std::string("IP:") + buf);
        } else {
          out.push_back("IP:<invalid>");
        }
        break;
      }
      default: break;  // otherName, dirName, ...: not recorded
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

std::string SerialHex(const X509* x) {
  const ASN1_INTEGER* serial = X509_get0_serialNumber(x);
  if (serial == nullptr) return "";
  BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
  if (bn == nullptr) {
    ERR_clear_error();
    return "";
  }
  char* hex = BN_bn2hex(bn);
  std::string r = hex ? hex : "";
  OPENSSL_free(hex);
  BN_free(bn);
  return r;
}

bool ToUnix(const ASN1_TIME* t, int64_t* out) {
  if (t == nullptr) return false;  // ASN1_TIME_to_tm(nullptr) would mean "now"
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return false;
  *out = static_cast<int64_t>(timegm(&tm));
  return true;
}

std::string SignatureAlgorithm(const X509* x) {
  int nid = X509_get_signature_nid(x);
  if (nid != NID_undef) {
    const char* ln = OBJ_nid2ln(nid);
    if (ln != nullptr) return ln;
  }
  const X509_ALGOR* alg = nullptr;
  X509_get0_signature(nullptr, &alg, x);
  if (alg == nullptr) return "";
  const ASN1_OBJECT* obj = nullptr;
  X509_ALGOR_get0(&obj, nullptr, nullptr, alg);
  if (obj == nullptr) return "";
  char buf[128];
  int n = OBJ_obj2txt(buf, sizeof buf, obj, 0);
  return n > 0 ? std::string(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1)) : "";
}

void KeyInfo(X509* x, std::string* type, int* bits) {
  EVP_PKEY* key = X509_get0_pubkey(x);  // not owned
  if (key == nullptr) {
    ERR_clear_error();
    return;
  }
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA: *type = "RSA"; break;
    case EVP_PKEY_RSA_PSS: *type = "RSA-PSS"; break;
    case EVP_PKEY_EC: *type = "EC"; break;
    case EVP_PKEY_ED25519: *type = "Ed25519"; break;
    case EVP_PKEY_ED448: *type = "Ed448"; break;
    case EVP_PKEY_DSA: *type = "DSA"; break;
    case EVP_PKEY_DH: *type = "DH"; break;
    default: {
      int id = EVP_PKEY_get_base_id(key);
      const char* sn = id != NID_undef ? OBJ_nid2sn(id) : nullptr;
      const char* name = sn ? sn : EVP_PKEY_get0_type_name(key);
      *type = name ? name : "unknown";
    }
  }
  *bits = EVP_PKEY_get_bits(key);
  if (*bits < 0) *bits = 0;
}

// Subject == issuer, matching key identifiers, and a signature that verifies
// with the certificate's own key. X509_self_signed rather than
// X509_check_issued(x, x): the latter also demands keyCertSign in a keyUsage
// extension, which many self-signed server certificates lack.
bool IsSelfSigned(X509* x) {
  bool r = X509_self_signed(x, 1) == 1;
  ERR_clear_error();
  return r;
}

X509Ptr DecodeDer(std::string_view der) {
  if (der.empty() || der.size() > kMaxCertificateDer) return nullptr;
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* start = p;
  X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!x || static_cast<size_t>(p - start) != der.size()) {
    ERR_clear_error();
    return nullptr;
  }
  return x;
}

int VerifyCallback(int ok, X509_STORE_CTX* sctx) {
  if (!ok) {
    auto* errors = static_cast<std::vector<int>*>(X509_STORE_CTX_get_app_data(sctx));
    if (errors != nullptr) errors->push_back(X509_STORE_CTX_get_error(sctx));
  }
  return 1;  // keep going: every problem of the chain is collected
}

bool IsTimeError(int e) {
  return e == X509_V_ERR_CERT_HAS_EXPIRED || e == X509_V_ERR_CERT_NOT_YET_VALID ||
         e == X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD || e == X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD;
}

}  // namespace

// ---------------------------------------------------------------------------
// TlsClientContext

Result<std::shared_ptr<TlsClientContext>> TlsClientContext::Create(const std::string& extra_ca_file) {
  ERR_clear_error();
  std::shared_ptr<TlsClientContext> c(new TlsClientContext());
  c->ctx_ = SSL_CTX_new(TLS_client_method());
  if (c->ctx_ == nullptr) return Status::Unavailable("TLS: " + TakeOpenSslError("cannot create SSL_CTX"));
  // Collect certificates from old servers too: TLS 1.0 up, security level 0
  // (small keys, SHA-1, old ciphers), and servers without RFC 5746.
  SSL_CTX_set_security_level(c->ctx_, 0);
  if (SSL_CTX_set_min_proto_version(c->ctx_, TLS1_VERSION) != 1) ERR_clear_error();
  SSL_CTX_set_options(c->ctx_, SSL_OP_LEGACY_SERVER_CONNECT);
  SSL_CTX_set_verify(c->ctx_, SSL_VERIFY_NONE, nullptr);  // ndo judges the chain itself (EvaluateChain)
  if (SSL_CTX_set_default_verify_paths(c->ctx_) != 1) ERR_clear_error();  // no system store is not fatal
  ERR_clear_error();
  if (!extra_ca_file.empty()) {
    X509_STORE* store = SSL_CTX_get_cert_store(c->ctx_);
    if (X509_STORE_load_file(store, extra_ca_file.c_str()) != 1) {
      return Status::IoError("TLS CA file " + extra_ca_file + ": " +
                             TakeOpenSslError("cannot load certificates"));
    }
  }
  ERR_clear_error();
  return c;
}

TlsClientContext::~TlsClientContext() { SSL_CTX_free(ctx_); }

X509_STORE* TlsClientContext::trust_store() const { return ctx_ ? SSL_CTX_get_cert_store(ctx_) : nullptr; }

// ---------------------------------------------------------------------------
// TlsClientSession

struct TlsClientSession::Impl {
  std::shared_ptr<TlsClientContext> ctx;
  SSL* ssl = nullptr;
  BIO* rbio = nullptr;  // owned by ssl: what the server sent
  BIO* wbio = nullptr;  // owned by ssl: what to send to the server
  std::string sni;      // the server name sent, if any
  std::string error;    // why the handshake failed

  ~Impl() { SSL_free(ssl); }
};

TlsClientSession::TlsClientSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsClientSession::~TlsClientSession() = default;

Result<std::unique_ptr<TlsClientSession>> TlsClientSession::Create(std::shared_ptr<TlsClientContext> ctx,
                                                                   std::string sni) {
  if (!ctx || ctx->ssl_ctx() == nullptr) return Status::InvalidArgument("TLS: no client context");
  ERR_clear_error();
  auto impl = std::make_unique<Impl>();
  impl->ctx = std::move(ctx);
  impl->ssl = SSL_new(impl->ctx->ssl_ctx());
  if (impl->ssl == nullptr) return Status::Unavailable("TLS: " + TakeOpenSslError("cannot create SSL"));
  impl->rbio = BIO_new(BIO_s_mem());
  impl->wbio = BIO_new(BIO_s_mem());
  if (impl->rbio == nullptr || impl->wbio == nullptr) {
    BIO_free(impl->rbio);
    BIO_free(impl->wbio);
    return Status::Unavailable("TLS: " + TakeOpenSslError("cannot create memory BIOs"));
  }
  // An empty memory BIO means "no data yet" (retry), not EOF.
  BIO_set_mem_eof_return(impl->rbio, -1);
  SSL_set_bio(impl->ssl, impl->rbio, impl->wbio);
  SSL_set_connect_state(impl->ssl);
  if (!sni.empty() && !IsIpLiteral(sni)) {
    if (sni.size() > 255 || sni.find('\0') != std::string::npos ||
        SSL_set_tlsext_host_name(impl->ssl, sni.c_str()) != 1) {
      return Status::InvalidArgument("TLS: invalid server name '" + sni + "': " + TakeOpenSslError("rejected"));
    }
    impl->sni = std::move(sni);
  }
  std::unique_ptr<TlsClientSession> s(new TlsClientSession(std::move(impl)));
  s->Advance();  // the ClientHello, ready for TakeOutput
  return s;
}

TlsClientSession::State TlsClientSession::Advance() {
  if (state_ != State::kHandshaking) return state_;
  ERR_clear_error();
  int r = SSL_do_handshake(impl_->ssl);
  if (r == 1) {
    state_ = State::kDone;
    ERR_clear_error();
    return state_;
  }
  int e = SSL_get_error(impl_->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    ERR_clear_error();
    return state_;
  }
  std::string fallback;
  switch (e) {
    case SSL_ERROR_ZERO_RETURN: fallback = "the server closed the TLS connection"; break;
    case SSL_ERROR_SYSCALL: fallback = "connection closed during handshake"; break;
    default: fallback = "TLS handshake failed (SSL_get_error " + std::to_string(e) + ")";
  }
  impl_->error = TakeOpenSslError(fallback);
  state_ = State::kFailed;
  return state_;
}

std::string TlsClientSession::TakeOutput() {
  std::string out;
  size_t pending = BIO_ctrl_pending(impl_->wbio);
  if (pending == 0) return out;
  out.resize(pending);
  int n = BIO_read(impl_->wbio, out.data(), static_cast<int>(std::min<size_t>(pending, INT_MAX)));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

TlsClientSession::State TlsClientSession::OnData(std::string_view bytes) {
  if (state_ != State::kHandshaking) return state_;  // anything after the handshake is of no interest
  while (!bytes.empty()) {
    int chunk = static_cast<int>(std::min<size_t>(bytes.size(), INT_MAX));
    int n = BIO_write(impl_->rbio, bytes.data(), chunk);
    if (n <= 0) {
      impl_->error = TakeOpenSslError("cannot buffer received bytes");
      state_ = State::kFailed;
      return state_;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return Advance();
}

TlsClientSession::State TlsClientSession::OnEof() {
  if (state_ == State::kHandshaking) {
    impl_->error = "connection closed during handshake";
    state_ = State::kFailed;
  }
  return state_;
}

TlsEvidence TlsClientSession::Finish(time_t now, const std::string& error) {
  TlsEvidence ev;
  ev.sni = impl_->sni;
  if (!error.empty()) {
    ev.error = error;
  } else if (state_ == State::kFailed) {
    ev.error = impl_->error;
  } else if (state_ == State::kHandshaking) {
    ev.error = "handshake incomplete";
  }
  if (state_ == State::kDone) {
    const char* v = SSL_get_version(impl_->ssl);
    ev.version = v ? v : "";
    const SSL_CIPHER* c = SSL_get_current_cipher(impl_->ssl);
    const char* name = c ? SSL_CIPHER_get_name(c) : nullptr;
    ev.cipher = name ? name : "";
  }
  // On the client side the peer chain includes the leaf (leaf first). It is
  // there as soon as the Certificate message was processed, so a handshake
  // that failed later still yields it.
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(impl_->ssl);  // not owned
  for (int i = 0; chain != nullptr && i < sk_X509_num(chain); ++i) {
    X509* x = sk_X509_value(chain, i);
    if (x == nullptr) continue;
    unsigned char* der = nullptr;
    int len = i2d_X509(x, &der);
    if (len > 0 && der != nullptr) {
      auto info = ParseCertificate(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(len)));
      if (info.ok()) ev.chain.push_back(std::move(*info));
    }
    OPENSSL_free(der);
  }
  ERR_clear_error();
  if (ev.chain.empty()) {
    ev.verdict = TlsVerdict::kNoCertificate;
  } else {
    ev.verdict = EvaluateChain(ev.chain, impl_->ctx->trust_store(), ev.sni, now, &ev.verify_detail);
  }
  return ev;
}

// ---------------------------------------------------------------------------
// Certificates

Result<CertificateInfo> ParseCertificate(std::string_view der) {
  if (der.empty()) return Status::Corruption("certificate: empty");
  if (der.size() > kMaxCertificateDer) {
    return Status::Corruption("certificate: " + std::to_string(der.size()) + " bytes, more than the limit of " +
                              std::to_string(kMaxCertificateDer));
  }
  ERR_clear_error();
  X509Ptr x = DecodeDer(der);
  if (!x) return Status::Corruption("certificate: malformed DER");
  CertificateInfo c;
  const X509_NAME* subject = X509_get_subject_name(x.get());
  const X509_NAME* issuer = X509_get_issuer_name(x.get());
  c.subject_cn = FirstEntry(subject, NID_commonName);
  c.subject_o = FirstEntry(subject, NID_organizationName);
  c.subject_ou = FirstEntry(subject, NID_organizationalUnitName);
  c.issuer_cn = FirstEntry(issuer, NID_commonName);
  c.issuer_o = FirstEntry(issuer, NID_organizationName);
  c.issuer_ou = FirstEntry(issuer, NID_organizationalUnitName);
  c.sans = SubjectAltNames(x.get());
  c.serial_hex = SerialHex(x.get());
  if (!ToUnix(X509_get0_notBefore(x.get()), &c.not_before) || !ToUnix(X509_get0_notAfter(x.get()), &c.not_after)) {
    ERR_clear_error();
    return Status::Corruption("certificate: invalid validity time");
  }
  c.signature_algorithm = SignatureAlgorithm(x.get());
  KeyInfo(x.get(), &c.key_type, &c.key_bits);
  unsigned int md_len = 0;
  if (EVP_Digest(der.data(), der.size(), c.sha256.data(), &md_len, EVP_sha256(), nullptr) != 1 ||
      md_len != c.sha256.size()) {
    ERR_clear_error();
    return Status::Corruption("certificate: cannot compute SHA-256");
  }
  c.self_signed = IsSelfSigned(x.get());
  c.der = std::string(der);
  ERR_clear_error();
  return c;
}

TlsVerdict EvaluateChain(const std::vector<CertificateInfo>& chain, X509_STORE* store, const std::string& hostname,
                         time_t now, std::string* detail) {
  auto set_detail = [detail](const std::string& s) {
    if (detail != nullptr) *detail = s;
  };
  auto set_detail_code = [&](int code) { set_detail(X509_verify_cert_error_string(code)); };
  if (chain.empty()) {
    set_detail("no certificate");
    return TlsVerdict::kNoCertificate;
  }
  ERR_clear_error();
  X509Ptr leaf = DecodeDer(chain.front().der);
  if (!leaf) {
    set_detail("the leaf certificate cannot be decoded");
    return TlsVerdict::kNoCertificate;
  }
  if (IsSelfSigned(leaf.get())) {
    set_detail_code(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
    return TlsVerdict::kSelfSigned;
  }

  STACK_OF(X509)* untrusted = sk_X509_new_null();
  X509_STORE* empty_store = nullptr;
  if (store == nullptr) store = empty_store = X509_STORE_new();
  X509_STORE_CTX* sctx = X509_STORE_CTX_new();
  std::vector<int> errors;
  bool setup_ok = untrusted != nullptr && store != nullptr && sctx != nullptr;
  for (size_t i = 1; setup_ok && i < chain.size(); ++i) {
    X509Ptr x = DecodeDer(chain[i].der);
    if (!x) continue;  // an undecodable extra certificate is simply not offered
    if (sk_X509_push(untrusted, x.get()) <= 0) {
      setup_ok = false;
      break;
    }
    x.release();  // owned by `untrusted` now
  }
  setup_ok = setup_ok && X509_STORE_CTX_init(sctx, store, leaf.get(), untrusted) == 1;
  int result = 0;
  if (setup_ok) {
    X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(sctx);
    X509_VERIFY_PARAM_set_time(param, now);
    if (!hostname.empty() && !IsIpLiteral(hostname)) {
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (X509_VERIFY_PARAM_set1_host(param, hostname.c_str(), hostname.size()) != 1) {
        errors.push_back(X509_V_ERR_HOSTNAME_MISMATCH);  // not a valid name: it matches nothing
      }
    }
    X509_STORE_CTX_set_app_data(sctx, &errors);
    X509_STORE_CTX_set_verify_cb(sctx, VerifyCallback);
    result = X509_verify_cert(sctx);
    if (result <= 0 && errors.empty()) errors.push_back(X509_STORE_CTX_get_error(sctx));
    // OpenSSL does not check the validity period of a certificate whose
    // issuer it could not find (nor of a lone leaf from an unknown CA), so
    // check the times of every certificate of the chain it built.
    STACK_OF(X509)* built = X509_STORE_CTX_get0_chain(sctx);  // not owned
    for (int i = 0; built != nullptr && i < sk_X509_num(built); ++i) {
      X509* x = sk_X509_value(built, i);
      if (X509_cmp_time(X509_get0_notAfter(x), &now) < 0) errors.push_back(X509_V_ERR_CERT_HAS_EXPIRED);
      if (X509_cmp_time(X509_get0_notBefore(x), &now) > 0) errors.push_back(X509_V_ERR_CERT_NOT_YET_VALID);
    }
  }
  X509_STORE_CTX_free(sctx);
  sk_X509_pop_free(untrusted, X509_free);
  X509_STORE_free(empty_store);
  if (!setup_ok) {
    set_detail(TakeOpenSslError("cannot set up the verification"));
    return TlsVerdict::kUntrustedIssuer;
  }
  ERR_clear_error();

  auto has = [&errors](int code) { return std::find(errors.begin(), errors.end(), code) != errors.end(); };
  if (has(X509_V_ERR_CERT_HAS_EXPIRED)) {
    set_detail_code(X509_V_ERR_CERT_HAS_EXPIRED);
    return TlsVerdict::kExpired;
  }
  if (has(X509_V_ERR_CERT_NOT_YET_VALID)) {
    set_detail_code(X509_V_ERR_CERT_NOT_YET_VALID);
    return TlsVerdict::kNotYetValid;
  }
  for (int e : errors) {
    if (e != X509_V_OK && e != X509_V_ERR_HOSTNAME_MISMATCH && !IsTimeError(e)) {
      set_detail_code(e);
      return TlsVerdict::kUntrustedIssuer;
    }
  }
  for (int e : errors) {
    if (IsTimeError(e)) {  // a validity field OpenSSL cannot read
      set_detail_code(e);
      return TlsVerdict::kUntrustedIssuer;
    }
  }
  if (has(X509_V_ERR_HOSTNAME_MISMATCH)) {
    set_detail_code(X509_V_ERR_HOSTNAME_MISMATCH);
    return TlsVerdict::kNameMismatch;
  }
  set_detail_code(X509_V_OK);
  return TlsVerdict::kTrusted;
}

}  // namespace ndo
