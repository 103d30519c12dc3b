// The mesh subcommands: `ndo agent` and `ndo join` run a node in the
// foreground; `ndo members` and `ndo leave` talk to it over its control
// socket. Each returns a process exit code (exit_codes.h) and prints its own
// errors; none throws.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cli/security_commands.h"
#include "mesh/api/control.h"

namespace ndo {

struct AgentCommand {
  std::vector<std::string> seeds;  // `join` only
  std::string listen, advertise, data_dir, vantage, name;
  std::optional<uint32_t> priority;
  std::vector<std::string> allow;  // --allow: the scan policy (replaces the saved one when given)
  std::string log_level = "info";
  uint32_t dead_man_after_s = 30;  // the dead man's switch (mesh/work/worker.h)
  // A secured cluster (the default): `join` enrols with these when the data
  // dir has no certificate yet.
  std::string token, ca_hash;
  bool insecure = false;  // an unauthenticated, unencrypted mesh (labs only)
};

int RunAgentCommand(const AgentCommand& cmd);
int RunMembersCommand(const std::string& data_dir, const std::string& format = "table");  // table or json
// --format json of `ndo members`: JSON Lines, one "member" record per member
// (this node first, "self":true), then one "coordinator" record.
std::string MembersJson(const mesh::ControlResponse& r);
// A scan policy for people: its ranges (at most max_ranges), or "none:
// takes no distributed work"; and its ranges one by one (for JSON).
std::string PolicyText(const IntervalSet& allow, size_t max_ranges = 32);
std::vector<std::string> AllowList(const IntervalSet& allow);
int RunLeaveCommand(const std::string& data_dir);
// `ndo members remove` and `ndo keys rotate`: the request to the local agent,
// which prints what it did.
int RunSecurityControl(const std::string& data_dir, const mesh::ControlRequest& request);

}  // namespace ndo
