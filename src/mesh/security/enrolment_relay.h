// The enrolment relay, sans-IO: a member without the CA key passes a
// joiner's enrolment request to an alive enrolment authority (a member that
// holds the CA key, announced in the security state) and the answer back.
// The joiner's proof stays bound to its TLS session with this member, whose
// keying material (exporter) goes along with the request. No clock, no
// socket: the driver opens the streams and answers the joiner with what
// comes out here.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "mesh/security/enrolment.h"
#include "mesh/security/security_state.h"
#include "mesh/security/security_sync.h"
#include "base/status.h"

namespace ndo::mesh {

// Where to relay: the authority's address and the kEnrolRelay frame to send.
struct RelayPlan {
  std::string to;
  std::string frame;
};

// What to answer the joiner after the authority replied (or did not).
struct RelayOutcome {
  EnrolReply answer;
  bool relayed = false;         // the authority answered (enrolled or refused)
  bool record_failure = false;  // count a failed attempt against the joiner's source
  std::string log_reason;       // why it failed, for the logs (relayed: the authority's error)
};

class EnrolmentRelay {
 public:
  explicit EnrolmentRelay(uint64_t seed) : rng_(seed) {}

  // Picks a random authority among `security.authorities` that is alive (in
  // `alive`) and not revoked. Unavailable when there is none (the joiner is
  // told so: `Refusal()`); Corruption when the request cannot be encoded.
  Result<RelayPlan> Plan(std::string request_bytes, std::string exporter, std::string source,
                         const SecurityState& security, const std::vector<SecurityPeer>& alive);

  // The joiner's answer when there is no authority to relay to.
  static EnrolReply Refusal();

  // The authority's reply frame, or the transport's failure.
  static RelayOutcome OnReply(const Result<std::string>& frame);

 private:
  std::mt19937_64 rng_;
};

}  // namespace ndo::mesh
