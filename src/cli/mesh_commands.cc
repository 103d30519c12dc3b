#include "cli/mesh_commands.h"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "cli/command_table.h"
#include "cli/exit_codes.h"
#include "cli/output/json.h"
#include "cli/store_access.h"
#include "base/log.h"
#include "mesh/api/cluster.h"
#include "mesh/api/control.h"
#include "mesh/api/node.h"
#include "mesh/api/policy.h"
#include "store/store.h"

namespace ndo {
namespace {

using mesh::ControlCommand;
using mesh::ControlMember;
using mesh::ControlResponse;

constexpr auto kControlTimeout = std::chrono::seconds(5);


// Names and vantages are shown to people and sent to every member: bounded,
// printable, no control characters.
Status CheckLabel(const std::string& what, const std::string& value, size_t max) {
  if (value.size() > max)
    return Status::InvalidArgument(what + " '" + value + "' is " + std::to_string(value.size()) +
                                   " bytes long; at most " + std::to_string(max) + " are allowed");
  for (unsigned char c : value)
    if (c < 0x20 || c == 0x7f) return Status::InvalidArgument(what + " contains a control character");
  return Status::Ok();
}

// Terminal output of names that came from the network: control bytes as '?'.
std::string Printable(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out.empty() ? "-" : out;
}

Result<mesh::MeshNodeOptions> BuildNodeOptions(const AgentCommand& cmd) {
  mesh::MeshNodeOptions o;
  o.data_dir = DataDirOrDefault(cmd.data_dir);
  if (cmd.data_dir.empty()) {
    // The default lives under $XDG_DATA_HOME or ~/.local/share, which a
    // fresh account may not have yet; a directory given explicitly must
    // have its parent already (a typo should not create a tree).
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(o.data_dir).parent_path(), ec);
  }
  if (Status s = mesh::CheckDataDir(o.data_dir); !s.ok()) return s;
  if (!cmd.listen.empty()) {
    auto l = mesh::ParseHostPort(cmd.listen);
    if (!l.ok()) return l.status().WithContext("--listen");
    o.identity.listen = *l;
  }
  if (!cmd.advertise.empty()) {
    auto a = mesh::ParseHostPort(cmd.advertise);
    if (!a.ok()) return a.status().WithContext("--advertise");
    if (Status s = mesh::CheckPeerAddress(*a, "--advertise"); !s.ok()) return s;
    o.identity.advertise = *a;
  }
  for (const auto& s : cmd.seeds) {
    auto seed = mesh::ParseHostPort(s);
    if (!seed.ok()) return seed.status().WithContext("seed");
    if (Status st = mesh::CheckPeerAddress(*seed, "seed"); !st.ok()) return st;
    o.seeds.push_back(*seed);
  }
  // One socket reaches one address family (both from [::]): a mismatch
  // would only show later as members that never answer. Without --listen
  // (a restart) the node checks against the saved address.
  if (o.identity.listen) {
    const mesh::HostPort& listen = *o.identity.listen;
    auto mismatch = [&](const std::string& what, const mesh::HostPort& other) {
      return Status::InvalidArgument(what + " " + other.ToString() + " and --listen " + listen.ToString() +
                                     " are of different address families (IPv4 and IPv6); a node reaches only its "
                                     "own family (or both from --listen [::]:PORT)");
    };
    if (o.identity.advertise && !mesh::SameFamily(listen, *o.identity.advertise))
      return mismatch("--advertise", *o.identity.advertise);
    for (const auto& seed : o.seeds)
      if (!mesh::SameFamily(listen, seed)) return mismatch("seed", seed);
  }
  if (Status s = CheckLabel("--name", cmd.name, mesh::kMaxNameBytes); !s.ok()) return s;
  if (Status s = CheckLabel("--vantage", cmd.vantage, mesh::kMaxVantageBytes); !s.ok()) return s;
  o.identity.name = cmd.name;
  o.identity.vantage = cmd.vantage;
  o.identity.priority = cmd.priority;
  if (!cmd.allow.empty()) {
    auto allow = mesh::ParseScanPolicy(cmd.allow);
    if (!allow.ok()) return allow.status();
    o.identity.allow = std::move(*allow);
  }
  o.work.dead_man_after = std::chrono::seconds(cmd.dead_man_after_s);
  return o;
}

std::string Role(const ControlResponse& r, const ControlMember& m, bool self) {
  std::string role;
  if (self) role = "self";
  if (!r.coordinator.empty() && m.id == r.coordinator) role += role.empty() ? "coordinator" : ",coordinator";
  return role;
}

}  // namespace

