#include "mesh/security/certificate_keys.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <iterator>
#include <utility>

#include "mesh/security/openssl_ptr.h"
#include "mesh/security/pki.h"

namespace ndo::mesh {
namespace {

constexpr size_t kSignatureBytes = 64;  // Ed25519

using openssl::BioPtr;
using openssl::MdCtxPtr;
using openssl::PkeyPtr;
using openssl::X509Ptr;

// Leaves this thread's OpenSSL error queue empty on every return, so no
// stale error is blamed on a later call elsewhere (as pki.cc does).
struct ClearErrors {
  ClearErrors() { ERR_clear_error(); }
  ~ClearErrors() { ERR_clear_error(); }
};

int NoPassphrase(char*, int, int, void*) { return 0; }

BioPtr InputBio(std::string_view pem) {
  if (pem.size() > kMaxPemBytes) return nullptr;
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

bool IsEd25519(const EVP_PKEY* key) { return key != nullptr && EVP_PKEY_get_id(key) == EVP_PKEY_ED25519; }

Result<PkeyPtr> ReadPrivateKey(std::string_view pem) {
  auto bio = InputBio(pem);
  if (!bio) return Status::InvalidArgument("private key: not PEM of at most " + std::to_string(kMaxPemBytes) + " bytes");
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!key) return Status::InvalidArgument("private key: not a PEM private key");
  if (!IsEd25519(key.get())) return Status::InvalidArgument("private key: not Ed25519");
  return key;
}

// The certificate's public key (parsed again here: pki.h keeps OpenSSL
// types to itself, and VerifyNodeCert has checked the certificate already).
Result<PkeyPtr> ReadPublicKey(std::string_view cert_pem) {
  auto bio = InputBio(cert_pem);
  if (!bio) return Status::InvalidArgument("certificate: too long");
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!cert) return Status::InvalidArgument("certificate: not a PEM certificate");
  PkeyPtr key(X509_get_pubkey(cert.get()));  // a new reference
  if (!IsEd25519(key.get())) return Status::InvalidArgument("certificate: its key is not Ed25519");
  return key;
}

}  // namespace

struct CertificateKeys::Known {
  std::string pem;
  PkeyPtr key;
  SignerInfo info;
  int64_t not_before_unix = 0, not_after_unix = 0;
};

void CertificateKeys::KeyDeleter::operator()(void* key) const { EVP_PKEY_free(static_cast<EVP_PKEY*>(key)); }

CertificateKeys::CertificateKeys(CertificateKeysOptions options, NodeId self)
    : opts_(std::move(options)), self_(self) {}

CertificateKeys::~CertificateKeys() = default;

Result<std::unique_ptr<CertificateKeys>> CertificateKeys::Create(CertificateKeysOptions options) {
  if (!options.now_unix || !options.is_revoked)
    return Status::InvalidArgument("certificate keys: a clock and a revocation check are required");
  if (Status s = CheckKeyMatchesCert(options.key_pem, options.cert_pem); !s.ok()) return s;
  auto info = VerifyNodeCert(options.cert_pem, options.ca_pem, options.now_unix());
  if (!info.ok()) return info.status().WithContext("this node's certificate");
  ClearErrors clear;
  auto key = ReadPrivateKey(options.key_pem);
  if (!key.ok()) return key.status();
  std::unique_ptr<CertificateKeys> keys(new CertificateKeys(std::move(options), info->node));
  keys->key_.reset(key->release());
  // This node's own certificate goes in even if it is revoked: it then
  // signs records nobody (itself included) accepts, which is right.
  auto pub = ReadPublicKey(keys->opts_.cert_pem);
  if (!pub.ok()) return pub.status();
  auto known = std::make_unique<Known>();
  known->pem = keys->opts_.cert_pem;
  known->key = std::move(*pub);
  known->info = SignerInfo{info->role == NodeRole::kOperator, info->vantage};
  known->not_before_unix = info->not_before_unix;
  known->not_after_unix = info->not_after_unix;
  keys->certs_.emplace(info->node, std::move(known));
  return keys;
}

