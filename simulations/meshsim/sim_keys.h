// Signed records on meshsim (`meshsim work --signatures`): a CA of the
// simulation's own, one Ed25519 key and node certificate per node (its
// vantage bound, role scanner; the submitting node's operator), and the
// daemon's CertificateKeys per node (mesh/security/certificate_keys.h),
// handed to each node's WorkCore as the daemon's WorkService does. So a run
// signs, verifies and fetches certificates for real, and what that costs is
// measured here: every call through a counting wrapper, timed.
//
// Timing is the one thing taken from outside the simulation: the steady
// clock around each Sign and Verify (this process is single-threaded, so
// that is their CPU time). It changes no decision of the simulation.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/status.h"
#include "mesh/membership/messages.h"
#include "mesh/security/certificate_keys.h"
#include "mesh/work/record_keys.h"

namespace ndo::mesh::sim {

struct KeyStats {
  uint64_t signs = 0, verifies = 0;
  uint64_t verify_unknown = 0, verify_refused = 0;  // NotFound; any other error
  double sign_s = 0, verify_s = 0;                  // time spent in the calls
  uint64_t certs_served = 0, cert_bytes_served = 0;  // Certificate() answers found (PEM bytes)
  uint64_t certs_learnt = 0, learn_refusals = 0;
};

// A node's keys, every call counted into the simulation's KeyStats.
class CountingKeys final : public RecordKeys {
 public:
  CountingKeys(std::unique_ptr<CertificateKeys> keys, KeyStats& stats) : keys_(std::move(keys)), stats_(stats) {}
  std::string Sign(std::string_view message) override;
  Result<SignerInfo> Verify(const NodeId& signer, std::string_view message, std::string_view signature) override;
  std::optional<std::string> Certificate(const NodeId& node) const override;
  Status Learn(std::string_view cert_pem) override;
  size_t known() const { return keys_->known(); }

 private:
  std::unique_ptr<CertificateKeys> keys_;
  KeyStats& stats_;
};

struct SimNodeKey {
  NodeId id;
  std::string vantage;
  bool is_operator = false;
};

// A CA valid from now_unix for ten years, and keys for each node with a
// certificate as long-lived; `now_unix(i)` is node i's wall clock.
Result<std::vector<std::unique_ptr<CountingKeys>>> MakeSimKeys(const std::vector<SimNodeKey>& nodes,
                                                               int64_t now_unix,
                                                               std::function<int64_t(size_t)> node_now_unix,
                                                               KeyStats& stats);

}  // namespace ndo::mesh::sim
