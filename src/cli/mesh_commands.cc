#include "cli/mesh_commands.h"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "cli/exit_codes.h"
#include "cli/output/writers.h"
#include "mesh/address.h"
#include "mesh/cluster_files.h"
#include "mesh/control.h"
#include "mesh/log.h"
#include "mesh/mesh_node.h"
#include "store/store.h"

namespace ndo {
namespace {

using mesh::ControlCommand;
using mesh::ControlMember;
using mesh::ControlResponse;

constexpr auto kControlTimeout = std::chrono::seconds(5);

std::string DataDirOrDefault(const std::string& d) { return d.empty() ? DefaultDataDir() : d; }

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
  o.work.dead_man_after = std::chrono::seconds(cmd.dead_man_after_s);
  return o;
}

// A node runs in a secured cluster unless asked for --insecure: with the
// data dir's certificate, or enrolled first through the seed with a token.
Status SecureNodeOptions(const AgentCommand& cmd, mesh::MeshNodeOptions& o) {
  bool enrolled = mesh::HasClusterMaterial(o.data_dir);
  if (cmd.insecure) {
    if (enrolled)
      return Status::InvalidArgument("data dir " + o.data_dir + " belongs to a secured cluster; --insecure is refused");
    if (!cmd.token.empty()) return Status::InvalidArgument("--token and --insecure exclude each other");
    mesh::Log(mesh::LogLevel::kWarn, "insecure mesh: datagrams and streams are neither authenticated nor encrypted");
    return Status::Ok();
  }
  if (!enrolled) {
    if (cmd.token.empty() || cmd.seeds.empty())
      return Status::InvalidArgument(
          "data dir " + o.data_dir +
          " belongs to no cluster: run `ndo init` on the first node, and `ndo join ADDR --token T --ca-hash H` on "
          "the others (or --insecure for an unauthenticated lab mesh)");
    if (cmd.ca_hash.empty())
      return Status::InvalidArgument("--token needs --ca-hash sha256:... (printed with the token): without it the "
                                     "seed's identity is unchecked");
    // As joining, enrolling is retried while the seed cannot be reached (a
    // node started before its seed); a refusal is final.
    auto backoff = std::chrono::seconds(1);
    for (int attempt = 1;; ++attempt) {
      Status s = EnrolNode(o, o.seeds.front(), cmd.token, cmd.ca_hash);
      if (s.ok()) break;
      if (s.code() != Status::Code::kIoError && s.code() != Status::Code::kUnavailable) return s;
      mesh::Log(attempt >= 3 ? mesh::LogLevel::kWarn : mesh::LogLevel::kInfo, "not enrolled yet, trying again",
                {{"attempt", attempt}, {"reason", s.message()}, {"retry_s", static_cast<uint64_t>(backoff.count())}});
      std::this_thread::sleep_for(backoff);
      backoff = std::min<std::chrono::seconds>(backoff * 2, std::chrono::seconds(30));
    }
  }
  auto material = mesh::LoadClusterMaterial(o.data_dir, static_cast<int64_t>(std::time(nullptr)));
  if (!material.ok()) return material.status();
  o.cluster = std::make_shared<const mesh::ClusterMaterial>(std::move(*material));
  return Status::Ok();
}

std::string Role(const ControlResponse& r, const ControlMember& m, bool self) {
  std::string role;
  if (self) role = "self";
  if (!r.coordinator.empty() && m.id == r.coordinator) role += role.empty() ? "coordinator" : ",coordinator";
  return role;
}

void PrintJson(const ControlResponse& r) {
  auto member_line = [&](const ControlMember& m, bool self) {
    std::string line = "{\"record\":\"member\",\"id\":";
    AppendJsonString(line, m.id.Hex());
    line += ",\"name\":";
    AppendJsonString(line, m.name);
    line += ",\"vantage\":";
    AppendJsonString(line, m.vantage);
    line += ",\"address\":";
    AppendJsonString(line, m.address);
    line += ",\"state\":";
    AppendJsonString(line, mesh::MemberStateName(m.state));
    line += ",\"incarnation\":" + std::to_string(m.incarnation);
    line += ",\"priority\":" + std::to_string(m.priority);
    line += std::string(",\"self\":") + (self ? "true" : "false");
    line += std::string(",\"coordinator\":") + (!r.coordinator.empty() && m.id == r.coordinator ? "true" : "false");
    line += "}\n";
    std::fputs(line.c_str(), stdout);
  };
  member_line(r.self, true);
  for (const auto& m : r.members) member_line(m, false);
  std::string line = "{\"record\":\"coordinator\",\"id\":";
  if (r.coordinator.empty()) {
    line += "null,\"name\":null";
  } else {
    AppendJsonString(line, r.coordinator.Hex());
    line += ",\"name\":";
    std::string name;
    if (r.self.id == r.coordinator) name = r.self.name;
    for (const auto& m : r.members)
      if (m.id == r.coordinator) name = m.name;
    AppendJsonString(line, name);
  }
  line += ",\"epoch\":" + std::to_string(r.epoch) + "}\n";
  std::fputs(line.c_str(), stdout);
}

void PrintTable(const ControlResponse& r) {
  struct Row {
    std::string id, name, vantage, address, state, incarnation, role;
  };
  std::vector<Row> rows = {{"ID", "NAME", "VANTAGE", "ADDRESS", "STATE", "INCARNATION", "ROLE"}};
  auto add = [&](const ControlMember& m, bool self) {
    rows.push_back({m.id.Hex().substr(0, 8), Printable(m.name), Printable(m.vantage), Printable(m.address),
                    std::string(mesh::MemberStateName(m.state)), std::to_string(m.incarnation), Role(r, m, self)});
  };
  add(r.self, true);
  for (const auto& m : r.members) add(m, false);
  size_t w[6] = {};
  for (const auto& row : rows) {
    const std::string* cols[6] = {&row.id, &row.name, &row.vantage, &row.address, &row.state, &row.incarnation};
    for (int i = 0; i < 6; ++i) w[i] = std::max(w[i], cols[i]->size());
  }
  for (const auto& row : rows) {
    std::printf("%-*s  %-*s  %-*s  %-*s  %-*s  %*s  %s\n", static_cast<int>(w[0]), row.id.c_str(),
                static_cast<int>(w[1]), row.name.c_str(), static_cast<int>(w[2]), row.vantage.c_str(),
                static_cast<int>(w[3]), row.address.c_str(), static_cast<int>(w[4]), row.state.c_str(),
                static_cast<int>(w[5]), row.incarnation.c_str(), row.role.c_str());
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

MeshCli::MeshCli(CLI::App& app) {
  auto add_node_options = [this](CLI::App* c, CLI::Option*& priority_opt) {
    c->add_option("--listen", agent_cmd_.listen,
                  "Where this node's UDP gossip and TCP streams listen: IP:PORT or [IPv6]:PORT "
                  "(required on first start; saved in the data dir)");
    c->add_option("--advertise", agent_cmd_.advertise,
                  "The address others reach this node at, if not --listen (e.g. behind NAT)");
    c->add_option("--data-dir", agent_cmd_.data_dir,
                  "The node's state and control socket (default: $NDO_DATA_DIR, else $XDG_DATA_HOME/ndo); its parent must exist");
    c->add_option("--vantage", agent_cmd_.vantage,
                  "Where this node sees the network from: dmz, wifi, internet, ... (required on first start)");
    c->add_option("--name", agent_cmd_.name, "A name for people (default: the host name)");
    priority_opt = c->add_option("--priority", priority_,
                                 "Coordinator preference: the alive member with the lowest (priority, id) "
                                 "coordinates (default 100)");
    c->add_option("--log-level", agent_cmd_.log_level, "debug, info, warn or error")->capture_default_str();
    c->add_option("--dead-man-after", agent_cmd_.dead_man_after_s,
                  "Dead man's switch: seconds cut off from the coordinator or from most of the mesh after which "
                  "this node stops starting probes, until it is back")
        ->check(CLI::Range(1, 86400))
        ->capture_default_str();
    c->add_flag("--insecure", agent_cmd_.insecure,
                "Run an unauthenticated, unencrypted mesh (labs only; refused for a data dir of a secured cluster)");
  };
  agent_ = app.add_subcommand("agent", "Run a mesh node in the foreground (the first node, or a restart)");
  add_node_options(agent_, priority_opt_);
  join_ = app.add_subcommand("join", "Run a mesh node that joins an existing mesh through SEED (retried until it works)");
  join_->add_option("seed", agent_cmd_.seeds, "Address of a running member: IP:PORT or [IPv6]:PORT")->required();
  add_node_options(join_, join_priority_opt_);
  join_->add_option("--token", agent_cmd_.token,
                    "A join token (ndo token create on a node of the cluster): enrols this node on its first join");
  join_->add_option("--ca-hash", agent_cmd_.ca_hash,
                    "The cluster CA's hash, sha256:... (printed with the token): the seed must prove it holds it");
  for (CLI::App* c : {agent_, join_})
    c->footer("Runs until SIGINT/SIGTERM or `ndo leave`, then leaves the mesh gracefully and exits 0. "
              "Logs (logfmt) go to standard error.");

  members_ = app.add_subcommand("members", "List the members the local agent knows, and the coordinator");
  members_->add_option("--data-dir", data_dir_, "The agent's data dir (default: $NDO_DATA_DIR, else $XDG_DATA_HOME/ndo)");
  members_->add_flag("--json", json_, "JSON Lines: one record per member, then one for the coordinator");
  members_remove_ = members_->add_subcommand(
      "remove", "Revoke a member: every member refuses its certificate, streams and datagrams from then on, and the "
                "gossip keys rotate (the removed node keeps only old ones)");
  members_remove_->add_option("node", remove_who_, "The member's name, node id, or an id prefix of 8+ hex digits")
      ->required();
  members_remove_->add_option("--data-dir", data_dir_, "The local agent's data dir (default: $NDO_DATA_DIR, else $XDG_DATA_HOME/ndo)");

  auto* keys = app.add_subcommand("keys", "Gossip keys of a secured cluster");
  keys->require_subcommand(1);
  keys_rotate_ = keys->add_subcommand(
      "rotate", "Install a new gossip key on every member, seal with it 10 s later, and remove the old keys 10 s after "
                "that, without a restart");
  keys_rotate_->add_option("--data-dir", data_dir_, "The local agent's data dir (default: $NDO_DATA_DIR, else $XDG_DATA_HOME/ndo)");

  leave_ = app.add_subcommand("leave", "Make the local agent leave the mesh gracefully and exit");
  leave_->add_option("--data-dir", data_dir_, "The agent's data dir (default: $NDO_DATA_DIR, else $XDG_DATA_HOME/ndo)");

  init_ = app.add_subcommand("init", "Make a new secured cluster on its first node: a CA, this node's certificate, "
                                     "a gossip keyring");
  init_->add_option("--data-dir", data_dir_, "The node's data dir (default: $NDO_DATA_DIR, else $XDG_DATA_HOME/ndo)");

  auto* token = app.add_subcommand("token", "Join tokens");
  token->require_subcommand(1);
  token_create_ = token->add_subcommand("create", "Create a join token (on the node that ran ndo init)");
  token_create_->add_option("--data-dir", token_cmd_.data_dir, "The node's data dir (default: $NDO_DATA_DIR, else $XDG_DATA_HOME/ndo)");
  token_create_->add_option("--ttl", token_cmd_.ttl, "Lifetime: 90s, 15m, 24h, 7d (at most 365d)")->capture_default_str();
  token_create_->add_option("--uses", token_cmd_.uses, "How many nodes it may enrol (0: any number until it expires)")
      ->capture_default_str();
  token_create_->add_option("--vantage", token_cmd_.vantage, "The only vantage it may enrol (default: any)");
  token_create_->add_flag("--json", token_cmd_.json, "One JSON record: token, ca_hash, expires_unix, uses, vantage");
}

int MeshCli::Dispatch() {
  if (agent_->parsed() || join_->parsed()) {
    if ((agent_->parsed() && priority_opt_->count()) || (join_->parsed() && join_priority_opt_->count()))
      agent_cmd_.priority = priority_;
    if (agent_->parsed()) agent_cmd_.seeds.clear();
    return RunAgentCommand(agent_cmd_);
  }
  if (init_->parsed()) return RunInitCommand(data_dir_);
  if (token_create_->parsed()) return RunTokenCreateCommand(token_cmd_);
  if (members_remove_->parsed()) {
    mesh::ControlRequest request(ControlCommand::kRemoveMember);
    request.member = remove_who_;
    return RunSecurityControl(data_dir_, request);
  }
  if (keys_rotate_->parsed()) return RunSecurityControl(data_dir_, ControlCommand::kRotateKeys);
  if (members_->parsed()) return RunMembersCommand(data_dir_, json_);
  if (leave_->parsed()) return RunLeaveCommand(data_dir_);
  return -1;
}

int RunAgentCommand(const AgentCommand& cmd) {
  auto level = mesh::ParseLogLevel(cmd.log_level);
  if (!level.ok()) return Fail(level.status().WithContext("--log-level"));
  mesh::SetLogLevel(*level);
  auto options = BuildNodeOptions(cmd);
  if (!options.ok()) return Fail(options.status());
  if (Status s = SecureNodeOptions(cmd, *options); !s.ok()) return Fail(s);
  Status s = mesh::RunMeshNode(*options);
  if (!s.ok()) {
    mesh::Log(mesh::LogLevel::kError, "node failed", {{"reason", s.message()}});
    return Fail(s);
  }
  return kExitOk;
}

int RunMembersCommand(const std::string& data_dir, bool json) {
  auto r = mesh::CallControl(DataDirOrDefault(data_dir), ControlCommand::kMembers, kControlTimeout);
  if (!r.ok()) return std::fprintf(stderr, "ndo: %s\n", r.status().message().c_str()), kExitError;
  if (json)
    PrintJson(*r);
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