std::string CertificateKeys::Sign(std::string_view message) {
  ClearErrors clear;
  MdCtxPtr ctx(EVP_MD_CTX_new());
  unsigned char sig[kSignatureBytes];
  size_t len = sizeof sig;
  // Ed25519 is one-shot: no digest named, the whole message at once.
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(key_.get())) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &len, reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
      len != kSignatureBytes)
    return {};
  return std::string(reinterpret_cast<const char*>(sig), len);
}

Result<SignerInfo> CertificateKeys::Verify(const NodeId& signer, std::string_view message,
                                           std::string_view signature) {
  auto it = certs_.find(signer);
  if (it == certs_.end()) return Status::NotFound("no certificate of node " + signer.Hex() + " is known here");
  const Known& k = *it->second;
  // Checked at every call: a revocation or an expiry may have come since
  // the certificate was learnt.
  if (opts_.is_revoked(signer)) return Status::PermissionDenied("node " + signer.Hex() + " is revoked");
  int64_t now = opts_.now_unix();
  if (now > k.not_after_unix)
    return Status::PermissionDenied("the certificate of node " + signer.Hex() + " has expired");
  if (now < k.not_before_unix)
    return Status::PermissionDenied("the certificate of node " + signer.Hex() + " is not valid yet");
  if (signature.size() != kSignatureBytes)
    return Status::InvalidArgument("bad signature by node " + signer.Hex() + ": " +
                                   std::to_string(signature.size()) + " bytes, not 64");
  ClearErrors clear;
  MdCtxPtr ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, k.key.get()) != 1)
    return Status::InvalidArgument("cannot set up signature verification");
  if (EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1)
    return Status::InvalidArgument("bad signature by node " + signer.Hex());
  return k.info;
}

std::optional<std::string> CertificateKeys::Certificate(const NodeId& node) const {
  auto it = certs_.find(node);
  if (it == certs_.end()) return std::nullopt;
  return it->second->pem;
}

Status CertificateKeys::Learn(std::string_view cert_pem) {
  int64_t now = opts_.now_unix();
  auto info = VerifyNodeCert(cert_pem, opts_.ca_pem, now);
  if (!info.ok()) return info.status();
  if (opts_.is_revoked(info->node)) return Status::PermissionDenied("node " + info->node.Hex() + " is revoked");
  auto it = certs_.find(info->node);
  if (it != certs_.end()) {
    if (it->second->pem == cert_pem) return Status::Ok();  // known already
    // Two valid certificates of one node (the CA issued it another): the
    // one issued later is kept, the same on every member whatever the
    // order they came in.
    if (info->not_before_unix <= it->second->not_before_unix) return Status::Ok();
  } else if (certs_.size() >= opts_.max_certificates) {
    Prune(now);
    if (certs_.size() >= opts_.max_certificates)
      return Status::Unavailable("too many certificates known (" + std::to_string(certs_.size()) + ")");
  }
  ClearErrors clear;
  auto pub = ReadPublicKey(cert_pem);
  if (!pub.ok()) return pub.status();
  auto known = std::make_unique<Known>();
  known->pem = std::string(cert_pem);
  known->key = std::move(*pub);
  known->info = SignerInfo{info->role == NodeRole::kOperator, info->vantage};
  known->not_before_unix = info->not_before_unix;
  known->not_after_unix = info->not_after_unix;
  certs_[info->node] = std::move(known);
  if (opts_.on_learn) opts_.on_learn(info->node, std::string(cert_pem));
  return Status::Ok();
}

void CertificateKeys::Prune(int64_t now_unix) {
  for (auto it = certs_.begin(); it != certs_.end();) {
    bool useless = it->first != self_ && (now_unix > it->second->not_after_unix || opts_.is_revoked(it->first));
    it = useless ? certs_.erase(it) : std::next(it);
  }
}

}  // namespace ndo::mesh
