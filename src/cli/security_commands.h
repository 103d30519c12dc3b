// The secured cluster's commands: `ndo init` (a new cluster, on its first
// node), `ndo token create` (a join token), and the enrolment that `ndo
// join --token` does before the node starts. Each prints its own errors and
// returns a process exit code (exit_codes.h); none throws.
#pragma once

#include <string>

#include "mesh/mesh_node.h"
#include "base/status.h"

namespace ndo {

int RunInitCommand(const std::string& data_dir);

struct TokenCommand {
  std::string data_dir;
  std::string ttl = "24h";
  uint32_t uses = 1;
  std::string vantage;
  std::string format = "table";  // or json
};
int RunTokenCreateCommand(const TokenCommand& cmd);

// Enrols the node of `options` through `seed` with the join token and the
// pinned CA hash, writing its certificate, key, CA and keyring into the
// data dir. The node id is its saved one, if the data dir has a node.
Status EnrolNode(const mesh::MeshNodeOptions& options, const mesh::HostPort& seed, const std::string& token_text,
                 const std::string& ca_hash);

}  // namespace ndo
