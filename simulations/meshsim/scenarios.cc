#include "scenarios.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_map>

#include "scan/permutation.h"
#include "scenario_common.h"

namespace ndo::mesh::sim {

using namespace std::chrono_literals;
using namespace detail;

namespace detail {

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }
Duration FromSeconds(double s) { return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s)); }

SimConfig ConfigOf(const ScenarioOptions& o) {
  SimConfig c;
  c.nodes = o.nodes;
  c.seed = o.seed;
  c.loss = o.loss;
  c.count_bytes = o.count_bytes;
  c.seal = o.seal;
  c.seal_clock = o.seal_clock;
  c.rejoin = o.rejoin;
  c.security_sync = o.security_sync;
  c.membership = o.membership;
  return c;
}

// How many of `n` observers make 99.99% (all of them below 10,000).
int Quorum(int n) { return static_cast<int>(std::ceil(0.9999 * n - 1e-9)); }

int UpCount(const SimMesh& mesh) {
  int n = 0;
  for (int i = 0; i < mesh.size(); ++i) n += mesh.IsUp(i);
  return n;
}

void AddTraffic(Figures& f, const SimMesh& mesh, Duration elapsed) {
  double secs = std::max(Seconds(elapsed), 1e-9);
  std::vector<double> per_node;
  double total_dgram = 0, total_stream = 0, total_security = 0;
  for (const auto& t : mesh.traffic()) {
    per_node.push_back(static_cast<double>(t.datagram_bytes + t.stream_bytes + t.security_bytes) / secs);
    total_dgram += static_cast<double>(t.datagram_bytes);
    total_stream += static_cast<double>(t.stream_bytes);
    total_security += static_cast<double>(t.security_bytes);
  }
  double n = static_cast<double>(mesh.size());
  const bool security = mesh.config().seal && mesh.config().security_sync;
  f.Add("bytes_per_s_per_node_mean", (total_dgram + total_stream + total_security) / secs / n);
  f.Add("bytes_per_s_per_node_max", *std::max_element(per_node.begin(), per_node.end()));
  f.Add("datagram_bytes_per_s_per_node", total_dgram / secs / n);
  f.Add("stream_bytes_per_s_per_node", total_stream / secs / n);
  // SecuritySync's states (in the two totals above, not in stream_bytes).
  if (security) f.Add("security_bytes_per_s_per_node", total_security / secs / n);
  const ServiceStats& sv = mesh.service_stats();
  if (mesh.config().rejoin) {
    f.Add("join_attempts", static_cast<double>(sv.join_attempts));
    f.Add("rejoins_started", static_cast<double>(sv.rejoins));
    f.Add("rejoins_done", static_cast<double>(sv.rejoined));
  }
  if (security) {
    f.Add("security_requests", static_cast<double>(sv.security_requests));
    f.Add("security_failed", static_cast<double>(sv.security_failed));
    f.Add("security_refused", static_cast<double>(sv.security_refused));
    f.Add("security_errors", static_cast<double>(sv.security_errors));  // 0 in a correct run
    f.Add("keyrings_installed", static_cast<double>(sv.keyrings_installed));
    f.Add("push_pulls_refused", static_cast<double>(sv.push_pulls_refused));
  }
  if (mesh.config().seal) {
    const SealStats& s = mesh.seal_stats();
    f.Add("seal_dropped", static_cast<double>(s.dropped()));
    f.Add("seal_dropped_too_old", static_cast<double>(s.too_old));
    f.Add("seal_dropped_replayed", static_cast<double>(s.replayed));
    f.Add("seal_dropped_off_clock", static_cast<double>(s.off_clock));
    f.Add("seal_dropped_other", static_cast<double>(s.refused));
    f.Add("seal_sender_mismatch", static_cast<double>(s.sender_mismatch));
    f.Add("seal_decode_errors", static_cast<double>(s.decode_errors));
    f.Add("seal_errors", static_cast<double>(s.seal_errors));
    uint64_t encode_errors = 0;
    for (const auto& t : mesh.traffic()) encode_errors += t.encode_errors;
    f.Add("encode_errors", static_cast<double>(encode_errors));  // not sent, as by the daemon
    f.Add("seal_opened", static_cast<double>(s.opened));
    // Sealed datagrams per second per node: the unsealed bytes of the same
    // trace are datagram_bytes_per_s_per_node minus kSealOverhead times this.
    f.Add("datagrams_per_s_per_node", static_cast<double>(s.sealed) / secs / n);
    f.Add("seal_windows", static_cast<double>(s.windows));
    f.Add("seal_dropped_revoked", static_cast<double>(s.revoked));  // meant: not in seal_dropped
  }
}

}  // namespace detail

