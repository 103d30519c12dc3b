// meshsim's scenarios of the node services (scenarios.h): what the daemon's
// RejoinPolicy and SecuritySync do on the simulated mesh, measured from
// outside (the cores' views, the services' states, the seals' keyrings).
#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "scan/permutation.h"
#include "scenario_common.h"

namespace ndo::mesh::sim {

using namespace std::chrono_literals;
using namespace detail;

namespace {

// `k` distinct nodes of [1, n) (node 0 is the operator's), drawn from `rng`.
std::vector<int> Pick(uint64_t& rng, int n, int k, const std::set<int>& exclude = {}) {
  std::vector<int> out;
  std::set<int> taken = exclude;
  taken.insert(0);
  while (static_cast<int>(out.size()) < k && static_cast<int>(taken.size()) < n) {
    int i = 1 + static_cast<int>(SplitMix64(rng) % static_cast<uint64_t>(n - 1));
    if (taken.insert(i).second) out.push_back(i);
  }
  return out;
}

// Every up node but `except` satisfies `pred`.
template <typename Pred>
bool AllUp(const SimMesh& mesh, Pred pred, int except = -1) {
  for (int i = 0; i < mesh.size(); ++i)
    if (mesh.IsUp(i) && i != except && !pred(i)) return false;
  return true;
}

double Since(const std::optional<Time>& t, Time from) { return t ? Seconds(*t - from) : std::nan(""); }

// Polls `checks` every 100 ms until `until` (or all are met): the first
// time each held.
struct Poll {
  std::vector<std::function<bool()>> checks;
  std::vector<std::optional<Time>> met;
  void Add(std::function<bool()> c) {
    checks.push_back(std::move(c));
    met.emplace_back();
  }
  void Check(Time now) {
    for (size_t k = 0; k < checks.size(); ++k)
      if (!met[k] && checks[k]()) met[k] = now;
  }
  bool All() const {
    return std::all_of(met.begin(), met.end(), [](const auto& m) { return m.has_value(); });
  }
};

void RunPolling(SimMesh& mesh, Poll& poll, Time until, const std::function<void()>& at_each = {}) {
  poll.Check(mesh.now());
  while (mesh.now() < until && !poll.All()) {
    mesh.RunUntil(std::min(until, mesh.now() + 100ms));
    if (at_each) at_each();
    poll.Check(mesh.now());
  }
}

}  // namespace

namespace {

// One isolation (IsolatedRejoin), with or without the policy.
struct Isolation {
  double isolated = 0, dead_by_all = 0, alone = 0, forgotten = 0, forgot = 0;
  double rejoined = 0, known_by_all = 0, knows_all = 0, heal = 0;  // after the heal
  bool reaped = false;
  uint64_t attempts_cut_off = 0;
};

Isolation Isolate(const ScenarioOptions& o, uint64_t seed, bool policy, Figures* traffic) {
  // isolate_s 0: until both sides have forgotten each other (the case the
  // policy is for), then 10 to 40 s more (drawn: the policy retries every
  // 30 s, and a fixed margin would always meet its retries at one phase).
  const Duration max_isolation = 6h, limit = 900s;
  ScenarioOptions so = o;
  so.seed = seed;
  so.rejoin = policy;
  SimMesh mesh(ConfigOf(so));
  mesh.Bootstrap();
  uint64_t rng = seed * 6364136223846793005ULL + 11;
  Time start = mesh.now();
  mesh.RunUntil(start + 10s);
  std::vector<int> island = Pick(rng, mesh.size(), std::clamp(o.island, 1, mesh.size() - 1));
  std::set<int> on_island(island.begin(), island.end());
  const int lone = island[0];
  const NodeId lone_id = mesh.node(lone).self().id;
  std::optional<Time> rejoined;
  Time healed = Time::max();
  mesh.OnRejoinEvent([&](int node, const RejoinEvent& e) {
    if (e.kind == RejoinEvent::Kind::kRejoined && on_island.count(node) && mesh.now() >= healed && !rejoined)
      rejoined = mesh.now();
  });
  mesh.Partition(island);
  Time cut = mesh.now();
  uint64_t attempts_before = mesh.service_stats().join_attempts;
  Poll p;
  // 0: every node off the island has declared it dead (or forgotten it);
  // 1: the island counts only itself alive; 2: nobody off the island knows
  // it any more; 3: it knows nobody off the island.
  p.Add([&] {
    return AllUp(mesh, [&](int i) {
      if (on_island.count(i)) return true;
      const Member* m = mesh.node(i).Find(lone_id);
      return m == nullptr || m->state == MemberState::kDead;
    });
  });
  p.Add([&] { return mesh.node(lone).AliveCount() == island.size(); });
  p.Add([&] { return AllUp(mesh, [&](int i) { return on_island.count(i) || !mesh.node(i).Find(lone_id); }); });
  p.Add([&] {
    for (const auto& [id, m] : mesh.node(lone).members())
      if (!on_island.count(mesh.IndexOf(id))) return false;
    return true;
  });
  if (o.isolate_s > 0) {
    RunPolling(mesh, p, cut + FromSeconds(o.isolate_s));
    mesh.RunUntil(cut + FromSeconds(o.isolate_s));
  } else {
    RunPolling(mesh, p, cut + max_isolation);
    double margin = 10 + 30 * static_cast<double>(SplitMix64(rng) >> 11) * 0x1.0p-53;
    mesh.RunUntil(mesh.now() + FromSeconds(margin));
  }
  Isolation r;
  r.isolated = Seconds(mesh.now() - cut);
  r.dead_by_all = Since(p.met[0], cut);
  r.alone = Since(p.met[1], cut);
  r.forgotten = Since(p.met[2], cut);
  r.forgot = Since(p.met[3], cut);
  r.reaped = p.met[2] && p.met[3];
  r.attempts_cut_off = mesh.service_stats().join_attempts - attempts_before;
  mesh.Heal();
  healed = mesh.now();
  Poll one;
  one.Add([&] {
    return AllUp(mesh, [&](int i) {
      const Member* m = mesh.node(i).Find(lone_id);
      return on_island.count(i) || (m && m->state == MemberState::kAlive);
    });
  });
  one.Add([&] { return mesh.node(lone).AliveCount() == static_cast<size_t>(UpCount(mesh)); });
  one.Add([&] { return OneMembership(mesh); });
  RunPolling(mesh, one, healed + limit);
  r.known_by_all = Since(one.met[0], healed);
  r.knows_all = Since(one.met[1], healed);
  r.heal = Since(one.met[2], healed);
  r.rejoined = Since(rejoined, healed);
  if (traffic) AddTraffic(*traffic, mesh, mesh.now() - start);
  return r;
}

}  // namespace

Figures IsolatedRejoin(const ScenarioOptions& o) {
  Figures f;
  f.Add("nodes", o.nodes);
  f.Add("loss", o.loss);
  f.Add("island", o.island);
  f.Add("isolations", o.repeats);
  f.Add("reap_after_s", Seconds(o.membership.reap_after));
  Figures traffic;
  for (bool policy : {true, false}) {
    std::vector<Isolation> runs;
    for (int r = 0; r < o.repeats; ++r)
      runs.push_back(Isolate(o, o.seed + static_cast<uint64_t>(r), policy, policy && r == 0 ? &traffic : nullptr));
    auto p50 = [&](double Isolation::*m) {
      std::vector<double> v;
      for (const Isolation& x : runs)
        if (!std::isnan(x.*m)) v.push_back(x.*m);
      return Percentile(v, 50);
    };
    auto worst = [&](double Isolation::*m) {
      double w = 0;
      for (const Isolation& x : runs) w = std::isnan(x.*m) || std::isnan(w) ? std::nan("") : std::max(w, x.*m);
      return w;
    };
    int reaped = 0, never = 0;
    uint64_t attempts = 0;
    for (const Isolation& x : runs) {
      reaped += x.reaped;
      never += std::isnan(x.heal);
      attempts += x.attempts_cut_off;
    }
    std::string k = policy ? "" : "no_policy_";
    if (policy) {
      // Until the heal the runs are the same with and without the policy
      // (its attempts go nowhere and draw nothing from the network).
      f.Add("isolated_p50_s", p50(&Isolation::isolated));
      f.Add("declared_dead_by_all_p50_s", p50(&Isolation::dead_by_all));
      f.Add("island_alone_after_p50_s", p50(&Isolation::alone));
      f.Add("forgotten_by_all_after_p50_s", p50(&Isolation::forgotten));
      f.Add("island_forgot_all_after_p50_s", p50(&Isolation::forgot));
      f.Add("reaped_both_ways", reaped);
    }
    f.Add(k + "heal_known_alive_by_all_p50_s", p50(&Isolation::known_by_all));
    f.Add(k + "heal_island_knows_all_alive_p50_s", p50(&Isolation::knows_all));
    f.Add(k + "heal_one_membership_p50_s", p50(&Isolation::heal));
    f.Add(k + "heal_one_membership_max_s", worst(&Isolation::heal));  // NaN if any never did
    f.Add(k + "never_one_membership", never);
    if (policy) {
      f.Add("rejoined_after_heal_p50_s", p50(&Isolation::rejoined));
      f.Add("join_attempts_while_cut_off_mean", static_cast<double>(attempts) / std::max(1, o.repeats));
    }
  }
  for (auto& v : traffic.values) f.values.push_back(v);
  return f;
}

Figures KeyRotation(const ScenarioOptions& o) {
  Figures f;
  ScenarioOptions so = o;
  so.seal = true;
  so.security_sync = true;
  SimMesh mesh(ConfigOf(so));
  const int n = mesh.size();
  f.Add("nodes", n);
  f.Add("loss", o.loss);
  mesh.Bootstrap();
  uint64_t rng = o.seed * 2862933555777941757ULL + 13;
  Time start = mesh.now();
  mesh.RunUntil(start + 15s);

  // Deaths of up nodes seen by nodes that could reach them: false ones,
  // except for the nodes cut off in step 1 (counted apart: a 3 s cut may
  // itself be long enough), the isolated and the revoked one.
  std::set<int> apart;     // cut off, isolated or revoked: not counted
  std::set<int> cut_off;   // step 1's
  int false_dead = 0, cut_off_dead = 0;
  mesh.OnObservation([&](const Observation& ob) {
    if (ob.event.kind != MemberEvent::Kind::kState || ob.event.state != MemberState::kDead) return;
    int target = mesh.IndexOf(ob.event.id);
    if (target < 0 || !mesh.IsUp(target) || apart.count(ob.observer)) return;
    if (cut_off.count(target)) ++cut_off_dead;
    else if (!apart.count(target)) ++false_dead;
  });
  auto holds = [&](int i, uint32_t key) { return mesh.security(i)->state().ScheduleOf(key) != nullptr; };
  auto seals_with = [&](int i, uint32_t key) { return mesh.seal(i)->keyring().primary == key; };
  auto opens = [&](int i, uint32_t key) { return mesh.seal(i)->keyring().Find(key) != nullptr; };
  auto rotate = [&](Result<RotationDone> done) -> uint32_t { return done.ok() ? done->key : 0; };

  // 1. A rotation pushed while some nodes are cut off for 3 s: they miss
  // the push and catch up through the periodic exchange.
  std::vector<int> cut = Pick(rng, n, std::max(1, static_cast<int>(std::lround(o.cut_fraction * n))));
  std::set<int> is_cut(cut.begin(), cut.end());
  cut_off = is_cut;
  apart = is_cut;
  uint32_t key0 = mesh.seal(0)->keyring().primary;
  mesh.Partition(cut);
  Time t1 = mesh.now();
  uint32_t key1 = rotate(mesh.RotateKeys(0));
  if (key1 == 0) {
    f.Add("rotation_failed", 1);
    return f;
  }
  SealStats seal1 = mesh.seal_stats();
  Poll p1;
  p1.Add([&] { return AllUp(mesh, [&](int i) { return is_cut.count(i) || holds(i, key1); }); });
  p1.Add([&] { return AllUp(mesh, [&](int i) { return holds(i, key1); }); });
  p1.Add([&] { return AllUp(mesh, [&](int i) { return seals_with(i, key1); }); });
  p1.Add([&] { return AllUp(mesh, [&](int i) { return !opens(i, key0); }); });
  bool healed1 = false;
  RunPolling(mesh, p1, t1 + 60s, [&] {
    if (!healed1 && mesh.now() >= t1 + 3s) {
      mesh.Heal();
      healed1 = true;
    }
  });
  if (!healed1) mesh.Heal();
  mesh.RunUntil(t1 + 60s);
  apart.clear();
  cut_off.clear();
  f.Add("rotation_cut_off_nodes", static_cast<double>(cut.size()));
  f.Add("rotation_held_by_connected_s", Since(p1.met[0], t1));
  f.Add("rotation_held_by_all_s", Since(p1.met[1], t1));
  f.Add("rotation_sealing_all_s", Since(p1.met[2], t1));
  f.Add("rotation_old_key_gone_s", Since(p1.met[3], t1));
  f.Add("rotation_seal_dropped", static_cast<double>(mesh.seal_stats().dropped() - seal1.dropped()));
  f.Add("rotation_false_dead", std::exchange(false_dead, 0));
  f.Add("rotation_cut_off_declared_dead", cut_off_dead);

  // 2. One node isolated for 60 s through a second rotation: the key it
  // holds is removed everywhere 35 s in, so no datagram of its or to it
  // opens after the heal, and only a stream brings the new key: its own
  // periodic exchange with a member it still counts alive, or, once it is
  // alone (every other member dead to it: soon in a small mesh), the sync
  // that follows its rejoin.
  int isolated = Pick(rng, n, 1)[0];
  apart.insert(isolated);
  uint64_t rejoins_before = mesh.service_stats().rejoined;
  SealStats seal2 = mesh.seal_stats();
  mesh.Partition({isolated});
  Time t2 = mesh.now();
  mesh.RunUntil(t2 + 15s);
  uint32_t key2 = rotate(mesh.RotateKeys(0));
  mesh.RunUntil(t2 + 60s);
  mesh.Heal();
  Time healed2 = mesh.now();
  Poll p2;
  p2.Add([&] { return holds(isolated, key2); });
  p2.Add([&] { return OneMembership(mesh); });
  RunPolling(mesh, p2, healed2 + 120s);
  apart.erase(isolated);
  mesh.RunUntil(std::max(mesh.now(), healed2 + 30s));
  f.Add("isolated_holds_new_key_after_heal_s", Since(p2.met[0], healed2));
  f.Add("isolated_one_membership_after_heal_s", Since(p2.met[1], healed2));
  f.Add("isolated_rejoined", static_cast<double>(mesh.service_stats().rejoined - rejoins_before));
  // Its datagrams and those to it, sealed with keys the other side lacks.
  f.Add("isolated_return_seal_dropped", static_cast<double>(mesh.seal_stats().dropped() - seal2.dropped()));
  // Verdicts it formed while it could open nothing, spread once it could.
  f.Add("isolated_return_false_dead", std::exchange(false_dead, 0));

  // 3. The revocation of one node: every other refuses it at once (the
  // push), declares it dead (its datagrams are dropped), and seals with a
  // key it never receives.
  int revoked = Pick(rng, n, 1, {isolated})[0];
  apart.insert(revoked);
  Time t3 = mesh.now();
  SealStats seal3 = mesh.seal_stats();
  auto done = mesh.RemoveMember(0, revoked);
  uint32_t key3 = done.ok() ? rotate(done->rotation) : 0;
  Poll p3;
  p3.Add([&] { return AllUp(mesh, [&](int i) { return mesh.Refuses(i, revoked); }, revoked); });
  p3.Add([&] { return mesh.AllSee(revoked, MemberState::kDead); });
  p3.Add([&] { return key3 && AllUp(mesh, [&](int i) { return seals_with(i, key3); }, revoked); });
  RunPolling(mesh, p3, t3 + 60s);
  mesh.RunUntil(t3 + 60s);
  f.Add("revocation_refused_by_all_s", Since(p3.met[0], t3));
  f.Add("revoked_dead_to_all_s", Since(p3.met[1], t3));
  f.Add("revocation_new_key_sealing_all_s", Since(p3.met[2], t3));
  f.Add("revoked_holds_new_key", key3 && holds(revoked, key3));
  // Opened but from the revoked sender, then (its old key removed) not opened.
  f.Add("revoked_datagrams_dropped", static_cast<double>(mesh.seal_stats().revoked - seal3.revoked));
  f.Add("revocation_seal_dropped", static_cast<double>(mesh.seal_stats().dropped() - seal3.dropped()));
  f.Add("revocation_false_dead", false_dead);
  AddTraffic(f, mesh, mesh.now() - start);
  return f;
}

}  // namespace ndo::mesh::sim