std::string PolicyText(const IntervalSet& allow, size_t max_ranges) {
  return allow.empty() ? "none: takes no distributed work" : mesh::FormatAddressSet(allow, max_ranges);
}

namespace {

void PrintTable(const ControlResponse& r) {
  struct Row {
    std::string id, name, vantage, address, state, incarnation, role, allow;
  };
  std::vector<Row> rows = {{"ID", "NAME", "VANTAGE", "ADDRESS", "STATE", "INCARNATION", "ROLE", "ALLOW"}};
  auto add = [&](const ControlMember& m, bool self) {
    rows.push_back({m.id.Hex().substr(0, 8), Printable(m.name), Printable(m.vantage), Printable(m.address),
                    std::string(mesh::MemberStateName(m.state)), std::to_string(m.incarnation), Role(r, m, self),
                    PolicyText(m.allow, 4)});
  };
  add(r.self, true);
  for (const auto& m : r.members) add(m, false);
  size_t w[7] = {};
  for (const auto& row : rows) {
    const std::string* cols[7] = {&row.id,    &row.name,        &row.vantage, &row.address,
                                  &row.state, &row.incarnation, &row.role};
    for (int i = 0; i < 7; ++i) w[i] = std::max(w[i], cols[i]->size());
  }
  for (const auto& row : rows) {
    std::printf("%-*s  %-*s  %-*s  %-*s  %-*s  %*s  %-*s  %s\n", static_cast<int>(w[0]), row.id.c_str(),
                static_cast<int>(w[1]), row.name.c_str(), static_cast<int>(w[2]), row.vantage.c_str(),
                static_cast<int>(w[3]), row.address.c_str(), static_cast<int>(w[4]), row.state.c_str(),
                static_cast<int>(w[5]), row.incarnation.c_str(), static_cast<int>(w[6]), row.role.c_str(),
                row.allow.c_str());
  }
  if (r.coordinator.empty()) {
    std::printf("coordinator: none yet (epoch %llu)\n", static_cast<unsigned long long>(r.epoch));
    return;
  }
  std::string name = "?";
  if (r.self.id == r.coordinator) name = r.self.name;
  for (const auto& m : r.members)
    if (m.id == r.coordinator) name = m.name;
  std::printf("coordinator: %s (%s) epoch %llu\n", Printable(name).c_str(), r.coordinator.Hex().substr(0, 8).c_str(),
              static_cast<unsigned long long>(r.epoch));
}

}  // namespace

std::vector<std::string> AllowList(const IntervalSet& allow) {
  std::vector<std::string> out;
  for (const auto& r : allow.ranges()) {
    IntervalSet one;
    one.Add(r);
    out.push_back(mesh::FormatAddressSet(one));
  }
  return out;
}

std::string MembersJson(const ControlResponse& r) {
  auto member = [&](const ControlMember& m, bool self) {
    return JsonObject()
               .Str("record", "member")
               .Str("id", m.id.Hex())
               .Str("name", m.name)
               .Str("vantage", m.vantage)
               .Str("address", m.address)
               .Str("state", mesh::MemberStateName(m.state))
               .UInt("incarnation", m.incarnation)
               .UInt("priority", m.priority)
               .Bool("self", self)
               .Bool("coordinator", !r.coordinator.empty() && m.id == r.coordinator)
               .Raw("allow", JsonStringArray(AllowList(m.allow)))
               .Bool("takes_work", !m.allow.empty())
               .str() +
           "\n";
  };
  std::string out = member(r.self, true);
  for (const auto& m : r.members) out += member(m, false);
  JsonObject coordinator;
  coordinator.Str("record", "coordinator");
  if (r.coordinator.empty()) {
    coordinator.Null("id").Null("name");
  } else {
    std::string name;
    if (r.self.id == r.coordinator) name = r.self.name;
    for (const auto& m : r.members)
      if (m.id == r.coordinator) name = m.name;
    coordinator.Str("id", r.coordinator.Hex()).Str("name", name);
  }
  return out + coordinator.UInt("epoch", r.epoch).str() + "\n";
}

