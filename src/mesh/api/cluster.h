// The secured cluster, as the CLI administers it: `ndo init` makes a new
// cluster on its first node, `ndo token create` issues join tokens, and
// `ndo agent`/`ndo join` secure the node before it starts (enrolling it
// through a seed with a token the first time). Errors are values; nothing
// throws. This is the agent's start-up, a driver: SecureNode reads the wall
// clock and sleeps between enrolment attempts.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "mesh/api/node.h"
#include "mesh/security/join_token.h"  // TokenParams
#include "base/status.h"

namespace ndo::mesh {

struct NewCluster {
  std::string cluster_hex, node_hex;
  std::string ca_hash;      // sha256:..., what joining nodes pin
  std::string cluster_dir;  // where the CA key was written
};

// Creates `data_dir` (mode 0700; its parent must exist) and in it a new
// cluster: a CA, this node's key and certificate (role operator, bound to
// `vantage`), a gossip keyring. InvalidArgument when the vantage is not a
// valid name or the data dir already belongs to a cluster (never
// overwritten); Unavailable when an agent holds the data dir.
Result<NewCluster> InitCluster(const std::string& data_dir, const std::string& vantage, int64_t now_unix);

struct IssuedToken {
  std::string token;    // what `ndo join --token` takes
  std::string ca_hash;  // what `ndo join --ca-hash` takes
  int64_t expires_unix = 0;
};

// Issues a join token: through the running agent of `data_dir` when one
// answers (it holds the store), else straight into the store, which only a
// node that holds the CA key may do.
Result<IssuedToken> IssueJoinToken(const std::string& data_dir, const TokenParams& params, int64_t now_unix,
                                   std::chrono::milliseconds control_timeout);

struct NodeSecurity {
  bool insecure = false;      // --insecure: an unauthenticated lab mesh
  std::string token, ca_hash;  // --token, --ca-hash: enrol through options.seeds.front()
};

// Readies `options.cluster` for a node about to start: its data dir's
// certificate, or a new one from enrolling through the first seed with the
// token (retried with backoff while the seed cannot be reached; a refusal
// is final). With `insecure`, checks that the data dir is not a secured
// node's and leaves `options.cluster` null.
Status SecureNode(const NodeSecurity& security, MeshNodeOptions& options);

}  // namespace ndo::mesh
