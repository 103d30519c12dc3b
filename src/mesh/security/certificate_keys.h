// The production RecordKeys (mesh/work/record_keys.h): this node's Ed25519
// key signs, and members' X.509 node certificates, checked against the
// cluster CA, verify. The daemon builds one in a secured mesh from the
// node's cluster files; the simulator builds one per simulated node with a
// CA of its own (docs/security.md, "Signed records").
//
// What a certificate is trusted for is decided once, when it is learnt
// (VerifyNodeCert against the CA: chain, cluster, node id; InspectCert: role
// and vantage), and cached by node id with its public key. What can change
// after that is checked at every Verify: revocation (the replicated
// revocation set grows) and expiry (time passes).
//
// Sans-IO: the clock, the revocation set and persistence are callbacks the
// owner hands in; nothing here reads a file or the store. Not thread-safe:
// the owner calls it from one thread (the daemon's event loop).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "mesh/membership/messages.h"
#include "mesh/work/record_keys.h"

namespace ndo::mesh {

// Certificates kept at most: one per member of the largest mesh many times
// over. A node certificate is signed by the cluster CA, so only an
// enrolment can make a new one; this bounds memory against a CA that
// enrolled a flood of nodes, not against forgery.
inline constexpr size_t kMaxKnownCertificates = 100000;

struct CertificateKeysOptions {
  std::string key_pem;   // this node's private key (Ed25519, PKCS#8)
  std::string cert_pem;  // this node's certificate (must match key_pem)
  std::string ca_pem;    // the cluster CA's certificate
  // Wall-clock seconds (certificate validity); required.
  std::function<int64_t()> now_unix;
  // Whether `node` is revoked now (the replicated revocation set); required.
  std::function<bool(const NodeId&)> is_revoked;
  // Called once for each certificate newly learnt through Learn (not for
  // this node's own, not for one given again), so the owner can keep it.
  std::function<void(const NodeId& node, const std::string& cert_pem)> on_learn;
  size_t max_certificates = kMaxKnownCertificates;
};

class CertificateKeys final : public RecordKeys {
 public:
  // Checks the key against the certificate, and the certificate against the
  // CA at now_unix(); this node's certificate is the first one known.
  static Result<std::unique_ptr<CertificateKeys>> Create(CertificateKeysOptions options);
  ~CertificateKeys() override;
  CertificateKeys(const CertificateKeys&) = delete;
  CertificateKeys& operator=(const CertificateKeys&) = delete;

  std::string Sign(std::string_view message) override;
  Result<SignerInfo> Verify(const NodeId& signer, std::string_view message, std::string_view signature) override;
  std::optional<std::string> Certificate(const NodeId& node) const override;
  Status Learn(std::string_view cert_pem) override;

  const NodeId& node() const { return self_; }
  // Certificates known (this node's included).
  size_t known() const { return certs_.size(); }

 private:
  struct Known;
  CertificateKeys(CertificateKeysOptions options, NodeId self);
  // Drops expired and revoked certificates (not this node's) to make room.
  void Prune(int64_t now_unix);

  CertificateKeysOptions opts_;
  NodeId self_;
  struct KeyDeleter {
    void operator()(void* key) const;
  };
  std::unique_ptr<void, KeyDeleter> key_;  // EVP_PKEY*: no OpenSSL type in this header
  std::map<NodeId, std::unique_ptr<Known>> certs_;
};

}  // namespace ndo::mesh
