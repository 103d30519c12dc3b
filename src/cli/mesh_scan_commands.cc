#include "cli/mesh_scan_commands.h"
#include "cli/scan_vantages.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "cli/command_table.h"
#include "cli/exit_codes.h"
#include "cli/pool_source.h"
#include "cli/store_access.h"
#include "mesh/api/control.h"
#include "mesh/api/policy.h"
#include "mesh/api/scans.h"
#include "store/store.h"

namespace ndo {
namespace {

using mesh::ControlCommand;
using mesh::ControlRequest;

constexpr auto kControlTimeout = std::chrono::seconds(10);


int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A scan's state as this data dir holds it, read beside the running agent
// (by id or unique hex prefix), and what the members' scan policies refuse
// of each pool.
struct Snapshot {
  mesh::ScanState state;
  std::vector<mesh::PoolPolicy> policies;  // one per pool
};
Result<Snapshot> ReadState(const std::string& data_dir, const std::string& scan) {
  auto store = OpenStoreToRead(data_dir);
  if (!store.ok()) return store.status();
  auto state = mesh::FindScanState(**store, scan);
  if (!state.ok()) return state.status();
  auto policies = ScanPolicies(**store, *state);
  return Snapshot{std::move(*state), std::move(policies)};
}

std::string FormatRate(double per_s) {
  char buf[32];
  if (per_s >= 1e6) std::snprintf(buf, sizeof buf, "%.1fM", per_s / 1e6);
  else if (per_s >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", per_s / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", per_s);
  return buf;
}

std::string FormatDuration(double s) {
  if (s < 0 || s > 1e8) return "-";
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, int(s) / 60 % 60);
  return buf;
}

std::string Bar(double fraction, int width) {
  int full = static_cast<int>(std::clamp(fraction, 0.0, 1.0) * width + 0.5);
  return "[" + std::string(full, '#') + std::string(width - full, '.') + "]";
}

// Names of the members, when the agent answers (ids otherwise).
std::map<mesh::NodeId, std::string> MemberNames(const std::string& data_dir) {
  std::map<mesh::NodeId, std::string> names;
  auto r = mesh::CallControl(DataDirOrDefault(data_dir), ControlCommand::kMembers, std::chrono::milliseconds(2000));
  if (!r.ok() || !r->error.empty()) return names;
  names[r->self.id] = r->self.name;
  for (const auto& m : r->members) names[m.id] = m.name;
  return names;
}

struct PoolLine {
  std::string vantage;
  mesh::PoolCounts counts;
  std::set<mesh::NodeId> working;
  double probes_done = 0;
};

std::vector<PoolLine> Lines(const Snapshot& snap, int64_t now_ms) {
  const mesh::ScanState& s = snap.state;
  std::vector<PoolLine> out;
  double per_shard = static_cast<double>(s.definition.spec.ProbeCount()) / s.definition.spec.shard_count;
  for (size_t v = 0; v < s.pools.size(); ++v) {
    PoolLine line;
    line.vantage = s.definition.vantages[v];
    line.counts = mesh::CountPool(s.pools[v], now_ms, snap.policies[v].refused.shards);
    for (const auto& shard : s.pools[v])
      if (!shard.done.done && !shard.lease.holder.empty() && shard.lease.expires_ms > now_ms)
        line.working.insert(shard.lease.holder);
    line.probes_done = per_shard * line.counts.done;
    out.push_back(std::move(line));
  }
  return out;
}

// Every shard done, or refused by policy.
bool AllDone(const Snapshot& s) { return ScanComplete(s.state, s.policies); }

// A pool's probes/s and ETA (-1: unknown). `previous` (the same scan a
// moment ago, --watch) gives the current probes/s; otherwise the average
// since the scan began.
struct PoolPace {
  double rate = 0, eta = -1;
};
PoolPace Pace(const Snapshot& snap, const std::vector<PoolLine>& lines, size_t i,
              const std::vector<PoolLine>* previous, double seconds_between, double elapsed) {
  const PoolLine& l = lines[i];
  PoolPace p;
  p.rate = l.probes_done / elapsed;
  if (previous && i < previous->size() && seconds_between > 0)
    p.rate = std::max(0.0, (l.probes_done - (*previous)[i].probes_done) / seconds_between);
  const mesh::ScanState& s = snap.state;
  double remaining = static_cast<double>(s.definition.spec.ProbeCount()) - l.probes_done -
                     static_cast<double>(snap.policies[i].refused.probes);
  p.eta = l.counts.pending + l.counts.leased == 0 ? 0 : p.rate > 0 ? remaining / p.rate : -1;
  return p;
}

std::vector<std::string> WorkingNames(const PoolLine& l, const std::map<mesh::NodeId, std::string>& names) {
  std::vector<std::string> out;
  for (const auto& id : l.working) {
    auto it = names.find(id);
    out.push_back(it != names.end() ? it->second : id.Hex().substr(0, 8));
  }
  return out;
}

// One status block.
void PrintStatus(const Snapshot& snap, const std::map<mesh::NodeId, std::string>& names,
                 const std::vector<PoolLine>* previous, double seconds_between, bool bars) {
  const mesh::ScanState& s = snap.state;
  int64_t now = WallMs();
  double elapsed = std::max(0.001, (now - s.definition.created_ms) / 1000.0);
  std::printf("scan %s  %s  %s  (%s probes per pool, %u shards each, %s elapsed)\n", ScanIdToHex(s.id).c_str(),
              std::string(mesh::ScanControlName(s.control.value)).c_str(), AllDone(snap) ? "complete" : "in progress",
              U128ToString(s.definition.spec.ProbeCount()).c_str(), s.definition.spec.shard_count,
              FormatDuration(elapsed).c_str());
  auto lines = Lines(snap, now);
  std::printf("  %-12s %6s %6s %7s %7s %7s %9s %7s  %s\n", "vantage", "done", "leased", "pending", "refused", "found",
              "probes/s", "eta", "nodes working");
  for (size_t i = 0; i < lines.size(); ++i) {
    const PoolLine& l = lines[i];
    PoolPace pace = Pace(snap, lines, i, previous, seconds_between, elapsed);
    std::string nodes;
    for (const auto& name : WorkingNames(l, names)) nodes += (nodes.empty() ? "" : ",") + name;
    std::printf("  %-12s %6u %6u %7u %7u %7llu %9s %7s  %s\n", l.vantage.c_str(), l.counts.done, l.counts.leased,
                l.counts.pending, l.counts.refused, static_cast<unsigned long long>(l.counts.results),
                FormatRate(pace.rate).c_str(), FormatDuration(pace.eta).c_str(), nodes.empty() ? "-" : nodes.c_str());
    const mesh::PoolPolicy& policy = snap.policies[i];
    if (policy.refused.probes > 0)
      std::printf("  %-12s refused by policy: %s probes, %s (no node of %s may scan them)\n", "",
                  U128ToString(policy.refused.probes).c_str(), mesh::FormatAddressSet(policy.refused.targets, 8).c_str(),
                  l.vantage.c_str());
    for (const auto& who : policy.without_policy)
      std::printf("  %-12s %s: no scan policy, takes no distributed work\n", "", who.c_str());
    if (bars) {
      uint32_t total = l.counts.done + l.counts.leased + l.counts.pending;
      std::printf("  %-12s %s %3.0f%%\n", "", Bar(total ? double(l.counts.done) / total : 1, 50).c_str(),
                  total ? 100.0 * l.counts.done / total : 100.0);
    }
  }
}

// --format json: the status as one line (pool_source.h's scan record, with
// elapsed_s, and per pool probes_per_s, eta_s (null: unknown) and the nodes
// working on it).
void PrintStatusJson(const Snapshot& snap, const std::map<mesh::NodeId, std::string>& names,
                     const std::vector<PoolLine>* previous, double seconds_between) {
  const mesh::ScanState& s = snap.state;
  int64_t now = WallMs();
  double elapsed = std::max(0.001, (now - s.definition.created_ms) / 1000.0);
  auto lines = Lines(snap, now);
  std::vector<std::string> pools;
  for (size_t i = 0; i < lines.size(); ++i) {
    PoolPace pace = Pace(snap, lines, i, previous, seconds_between, elapsed);
    JsonObject pool = PoolCountsJson(lines[i].vantage, lines[i].counts);
    pool.Num("probes_per_s", pace.rate, 1);
    if (pace.eta < 0) pool.Null("eta_s");
    else pool.Num("eta_s", pace.eta, 1);
    pool.Raw("nodes_working", JsonStringArray(WorkingNames(lines[i], names)));
    pools.push_back(AddPolicyJson(pool, snap.policies[i]).str());
  }
  std::string line = MeshScanJson(s, snap.policies).Num("elapsed_s", elapsed).Raw("pools", JsonArray(pools)).str();
  std::printf("%s\n", line.c_str());
}

int Status_(const std::string& data_dir, const std::string& scan, bool watch, double interval_s,
            const std::string& format = "table") {
  auto names = MemberNames(data_dir);
  std::vector<PoolLine> previous;
  auto previous_at = std::chrono::steady_clock::now();
  bool first = true;
  bool json = format == "json";
  bool tty = isatty(STDOUT_FILENO);
  while (true) {
    auto s = ReadState(data_dir, scan);
    if (!s.ok()) return Fail(s.status());
    auto now = std::chrono::steady_clock::now();
    double between = std::chrono::duration<double>(now - previous_at).count();
    if (json) {
      PrintStatusJson(*s, names, first ? nullptr : &previous, between);  // --watch: one line per redraw
    } else {
      if (watch && tty && !first) std::printf("\033[H\033[J");
      PrintStatus(*s, names, first ? nullptr : &previous, between, watch);
    }
    if (std::fflush(stdout) != 0) return Fail(Status::IoError("error writing the status"));
    if (!watch || AllDone(*s) || s->state.control.value == mesh::ScanControl::kStopped) return kExitOk;
    previous = Lines(*s, WallMs());
    previous_at = now;
    first = false;
    std::this_thread::sleep_for(std::chrono::duration<double>(interval_s));
  }
}

int Control(const std::string& data_dir, const std::string& scan, mesh::ScanControl action) {
  ControlRequest req(ControlCommand::kScanControl);
  req.scan = scan;
  req.scan_action = static_cast<uint8_t>(action);
  auto r = mesh::CallControl(DataDirOrDefault(data_dir), req, kControlTimeout);
  if (!r.ok()) return Fail(r.status());
  if (!r->error.empty()) return Fail(Status::InvalidArgument(r->error));
  std::printf("%s\n", r->message.c_str());
  return kExitOk;
}

std::vector<std::string> SplitCommas(const std::vector<std::string>& items) {
  std::vector<std::string> out;
  for (const auto& item : items) {
    std::stringstream ss(item);
    std::string part;
    while (std::getline(ss, part, ','))
      if (!part.empty()) out.push_back(part);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace

bool AgentRunning(const std::string& data_dir) {
  return mesh::ControlSocketAnswers(mesh::ControlSocketPath(DataDirOrDefault(data_dir)));
}

int SubmitMeshScan(const MeshScanSubmit& submit, ScanSpec spec) {
  mesh::ScanDefinition def;
  def.spec = std::move(spec);
  def.vantages = SplitCommas(submit.vantages);
  // The members this node knows: their vantages (when none is given) and
  // their scan policies, which cut the targets into regions.
  auto members = mesh::CallControl(DataDirOrDefault(submit.data_dir), ControlCommand::kMembers, kControlTimeout);
  if (!members.ok()) return Fail(members.status());
  if (!members->error.empty()) return Fail(Status::Unavailable(members->error));
  if (def.vantages.empty()) def.vantages = DefaultScanVantages(members->self, members->members);
  if (def.vantages.empty())
    return Fail(Status::InvalidArgument("no vantage: this node and its members name none; give --vantage NAME"));
  // Shards of 10 to 30 s at a node's rate, within what one scan state holds
  // over all its pools.
  if (!submit.shards_given)
    def.spec.shard_count = std::min<uint32_t>(mesh::MeshShardCount(def.spec.ProbeCount(), def.spec.probe.rate),
                                              mesh::kMaxScanShards / std::max<size_t>(1, def.vantages.size()));
  // Regions (mesh/work/scan_regions.h): a shard then lies inside or outside
  // each member's policy as a whole. Their shares may add a few shards
  // (at least one each), so the budget leaves room for them.
  std::vector<IntervalSet> policies{members->self.allow};
  for (const auto& m : members->members) policies.push_back(m.allow);
  uint32_t budget = std::min<uint32_t>(
      def.spec.shard_count, mesh::kMaxScanShards / std::max<size_t>(1, def.vantages.size()) - mesh::kMaxScanRegions);
  auto regions = mesh::PlanRegions(def.spec.targets.addresses, def.spec.ports.size(), policies,
                                   std::max<uint32_t>(1, budget));
  if (!regions.ok()) return Fail(regions.status());
  if (!regions->empty()) {
    def.regions = std::move(*regions);
    def.spec.shard_count = 0;
    for (const auto& r : def.regions) def.spec.shard_count += r.shards;
  }
  auto bytes = mesh::EncodeScanDefinition(def);
  if (!bytes.ok()) return Fail(bytes.status());
  ControlRequest req(ControlCommand::kSubmitScan);
  req.scan_definition = std::move(*bytes);
  auto r = mesh::CallControl(DataDirOrDefault(submit.data_dir), req, kControlTimeout);
  if (!r.ok()) return Fail(r.status());
  if (!r->error.empty()) return Fail(Status::InvalidArgument(r->error));
  std::fprintf(stderr, "ndo: %s\n", r->message.c_str());
  std::printf("%s\n", r->scan_id.c_str());
  if (!submit.wait) {
    std::fprintf(stderr, "ndo: follow it with: ndo scan status %s --watch; then: ndo view compare %s\n",
                 r->scan_id.c_str(), r->scan_id.c_str());
    return kExitOk;
  }
  return Status_(submit.data_dir, r->scan_id, /*watch=*/true, 1.0);
}

CommandRun SetupMeshScanSubcommands(CLI::App& scan) {
  struct State {
    std::string data_dir, scan, format = "table";
    bool watch = false;
    double interval = 1.0;
  };
  auto st = std::make_shared<State>();
  auto add_common = [st](CLI::App* c) {
    c->add_option("scan", st->scan, "Scan id (or a unique prefix of it)")->required();
    AddDataDirOption(*c, st->data_dir, "The node's data dir");
  };
  auto* status = scan.add_subcommand("status", "Per pool: shards done, leased, pending; nodes working; probes/s; ETA");
  add_common(status);
  status->add_flag("--watch", st->watch, "Redraw every --interval seconds, with progress bars, until the scan ends");
  status->add_option("--interval", st->interval, "Seconds between redraws")->check(CLI::Range(0.1, 3600.0));
  AddFormatOption(*status, st->format, {"table", "json"},
                  "json: one object per line, a line per redraw with --watch");
  auto* pause = scan.add_subcommand("pause", "Pause the scan on every node (within about a second)");
  add_common(pause);
  auto* resume = scan.add_subcommand("resume", "Resume a paused scan");
  add_common(resume);
  auto* stop = scan.add_subcommand("stop", "Stop the scan for good (results so far are kept)");
  add_common(stop);
  return [st, status, pause, resume](const std::vector<std::string>&) {
    if (status->parsed()) return Status_(st->data_dir, st->scan, st->watch, st->interval, st->format);
    if (pause->parsed()) return Control(st->data_dir, st->scan, mesh::ScanControl::kPaused);
    if (resume->parsed()) return Control(st->data_dir, st->scan, mesh::ScanControl::kRunning);
    return Control(st->data_dir, st->scan, mesh::ScanControl::kStopped);
  };
}

}  // namespace ndo
