// The mesh subcommands: `ndo agent` and `ndo join` run a node in the
// foreground; `ndo members` and `ndo leave` talk to it over its control
// socket. Each returns a process exit code (exit_codes.h) and prints its own
// errors; none throws.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/security_commands.h"
#include "mesh/control.h"

namespace ndo {

struct AgentCommand {
  std::vector<std::string> seeds;  // `join` only
  std::string listen, advertise, data_dir, vantage, name;
  std::optional<uint32_t> priority;
  std::string log_level = "info";
  uint32_t dead_man_after_s = 30;  // the dead man's switch (mesh/worker.h)
  // A secured cluster (the default): `join` enrols with these when the data
  // dir has no certificate yet.
  std::string token, ca_hash;
  bool insecure = false;  // an unauthenticated, unencrypted mesh (labs only)
};

// The subcommands, registered on `app`; Dispatch runs the one parsed (or
// returns -1 when none of them was).
class MeshCli {
 public:
  explicit MeshCli(CLI::App& app);
  int Dispatch();

 private:
  CLI::App* agent_ = nullptr;
  CLI::App* join_ = nullptr;
  CLI::App* members_ = nullptr;
  CLI::App* leave_ = nullptr;
  CLI::App* init_ = nullptr;
  CLI::App* members_remove_ = nullptr;
  CLI::App* keys_rotate_ = nullptr;
  std::string remove_who_;
  CLI::App* token_create_ = nullptr;
  TokenCommand token_cmd_;
  AgentCommand agent_cmd_;
  uint32_t priority_ = 0;
  CLI::Option* priority_opt_ = nullptr;
  CLI::Option* join_priority_opt_ = nullptr;
  std::string data_dir_;
  bool json_ = false;
};

int RunAgentCommand(const AgentCommand& cmd);
int RunMembersCommand(const std::string& data_dir, bool json);
int RunLeaveCommand(const std::string& data_dir);
// `ndo members remove` and `ndo keys rotate`: the request to the local agent,
// which prints what it did.
int RunSecurityControl(const std::string& data_dir, const mesh::ControlRequest& request);

}  // namespace ndo
