#include "sim_keys.h"

#include <chrono>
#include <utility>

#include "mesh/security/pki.h"

namespace ndo::mesh::sim {
namespace {

using SteadyClock = std::chrono::steady_clock;

double Since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

// Never all zero, fixed: the simulation's traces depend on the seed only.
const ClusterId kSimCluster{0x73696d636c757374ULL, 0x6572000000000001ULL};  // "simcluster"
constexpr auto kValidity = std::chrono::hours(24 * 366 * 10);

}  // namespace

std::string CountingKeys::Sign(std::string_view message) {
  auto t0 = SteadyClock::now();
  std::string sig = keys_->Sign(message);
  stats_.sign_s += Since(t0);
  ++stats_.signs;
  return sig;
}

Result<SignerInfo> CountingKeys::Verify(const NodeId& signer, std::string_view message, std::string_view signature) {
  auto t0 = SteadyClock::now();
  auto r = keys_->Verify(signer, message, signature);
  stats_.verify_s += Since(t0);
  ++stats_.verifies;
  if (!r.ok()) ++(r.status().code() == Status::Code::kNotFound ? stats_.verify_unknown : stats_.verify_refused);
  return r;
}

std::optional<std::string> CountingKeys::Certificate(const NodeId& node) const {
  auto pem = keys_->Certificate(node);
  if (pem) {
    ++stats_.certs_served;
    stats_.cert_bytes_served += pem->size();
  }
  return pem;
}

Status CountingKeys::Learn(std::string_view cert_pem) {
  size_t before = keys_->known();
  Status s = keys_->Learn(cert_pem);
  if (!s.ok()) ++stats_.learn_refusals;
  else if (keys_->known() > before) ++stats_.certs_learnt;
  return s;
}

Result<std::vector<std::unique_ptr<CountingKeys>>> MakeSimKeys(const std::vector<SimNodeKey>& nodes,
                                                               int64_t now_unix,
                                                               std::function<int64_t(size_t)> node_now_unix,
                                                               KeyStats& stats) {
  auto ca = CreateClusterCa(kSimCluster, kValidity, now_unix);
  if (!ca.ok()) return ca.status().WithContext("simulation CA");
  std::vector<std::unique_ptr<CountingKeys>> out;
  out.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    const SimNodeKey& n = nodes[i];
    auto key = GenerateKeyPem();
    if (!key.ok()) return key.status();
    auto csr = MakeCsr(*key, n.id, "sim-" + std::to_string(i));
    if (!csr.ok()) return csr.status();
    auto cert = SignNodeCert(*ca, kSimCluster, *csr, n.is_operator ? NodeRole::kOperator : NodeRole::kScanner,
                             n.vantage, kValidity, now_unix);
    if (!cert.ok()) return cert.status().WithContext("node " + std::to_string(i));
    CertificateKeysOptions o;
    o.key_pem = std::move(*key);
    o.cert_pem = std::move(cert->cert_pem);
    o.ca_pem = ca->cert_pem;
    o.now_unix = [node_now_unix, i] { return node_now_unix(i); };
    o.is_revoked = [](const NodeId&) { return false; };  // no revocation in the simulation
    auto keys = CertificateKeys::Create(std::move(o));
    if (!keys.ok()) return keys.status().WithContext("node " + std::to_string(i));
    out.push_back(std::make_unique<CountingKeys>(std::move(*keys), stats));
  }
  return out;
}

}  // namespace ndo::mesh::sim
