// Enrolment: how a node with a join token becomes a member of a secured
// cluster (kubeadm's token discovery, with the CA pinned by hash and the
// token proven, never sent).
//
// 1. The joiner makes its key and a CSR for a fresh node id, opens TLS to a
//    member and accepts the server only if the chain it presents contains a
//    CA whose SPKI hash is the pinned one (no trust on first use).
// 2. It sends an EnrolRequest: the token id, the CSR, its vantage and name,
//    and an HMAC keyed by the token's secret over the session's exported
//    keying material and the CSR (mesh/security/join_token.h).
// 3. The member checks the token (exists, not expired, not used up, allowed
//    vantage, not revoked), the proof, and the CSR, counts the use on disk
//    (synced) and only then signs the certificate and answers with it, the
//    CA, the gossip keyring and the members' addresses. The certificate
//    binds the token's role and vantage (the joiner's vantage when the
//    token names none): mesh/security/roles.h.
//
// Any member serves step 3: one without the CA key relays the request, with
// the exporter of its session with the joiner, over mutual TLS to a member
// that holds it (an enrolment authority, announced in the replicated
// security state).
//
// The use-count rule: only a node that holds the CA key redeems tokens, each
// only the tokens it created (they live in its store), and it serves
// redemptions one at a time on its single event thread, reading the token's
// record, checking it and writing the increased count (synced) before it
// signs. Two simultaneous requests, through any members, are therefore
// serialised; a token cannot be used more often than allowed even when two
// nodes are asked at once.
// Every refusal is logged with its reason and changes nothing.
//
// This file is sans-IO: the driver hands in the decoded request, the
// exporter bytes, the peer's address and `now`.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "mesh/security/cluster_files.h"
#include "mesh/security/join_token.h"
#include "base/status.h"
#include "mesh/api/control.h"
#include "store/store.h"

namespace ndo::mesh {

struct EnrolRequest {
  std::string token_id, csr_pem, vantage, name, proof;
};

struct EnrolReply {
  std::string error;  // empty: enrolled
  std::string cert_pem, ca_pem;
  Keyring keyring;
  std::vector<std::string> members;
};

// What a member without the CA key sends on to one that has it.
struct RelayedEnrol {
  std::string request;   // the joiner's encoded EnrolRequest
  std::string exporter;  // the keying material of the joiner's session with the relay
  std::string source;    // the joiner's IP address
};

inline constexpr size_t kMaxEnrolMessageBytes = 256 * 1024;
inline constexpr size_t kMaxEnrolMembers = 256;

Result<std::string> EncodeEnrolRequest(const EnrolRequest& request);
Result<EnrolRequest> DecodeEnrolRequest(std::string_view bytes);
Result<std::string> EncodeEnrolReply(const EnrolReply& reply);
Result<EnrolReply> DecodeEnrolReply(std::string_view bytes);
Result<std::string> EncodeRelayedEnrol(const RelayedEnrol& relayed);
Result<RelayedEnrol> DecodeRelayedEnrol(std::string_view bytes);

// Token records in a node's store (metadata key "mesh.token.<id>").
Result<TokenRecord> LoadToken(Store& store, std::string_view id);
Status SaveToken(Store& store, const TokenRecord& record);  // synced
// Notes that `node` has a certificate (metadata "mesh.cert.<id>" = serial):
// its id is never issued again. `ndo init` records its own.
Status RecordIssued(Store& store, const NodeId& node, std::string_view serial_hex);
// The serial of the certificate issued to `node` (NotFound if this node did
// not issue one).
Result<std::string> IssuedSerial(Store& store, const NodeId& node);
// Creates, stores and returns a new token.
Result<TokenRecord> CreateToken(Store& store, const TokenParams& params, int64_t now_unix);

// The serving side of step 3.
class EnrolmentAuthority {
 public:
  // `material` must hold the CA key.
  EnrolmentAuthority(Store& store, const ClusterMaterial& material) : store_(store), material_(material) {}

  struct Outcome {
    EnrolReply reply;          // to send (error set when refused)
    std::string log_reason;    // for the log: the reason, more precise than the reply's
    NodeId enrolled;           // the new node's id, when enrolled
    NodeRole role = NodeRole::kScanner;  // when enrolled: what its certificate binds (the token's role)
    std::string vantage;                 // ... and the vantage it binds
  };
  // `exporter`: the TLS session's keying material (kEnrolExporterLabel).
  // `members`: the addresses to hand out. `known_member`: whether a node id
  // is a member already (such a CSR is refused, as is one for any node id
  // issued before).
  Outcome Handle(const EnrolRequest& request, std::string_view exporter, std::vector<std::string> members,
                 const std::function<bool(const NodeId&)>& known_member, int64_t now_unix);

 private:
  Store& store_;
  const ClusterMaterial& material_;
};

// Bad join attempts cost a TLS handshake, a store read and an HMAC each: a
// source address that failed kMaxFailures times within kWindow is refused
// without a look for the rest of the window, and all sources together get
// at most kGlobalPerSecond attempts a second. Sans-IO: `now` is handed in.
class EnrolmentLimiter {
 public:
  static constexpr int kMaxFailures = 5;
  static constexpr std::chrono::seconds kWindow{60};
  static constexpr int kGlobalPerSecond = 20;
  static constexpr size_t kMaxTracked = 4096;
  using Time = std::chrono::steady_clock::time_point;

  // Empty if an attempt from `source` (an IP address) may be looked at
  // now; otherwise the reason to log for refusing it unseen.
  std::string Admit(const std::string& source, Time now);
  void RecordFailure(const std::string& source, Time now);

 private:
  struct Entry {
    Time window_start{};
    int failures = 0;
  };
  std::map<std::string, Entry> failures_;
  Time second_start_{};
  int this_second_ = 0;
};

}  // namespace ndo::mesh
