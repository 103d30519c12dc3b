// The secured cluster's commands: `ndo init` (a new cluster, on its first
// node) and `ndo token create` (a join token), on mesh/api/cluster.h. Each prints its own errors and
// returns a process exit code (exit_codes.h); none throws.
#pragma once

#include <string>

#include "base/status.h"
#include "mesh/api/node.h"

namespace ndo {

// `vantage`: the one the first node's certificate binds (required);
// `allow`: the values of --allow, the first node's scan policy.
int RunInitCommand(const std::string& data_dir, const std::string& vantage, const std::vector<std::string>& allow = {});

struct TokenCommand {
  std::string data_dir;
  std::string ttl = "24h";
  uint32_t uses = 1;
  std::string vantage;
  std::string role = "scanner";  // or operator: what the nodes it enrols may do
  std::string format = "table";  // or json
};
int RunTokenCreateCommand(const TokenCommand& cmd);

}  // namespace ndo