namespace {

// What agent and join share: the node's options.
struct NodeCommandState {
  AgentCommand cmd;
  uint32_t priority = 0;
  CLI::Option* priority_opt = nullptr;
};

void AddNodeOptions(CLI::App& c, NodeCommandState& st) {
  AgentCommand& a = st.cmd;
  c.add_option("--listen", a.listen,
               "Where this node's UDP gossip and TCP streams listen: IP:PORT or [IPv6]:PORT "
               "(required on first start; saved in the data dir)");
  c.add_option("--advertise", a.advertise,
               "The address others reach this node at, if not --listen (e.g. behind NAT)");
  AddDataDirOption(c, a.data_dir, "The node's state and control socket")->description(
      "The node's state and control socket (default: $NDO_DATA_DIR, else $XDG_DATA_HOME/ndo); its parent must exist");
  c.add_option("--vantage", a.vantage,
               "Where this node sees the network from: dmz, wifi, internet, ... (required on first start)");
  c.add_option("--name", a.name, "A name for people (default: the host name)");
  c.add_option("--allow", a.allow,
               "Scan policy: the only addresses this node will ever probe, whoever asks (CIDRs, a-b ranges, "
               "addresses; comma separated or repeated). Saved in the data dir: a restart keeps it, a new --allow "
               "replaces it. Without one the node takes no distributed work")
      ->expected(1)
      ->take_all();
  st.priority_opt = c.add_option("--priority", st.priority,
                                 "Coordinator preference: the alive member with the lowest (priority, id) "
                                 "coordinates (default 100)");
  c.add_option("--log-level", a.log_level, "debug, info, warn or error")->capture_default_str();
  c.add_option("--dead-man-after", a.dead_man_after_s,
               "Dead man's switch: seconds cut off from the coordinator or from most of the mesh after which "
               "this node stops starting probes, until it is back")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  c.add_flag("--insecure", a.insecure,
             "Run an unauthenticated, unencrypted mesh (labs only; refused for a data dir of a secured cluster)");
  c.footer("Runs until SIGINT/SIGTERM or `ndo leave`, then leaves the mesh gracefully and exits 0. "
           "Logs (logfmt) go to standard error.");
}

CommandRun RunNode(std::shared_ptr<NodeCommandState> st) {
  return [st](const std::vector<std::string>&) {
    if (st->priority_opt->count()) st->cmd.priority = st->priority;
    return RunAgentCommand(st->cmd);
  };
}

CommandRun SetupAgent(CLI::App& cmd) {
  auto st = std::make_shared<NodeCommandState>();
  AddNodeOptions(cmd, *st);
  return RunNode(st);
}

CommandRun SetupJoin(CLI::App& cmd) {
  auto st = std::make_shared<NodeCommandState>();
  cmd.add_option("seed", st->cmd.seeds, "Address of a running member: IP:PORT or [IPv6]:PORT")->required();
  AddNodeOptions(cmd, *st);
  cmd.add_option("--token", st->cmd.token,
                 "A join token (ndo token create on a node of the cluster): enrols this node on its first join");
  cmd.add_option("--ca-hash", st->cmd.ca_hash,
                 "The cluster CA's hash, sha256:... (printed with the token): the seed must prove it holds it");
  return RunNode(st);
}

CommandRun SetupMembers(CLI::App& cmd) {
  struct State {
    std::string data_dir, remove_who, format = "table";
  };
  auto st = std::make_shared<State>();
  AddDataDirOption(cmd, st->data_dir, "The agent's data dir");
  AddFormatOption(cmd, st->format, {"table", "json"},
                  "json: JSON Lines, one record per member, then one for the coordinator");
  // --json: the old spelling of --format json, kept for scripts (hidden).
  cmd.add_flag_callback("--json", [st] { st->format = "json"; }, "Same as --format json")->group("");
  auto* remove = cmd.add_subcommand(
      "remove", "Revoke a member: every member refuses its certificate, streams and datagrams from then on, and the "
                "gossip keys rotate (the removed node keeps only old ones)");
  remove->add_option("node", st->remove_who, "The member's name, node id, or an id prefix of 8+ hex digits")->required();
  AddDataDirOption(*remove, st->data_dir, "The local agent's data dir");
  return [st, remove](const std::vector<std::string>&) {
    if (remove->parsed()) {
      mesh::ControlRequest request(ControlCommand::kRemoveMember);
      request.member = st->remove_who;
      return RunSecurityControl(st->data_dir, request);
    }
    return RunMembersCommand(st->data_dir, st->format);
  };
}

CommandRun SetupKeys(CLI::App& cmd) {
  auto data_dir = std::make_shared<std::string>();
  cmd.require_subcommand(1);
  auto* rotate = cmd.add_subcommand(
      "rotate", "Install a new gossip key on every member, seal with it 10 s later, and remove the old keys 10 s after "
                "that, without a restart");
  AddDataDirOption(*rotate, *data_dir, "The local agent's data dir");
  return [data_dir](const std::vector<std::string>&) {
    return RunSecurityControl(*data_dir, ControlCommand::kRotateKeys);
  };
}

CommandRun SetupLeave(CLI::App& cmd) {
  auto data_dir = std::make_shared<std::string>();
  AddDataDirOption(cmd, *data_dir, "The agent's data dir");
  return [data_dir](const std::vector<std::string>&) { return RunLeaveCommand(*data_dir); };
}

}  // namespace