double Figures::Get(const std::string& name) const {
  for (const auto& [k, v] : values)
    if (k == name) return v;
  return std::nan("");
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

Figures CrashDetection(const ScenarioOptions& o) {
  Figures f;
  SimMesh mesh(ConfigOf(o));
  mesh.Bootstrap();
  uint64_t rng = o.seed * 7919 + 1;

  std::set<int> crashed;
  int victim = -1;
  Time crashed_at{};
  int seen = 0, need = 0;
  Time first_dead{};
  std::optional<double> full;
  std::vector<double> per_observer, until_all, dissemination, first_suspect, first_declared;
  bool suspected = false;
  int false_dead = 0, false_suspect = 0;
  mesh.OnObservation([&](const Observation& ob) {
    if (ob.event.kind != MemberEvent::Kind::kState) return;
    int target = mesh.IndexOf(ob.event.id);
    if (ob.event.state == MemberState::kDead) {
      if (!crashed.count(target)) {
        ++false_dead;
        return;
      }
      if (target != victim) return;
      double t = Seconds(ob.event.at - crashed_at);
      per_observer.push_back(t);
      if (seen == 0) {
        first_dead = ob.event.at;
        first_declared.push_back(t);
      }
      ++seen;
      if (!full && seen >= need) {
        full = t;
        dissemination.push_back(Seconds(ob.event.at - first_dead));
      }
      if (until_all.empty() && victim >= 0) f.curve.emplace_back("crash_marked_dead", t, static_cast<double>(seen) / need);
    } else if (ob.event.state == MemberState::kSuspect && !crashed.count(target)) {
      ++false_suspect;
    } else if (ob.event.state == MemberState::kSuspect && target == victim && !suspected) {
      suspected = true;
      first_suspect.push_back(Seconds(ob.event.at - crashed_at));
    }
  });

  Time start = mesh.now();
  mesh.RunUntil(mesh.now() + 10s);
  int missed = 0;
  for (int r = 0; r < o.repeats; ++r) {
    do victim = static_cast<int>(SplitMix64(rng) % static_cast<uint64_t>(mesh.size()));
    while (crashed.count(victim));
    crashed.insert(victim);
    mesh.Crash(victim);
    crashed_at = mesh.now();
    seen = 0;
    suspected = false;
    full.reset();
    need = Quorum(UpCount(mesh));
    mesh.RunUntil(crashed_at + 20s);
    while (!full && mesh.now() < crashed_at + 120s) mesh.RunUntil(mesh.now() + 1s);
    if (full) until_all.push_back(*full);
    else ++missed;
  }
  f.Add("nodes", o.nodes);
  f.Add("loss", o.loss);
  f.Add("crashes", o.repeats);
  f.Add("detect_all_p50_s", Percentile(until_all, 50));
  f.Add("detect_all_p99_s", Percentile(until_all, 99));
  f.Add("detect_all_max_s", Percentile(until_all, 100));
  f.Add("detect_observer_p50_s", Percentile(per_observer, 50));
  f.Add("detect_observer_p99_s", Percentile(per_observer, 99));
  f.Add("first_suspicion_p50_s", Percentile(first_suspect, 50));
  f.Add("first_declared_dead_p50_s", Percentile(first_declared, 50));
  f.Add("dead_dissemination_p50_s", Percentile(dissemination, 50));
  f.Add("dead_dissemination_max_s", Percentile(dissemination, 100));
  f.Add("never_detected_by_all", missed);
  f.Add("false_dead", false_dead);
  f.Add("false_suspect", false_suspect);
  AddTraffic(f, mesh, mesh.now() - start);
  return f;
}

Figures JoinDissemination(const ScenarioOptions& o) {
  Figures f;
  SimMesh mesh(ConfigOf(o));
  mesh.Bootstrap();
  uint64_t rng = o.seed * 104729 + 3;
  int newcomer = -1, seen = 0, need = 0;
  Time joined_at{};
  std::optional<double> full;
  std::vector<double> times;
  std::set<std::pair<int, int>> counted;  // (observer, newcomer)
  mesh.OnObservation([&](const Observation& ob) {
    if (ob.event.kind != MemberEvent::Kind::kState || ob.event.state != MemberState::kAlive) return;
    if (mesh.IndexOf(ob.event.id) != newcomer || !counted.insert({ob.observer, newcomer}).second) return;
    ++seen;
    double t = Seconds(ob.event.at - joined_at);
    if (times.empty()) f.curve.emplace_back("join_known_alive", t, static_cast<double>(seen) / need);
    if (!full && seen >= need) full = t;
  });
  Time start = mesh.now();
  mesh.RunUntil(mesh.now() + 5s);
  int missed = 0;
  for (int r = 0; r < o.repeats; ++r) {
    int seed_node = static_cast<int>(SplitMix64(rng) % static_cast<uint64_t>(mesh.size()));
    need = Quorum(UpCount(mesh));
    newcomer = mesh.AddNode();
    seen = 0;
    full.reset();
    joined_at = mesh.now();
    mesh.Join(newcomer, {seed_node});
    while (!full && mesh.now() < joined_at + 60s) mesh.RunUntil(mesh.now() + 100ms);
    if (full) times.push_back(*full);
    else ++missed;
    mesh.RunUntil(joined_at + 15s);
  }
  f.Add("nodes", o.nodes);
  f.Add("loss", o.loss);
  f.Add("joins", o.repeats);
  f.Add("join_known_p50_s", Percentile(times, 50));
  f.Add("join_known_max_s", Percentile(times, 100));
  f.Add("join_never_known_by_all", missed);
  AddTraffic(f, mesh, mesh.now() - start);
  return f;
}

Figures FalsePositives(const ScenarioOptions& o) {
  Figures f;
  SimMesh mesh(ConfigOf(o));
  mesh.Bootstrap();
  uint64_t rng = o.seed * 15485863 + 5;
  int false_dead = 0, false_suspect = 0;
  mesh.OnObservation([&](const Observation& ob) {
    if (ob.event.kind != MemberEvent::Kind::kState) return;
    if (ob.event.state == MemberState::kDead) ++false_dead;  // nobody crashes here
    if (ob.event.state == MemberState::kSuspect) ++false_suspect;
  });
  // Stalls start at a rate that keeps `stall_fraction` of the nodes stalled.
  const double start_rate = o.stall_fraction / o.stall_s;
  Time start = mesh.now(), end = start + FromSeconds(o.duration_s);
  int stalls = 0;
  while (mesh.now() < end) {
    for (int i = 0; i < mesh.size(); ++i) {
      if (mesh.IsStalled(i)) continue;
      double u = static_cast<double>(SplitMix64(rng) >> 11) * 0x1.0p-53;
      if (u < start_rate) {
        mesh.Stall(i, mesh.now() + FromSeconds(o.stall_s));
        ++stalls;
      }
    }
    mesh.RunUntil(mesh.now() + 1s);
  }
  f.Add("nodes", o.nodes);
  f.Add("loss", o.loss);
  f.Add("simulated_s", o.duration_s);
  f.Add("stalls", stalls);
  f.Add("false_dead", false_dead);
  f.Add("false_suspect", false_suspect);
  AddTraffic(f, mesh, mesh.now() - start);
  return f;
}

namespace detail {

bool OneMembership(SimMesh& mesh) {
  size_t up = static_cast<size_t>(UpCount(mesh));
  for (int i = 0; i < mesh.size(); ++i)
    if (mesh.IsUp(i) && mesh.node(i).AliveCount() != up) return false;
  return true;
}

bool OneCoordinator(SimMesh& mesh) {
  std::optional<std::pair<std::optional<NodeId>, uint64_t>> first;
  for (int i = 0; i < mesh.size(); ++i) {
    if (!mesh.IsUp(i)) continue;
    std::pair<std::optional<NodeId>, uint64_t> c{mesh.node(i).Coordinator(), mesh.node(i).epoch()};
    if (!c.first) return false;
    if (!first) first = c;
    else if (*first != c) return false;
  }
  return true;
}

}  // namespace detail

Figures PartitionHeal(const ScenarioOptions& o) {
  Figures f;
  SimMesh mesh(ConfigOf(o));
  mesh.Bootstrap();
  Time start = mesh.now();
  mesh.RunUntil(mesh.now() + 10s);
  std::vector<int> half;
  for (int i = 0; i < mesh.size() / 2; ++i) half.push_back(i);
  mesh.Partition(half);
  mesh.RunUntil(mesh.now() + 60s);
  bool split = mesh.node(0).AliveCount() == half.size() &&
               mesh.node(mesh.size() - 1).AliveCount() == static_cast<size_t>(mesh.size()) - half.size();
  mesh.Heal();
  Time healed = mesh.now();
  std::optional<double> membership, coordinator;
  while ((!membership || !coordinator) && mesh.now() < healed + 300s) {
    mesh.RunUntil(mesh.now() + 100ms);
    if (!membership && OneMembership(mesh)) membership = Seconds(mesh.now() - healed);
    if (membership && !coordinator && OneCoordinator(mesh)) coordinator = Seconds(mesh.now() - healed);
  }
  f.Add("nodes", o.nodes);
  f.Add("loss", o.loss);
  f.Add("split_seen", split);
  f.Add("heal_one_membership_s", membership.value_or(std::nan("")));
  f.Add("heal_one_coordinator_s", coordinator.value_or(std::nan("")));
  AddTraffic(f, mesh, mesh.now() - start);
  return f;
}

Figures ColdJoin(const ScenarioOptions& o) {
  Figures f;
  SimMesh mesh(ConfigOf(o));
  Time start = mesh.now();
  mesh.JoinAllThrough(0);
  std::optional<double> all;
  while (!all && mesh.now() < start + 300s) {
    mesh.RunUntil(mesh.now() + 100ms);
    if (OneMembership(mesh)) all = Seconds(mesh.now() - start);
  }
  std::optional<double> coordinator;
  while (all && !coordinator && mesh.now() < start + 300s) {
    if (OneCoordinator(mesh)) coordinator = Seconds(mesh.now() - start);
    else mesh.RunUntil(mesh.now() + 100ms);
  }
  f.Add("nodes", o.nodes);
  f.Add("loss", o.loss);
  f.Add("cold_join_all_know_all_s", all.value_or(std::nan("")));
  f.Add("cold_join_one_coordinator_s", coordinator.value_or(std::nan("")));
  AddTraffic(f, mesh, mesh.now() - start);
  return f;
}

}  // namespace ndo::mesh::sim
