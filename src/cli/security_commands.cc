#include "cli/security_commands.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <vector>

#include "cli/command_table.h"
#include "cli/exit_codes.h"
#include "cli/output/json.h"
#include "cli/store_access.h"
#include "mesh/api/cluster.h"
#include "mesh/api/policy.h"
#include "store/store.h"  // DefaultDataDir

namespace ndo {
namespace {

constexpr auto kControlTimeout = std::chrono::seconds(5);

int64_t NowUnix() { return static_cast<int64_t>(std::time(nullptr)); }


void PrintToken(const mesh::IssuedToken& r, const TokenCommand& cmd) {
  if (cmd.format == "json") {
    JsonObject o;
    o.Str("token", r.token).Str("ca_hash", r.ca_hash).Int("expires_unix", r.expires_unix).UInt("uses", cmd.uses);
    if (cmd.vantage.empty()) o.Null("vantage");
    else o.Str("vantage", cmd.vantage);
    o.Str("role", cmd.role);
    std::printf("%s\n", o.str().c_str());
    return;
  }
  std::printf("token:   %s\nca hash: %s\nrole:    %s\n", r.token.c_str(), r.ca_hash.c_str(), cmd.role.c_str());
  std::fprintf(stderr, "ndo: valid until unix time %lld, for %s%s%s; on the new node:\n  ndo join ADDR --token %s --ca-hash %s --listen IP:PORT --vantage %s\n",
               static_cast<long long>(r.expires_unix),
               cmd.uses == 0 ? "any number of uses" : (std::to_string(cmd.uses) + (cmd.uses == 1 ? " use" : " uses")).c_str(),
               cmd.vantage.empty() ? "" : " by vantage ", cmd.vantage.c_str(), r.token.c_str(), r.ca_hash.c_str(),
               cmd.vantage.empty() ? "NAME" : cmd.vantage.c_str());
}

}  // namespace

int RunInitCommand(const std::string& data_dir_arg, const std::string& vantage, const std::vector<std::string>& allow) {
  std::string dir = DataDirOrDefault(data_dir_arg);
  // Checked before the cluster is made: a typo must not leave one behind.
  std::optional<IntervalSet> policy;
  if (!allow.empty()) {
    auto parsed = mesh::ParseScanPolicy(allow);
    if (!parsed.ok()) return Fail(parsed.status());
    policy = std::move(*parsed);
  }
  auto cluster = mesh::InitCluster(dir, vantage, NowUnix());
  if (!cluster.ok()) return Fail(cluster.status());
  if (policy)
    if (Status s = mesh::SaveInitPolicy(dir, *policy); !s.ok()) return Fail(s.WithContext("saving --allow"));
  std::printf("cluster: %s\nnode:    %s\nca hash: %s\nrole:    operator\nvantage: %s\n", cluster->cluster_hex.c_str(),
              cluster->node_hex.c_str(), cluster->ca_hash.c_str(), vantage.c_str());
  std::fprintf(stderr,
               "ndo: a new cluster in %s (CA key in %s/ca.key: keep it safe); this node is an operator of vantage "
               "%s. Next:\n"
               "  ndo agent --data-dir %s --listen IP:PORT%s\n"
               "  ndo token create --data-dir %s [--role scanner|operator] [--ttl 24h] [--uses 1] [--vantage NAME]\n",
               dir.c_str(), cluster->cluster_dir.c_str(), vantage.c_str(), dir.c_str(),
               policy ? "" : " --allow CIDR,... (without a policy it takes no distributed work)", dir.c_str());
  return kExitOk;
}

int RunTokenCreateCommand(const TokenCommand& cmd) {
  if (Status s = CheckFormat(cmd.format, {"table", "json"}); !s.ok()) return Fail(s);
  std::string dir = DataDirOrDefault(cmd.data_dir);
  auto ttl = mesh::ParseTtlSeconds(cmd.ttl);
  if (!ttl.ok()) return Fail(ttl.status().WithContext("--ttl"));
  if (cmd.vantage.size() > mesh::kMaxVantageBytes)
    return Fail(Status::InvalidArgument("--vantage is longer than " + std::to_string(mesh::kMaxVantageBytes) + " bytes"));
  auto role = mesh::ParseNodeRole(cmd.role);
  if (!role) return Fail(Status::InvalidArgument("--role must be scanner or operator, not '" + cmd.role + "'"));
  auto token = mesh::IssueJoinToken(dir, {*ttl, cmd.uses, cmd.vantage, *role}, NowUnix(), kControlTimeout);
  if (!token.ok()) return Fail(token.status());
  PrintToken(*token, cmd);
  return kExitOk;
}

namespace {

CommandRun SetupInit(CLI::App& cmd) {
  struct State {
    std::string data_dir, vantage;
    std::vector<std::string> allow;
  };
  auto st = std::make_shared<State>();
  AddDataDirOption(cmd, st->data_dir, "The node's data dir");
  // Required: the certificate binds it, and the mesh believes only that
  // (`ndo agent` on this node then takes it without --vantage).
  cmd.add_option("--vantage", st->vantage,
                 "Where this first node sees the network from (dmz, wifi, ...): bound in its certificate")
      ->required();
  cmd.add_option("--allow", st->allow,
                 "The first node's scan policy: the only addresses it will ever probe (as for ndo agent --allow); "
                 "taken up by its first start")
      ->expected(1)
      ->take_all();
  return [st](const std::vector<std::string>&) { return RunInitCommand(st->data_dir, st->vantage, st->allow); };
}

CommandRun SetupToken(CLI::App& cmd) {
  auto st = std::make_shared<TokenCommand>();
  cmd.require_subcommand(1);
  auto* create = cmd.add_subcommand("create", "Create a join token (on the node that ran ndo init)");
  AddDataDirOption(*create, st->data_dir, "The node's data dir");
  create->add_option("--ttl", st->ttl, "Lifetime: 90s, 15m, 24h, 7d (at most 365d)")->capture_default_str();
  create->add_option("--uses", st->uses, "How many nodes it may enrol (0: any number until it expires)")
      ->capture_default_str();
  create->add_option("--vantage", st->vantage, "The only vantage it may enrol (default: any)");
  create->add_option("--role", st->role,
                     "What the nodes it enrols may do: scanner (scan leased shards) or operator (also submit and "
                     "control scans, create tokens, remove members, rotate keys)")
      ->check(CLI::IsMember({"scanner", "operator"}))
      ->capture_default_str();
  AddFormatOption(*create, st->format, {"table", "json"},
                  "json: one record: token, ca_hash, expires_unix, uses, vantage, role");
  // --json: the old spelling of --format json, kept for scripts (hidden).
  create->add_flag_callback("--json", [st] { st->format = "json"; }, "Same as --format json")->group("");
  return [st](const std::vector<std::string>&) { return RunTokenCreateCommand(*st); };
}

}  // namespace

std::vector<CommandEntry> SecurityCommands() {
  return {
      {"init", "Make a new secured cluster on its first node: a CA, this node's certificate, a gossip keyring",
       SetupInit},
      {"token", "Join tokens", SetupToken},
  };
}

}  // namespace ndo