std::vector<CommandEntry> MeshCommands() {
  return {
      {"agent", "Run a mesh node in the foreground (the first node, or a restart)", SetupAgent},
      {"join", "Run a mesh node that joins an existing mesh through SEED (retried until it works)", SetupJoin},
      {"members", "List the members the local agent knows, and the coordinator", SetupMembers},
      {"keys", "Gossip keys of a secured cluster", SetupKeys},
      {"leave", "Make the local agent leave the mesh gracefully and exit", SetupLeave},
  };
}

int RunAgentCommand(const AgentCommand& cmd) {
  auto level = ParseLogLevel(cmd.log_level);
  if (!level.ok()) return Fail(level.status().WithContext("--log-level"));
  SetLogLevel(*level);
  auto options = BuildNodeOptions(cmd);
  if (!options.ok()) return Fail(options.status());
  if (Status s = mesh::SecureNode({cmd.insecure, cmd.token, cmd.ca_hash}, *options); !s.ok()) return Fail(s);
  Status s = mesh::RunMeshNode(*options);
  if (!s.ok()) {
    Log(LogLevel::kError, "node failed", {{"reason", s.message()}});
    return Fail(s);
  }
  return kExitOk;
}

int RunMembersCommand(const std::string& data_dir, const std::string& format) {
  if (Status s = CheckFormat(format, {"table", "json"}); !s.ok()) return Fail(s);
  auto r = mesh::CallControl(DataDirOrDefault(data_dir), ControlCommand::kMembers, kControlTimeout);
  if (!r.ok()) return std::fprintf(stderr, "ndo: %s\n", r.status().message().c_str()), kExitError;
  if (format == "json")
    std::fputs(MembersJson(*r).c_str(), stdout);
  else
    PrintTable(*r);
  return kExitOk;
}

int RunSecurityControl(const std::string& data_dir, const mesh::ControlRequest& request) {
  auto r = mesh::CallControl(DataDirOrDefault(data_dir), request, kControlTimeout);
  if (!r.ok()) return std::fprintf(stderr, "ndo: %s\n", r.status().message().c_str()), kExitError;
  std::printf("%s\n", r->message.c_str());
  return kExitOk;
}

int RunLeaveCommand(const std::string& data_dir) {
  std::string dir = DataDirOrDefault(data_dir);
  auto r = mesh::CallControl(dir, ControlCommand::kLeave, kControlTimeout);
  if (!r.ok()) return std::fprintf(stderr, "ndo: %s\n", r.status().message().c_str()), kExitError;
  std::fprintf(stderr, "ndo: agent %s (%s) is leaving the mesh\n", Printable(r->self.name).c_str(),
               r->self.id.Hex().substr(0, 8).c_str());
  // The agent spreads the news for a moment, then closes its store and only
  // then removes its socket; wait for that, so that scripts can rely on it
  // being gone and on the data dir being free (`ndo leave && ndo agent`).
  std::string sock = mesh::ControlSocketPath(dir);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::symlink_status(sock, ec))) {
      std::fprintf(stderr, "ndo: agent left and exited\n");
      return kExitOk;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::fprintf(stderr, "ndo: the agent has not exited after 30 s (its control socket %s remains)\n", sock.c_str());
  return kExitError;
}

}  // namespace ndo
