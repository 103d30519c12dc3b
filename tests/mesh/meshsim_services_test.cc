// The daemon's node services on meshsim's simulated mesh: RejoinPolicy and
// SecuritySync, the production objects, driven by SimMesh as mesh_node.cc
// drives them (simulations/meshsim/sim_services.cc). Each test runs a small
// mesh deterministically and checks what the service is for, against a
// run without it where that shows the difference.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>

#include "scenarios.h"
#include "sim_mesh.h"

namespace ndo::mesh::sim {
namespace {

using namespace std::chrono_literals;

SimConfig Config(int n, uint64_t seed, double loss = 0) {
  SimConfig c;
  c.nodes = n;
  c.seed = seed;
  c.loss = loss;
  c.count_bytes = false;
  return c;
}

SimConfig Sealed(int n, uint64_t seed, double loss = 0) {
  SimConfig c = Config(n, seed, loss);
  c.seal = true;
  return c;
}

bool OneMembership(SimMesh& mesh) {
  size_t up = 0;
  for (int i = 0; i < mesh.size(); ++i) up += mesh.IsUp(i);
  for (int i = 0; i < mesh.size(); ++i)
    if (mesh.IsUp(i) && mesh.node(i).AliveCount() != up) return false;
  return true;
}

// Runs until `done` holds (checked every 100 ms) or `limit` has passed;
// returns how long it took.
std::optional<Duration> RunUntilTrue(SimMesh& mesh, Duration limit, const std::function<bool()>& done) {
  const Time from = mesh.now();
  while (!done()) {
    if (mesh.now() - from >= limit) return std::nullopt;
    mesh.RunUntil(mesh.now() + 100ms);
  }
  return mesh.now() - from;
}

// Every up node but `except` satisfies `pred`.
template <typename Pred>
bool AllUp(SimMesh& mesh, Pred pred, int except = -1) {
  for (int i = 0; i < mesh.size(); ++i)
    if (mesh.IsUp(i) && i != except && !pred(i)) return false;
  return true;
}

// Counts deaths of up nodes, except those of `apart` or seen by them.
struct FalseDeaths {
  int count = 0;
  std::vector<int> apart;
  explicit FalseDeaths(SimMesh& mesh) {
    mesh.OnObservation([this, &mesh](const Observation& ob) {
      if (ob.event.kind != MemberEvent::Kind::kState || ob.event.state != MemberState::kDead) return;
      int target = mesh.IndexOf(ob.event.id);
      auto in = [&](int i) { return std::find(apart.begin(), apart.end(), i) != apart.end(); };
      if (target >= 0 && mesh.IsUp(target) && !in(target) && !in(ob.observer)) ++count;
    });
  }
};

// --- RejoinPolicy ----------------------------------------------------------

// What the policy is for (rejoin_policy.h): after an isolation longer than
// reap_after both sides have forgotten each other, and the core alone never
// calls on a reaped member again. Node 3 of 5 is cut off until that is so.
std::optional<Duration> HealAfterMutualReaping(bool policy, uint64_t* rejoined = nullptr) {
  SimConfig c = Config(5, 31);
  c.rejoin = policy;
  c.membership.reap_after = 60s;  // the daemon's is 10 min: the same, sooner
  SimMesh mesh(c);
  mesh.Bootstrap();
  mesh.RunUntil(mesh.now() + 5s);
  mesh.Partition({3});
  const NodeId id3 = mesh.node(3).self().id;
  auto forgotten = RunUntilTrue(mesh, 600s, [&] {
    if (!mesh.node(3).members().empty()) return false;
    for (int i = 0; i < 5; ++i)
      if (i != 3 && mesh.node(i).Find(id3)) return false;
    return true;
  });
  EXPECT_TRUE(forgotten.has_value()) << "never reaped both ways";
  mesh.RunUntil(mesh.now() + 15s);
  mesh.Heal();
  auto healed = RunUntilTrue(mesh, 120s, [&] { return OneMembership(mesh); });
  if (rejoined) *rejoined = mesh.service_stats().rejoined;
  return healed;
}

TEST(MeshSimRejoin, ANodeForgottenAndForgettingRejoinsThroughThePolicyAfterTheHeal) {
  uint64_t rejoined = 0;
  auto with = HealAfterMutualReaping(true, &rejoined);
  ASSERT_TRUE(with.has_value()) << "not one membership 120 s after the heal, with the policy";
  // The policy retries every retry_max (30 s) while alone; then a push-pull.
  EXPECT_LE(*with, 35s);
  EXPECT_EQ(rejoined, 1u);
  // The core alone: never.
  EXPECT_FALSE(HealAfterMutualReaping(false).has_value());
}

TEST(MeshSimRejoin, AFirstJoinIsRetriedWithBackoffUntilTheSeedAnswers) {
  for (bool policy : {true, false}) {
    SCOPED_TRACE(policy ? "with the policy" : "the core alone");
    SimConfig c = Config(3, 32);
    c.rejoin = policy;
    SimMesh mesh(c);
    mesh.Bootstrap();
    mesh.RunUntil(mesh.now() + 3s);
    mesh.Crash(0);
    mesh.RunUntil(mesh.now() + 10s);
    int joiner = mesh.AddNode();
    Time start = mesh.now();
    mesh.Join(joiner, {0});  // the seed is down
    mesh.RunUntil(start + 8s);
    uint64_t before = mesh.service_stats().join_attempts;
    mesh.Restart(0, 1);
    auto joined = RunUntilTrue(mesh, 60s, [&] { return OneMembership(mesh); });
    ASSERT_TRUE(joined.has_value());
    Duration took = mesh.now() - start;
    if (policy) {
      // Attempts at 0, 1, 3 and 7 s while the seed is down; the one at 15 s
      // finds it. (Then, at once, one rejoin: the join completed on the
      // seed's ack, before its push-pull brought the members, and the
      // policy counts the node alone since its start, 15 s before.)
      EXPECT_EQ(before, 4u);
      EXPECT_GE(mesh.service_stats().join_attempts, before + 1 + 1);  // the seed's own, the one at 15 s
      EXPECT_LE(took, 16s);
    } else {
      // The core retries its seeds once a push-pull interval (30 s).
      EXPECT_EQ(mesh.service_stats().join_attempts, 0u);
      EXPECT_GT(took, 20s);
    }
  }
}

TEST(MeshSimRejoin, AQuietPolicyLeavesEveryFigureAsTheCoreAlone) {
  // Nobody is alone and no join waits: the policy only watches.
  ScenarioOptions o;
  o.nodes = 40;
  o.seed = 33;
  o.repeats = 3;
  Figures with = CrashDetection(o);
  o.rejoin = false;
  Figures without = CrashDetection(o);
  for (const auto& [k, v] : without.values) EXPECT_EQ(with.Get(k), v) << k;
  EXPECT_EQ(with.Get("join_attempts"), 0);
  EXPECT_EQ(with.Get("rejoins_started"), 0);
}

// --- SecuritySync -----------------------------------------------------------

uint32_t Primary(SimMesh& mesh, int i) { return mesh.seal(i)->keyring().primary; }
bool Holds(SimMesh& mesh, int i, uint32_t key) { return mesh.security(i)->state().ScheduleOf(key) != nullptr; }
bool Opens(SimMesh& mesh, int i, uint32_t key) { return mesh.seal(i)->keyring().Find(key) != nullptr; }

TEST(MeshSimSecurity, ARotationAtOneNodeReachesEveryNodesSealOnSchedule) {
  SimMesh mesh(Sealed(20, 41, 0.01));
  FalseDeaths deaths(mesh);
  mesh.Bootstrap();
  mesh.RunUntil(mesh.now() + 12s);
  ASSERT_NE(mesh.security(0), nullptr);
  const uint32_t old_key = Primary(mesh, 0);
  uint64_t dropped = mesh.seal_stats().dropped();
  auto done = mesh.RotateKeys(3);
  ASSERT_TRUE(done.ok()) << done.status().message();
  const uint32_t key = done->key;
  ASSERT_NE(key, old_key);
  // Pushed to all at once: every node holds it within a second...
  auto held = RunUntilTrue(mesh, 20s, [&] { return AllUp(mesh, [&](int i) { return Holds(mesh, i, key); }); });
  ASSERT_TRUE(held.has_value());
  EXPECT_LE(*held, 1s);
  // ...but none seals with it before the lead (every clock within 1 s)...
  mesh.RunUntil(mesh.now() + std::chrono::seconds(kRotationLead - 2) - *held);
  EXPECT_TRUE(AllUp(mesh, [&](int i) { return Primary(mesh, i) == old_key && Opens(mesh, i, key); }));
  // ...all do within it, and the old key is gone after the overlap.
  auto sealing = RunUntilTrue(mesh, 10s, [&] { return AllUp(mesh, [&](int i) { return Primary(mesh, i) == key; }); });
  ASSERT_TRUE(sealing.has_value());
  auto gone = RunUntilTrue(mesh, 15s, [&] { return AllUp(mesh, [&](int i) { return !Opens(mesh, i, old_key); }); });
  ASSERT_TRUE(gone.has_value());
  // Nothing dropped on the way, nobody declared dead, no error.
  EXPECT_EQ(mesh.seal_stats().dropped(), dropped);
  EXPECT_EQ(deaths.count, 0);
  EXPECT_EQ(mesh.service_stats().security_errors, 0u);
  EXPECT_EQ(mesh.service_stats().keyrings_installed, 3u * 20u);  // added, primary, old removed
  EXPECT_TRUE(OneMembership(mesh));
}

TEST(MeshSimSecurity, ANodeThatMissedThePushCatchesUpThroughThePeriodicExchange) {
  SimMesh mesh(Sealed(20, 42));
  mesh.Bootstrap();
  mesh.RunUntil(mesh.now() + 12s);
  mesh.Partition({7});
  auto done = mesh.RotateKeys(0);
  ASSERT_TRUE(done.ok());
  mesh.RunUntil(mesh.now() + 2s);
  EXPECT_FALSE(Holds(mesh, 7, done->key));
  EXPECT_TRUE(AllUp(mesh, [&](int i) { return Holds(mesh, i, done->key); }, 7));
  mesh.Heal();
  // Its own exchange or one of the others' with it: within an interval.
  auto caught_up = RunUntilTrue(mesh, 30s, [&] { return Holds(mesh, 7, done->key); });
  ASSERT_TRUE(caught_up.has_value());
  EXPECT_LE(*caught_up, std::chrono::duration_cast<Duration>(kSecuritySyncInterval) + 1s);
}

TEST(MeshSimSecurity, ARevokedNodeIsRefusedByAllDeclaredDeadAndNeverGetsTheNewKey) {
  SimMesh mesh(Sealed(20, 43, 0.01));
  FalseDeaths deaths(mesh);
  deaths.apart = {5};
  mesh.Bootstrap();
  mesh.RunUntil(mesh.now() + 12s);
  auto done = mesh.RemoveMember(0, 5);
  ASSERT_TRUE(done.ok());
  ASSERT_TRUE(done->rotation.ok());
  const uint32_t key = done->rotation->key;
  auto refused = RunUntilTrue(mesh, 10s, [&] { return AllUp(mesh, [&](int i) { return mesh.Refuses(i, 5); }, 5); });
  ASSERT_TRUE(refused.has_value());
  EXPECT_LE(*refused, 1s);
  auto dead = RunUntilTrue(mesh, 30s, [&] { return mesh.AllSee(5, MemberState::kDead); });
  ASSERT_TRUE(dead.has_value()) << "the revoked node is still alive to some";
  mesh.RunUntil(mesh.now() + 30s);
  EXPECT_TRUE(AllUp(mesh, [&](int i) { return Primary(mesh, i) == key; }, 5));
  EXPECT_FALSE(Holds(mesh, 5, key));
  EXPECT_FALSE(Opens(mesh, 5, key));
  EXPECT_GT(mesh.seal_stats().revoked, 0u);
  EXPECT_TRUE(AllUp(mesh, [&](int i) { return mesh.node(i).AliveCount() == 19u; }, 5));
  EXPECT_EQ(deaths.count, 0);
  EXPECT_EQ(mesh.service_stats().security_errors, 0u);
}

// A node isolated through a rotation holds only keys removed everywhere by
// the heal: no datagram opens either way, and it comes back only through a
// stream. In a mesh this small it is alone (everyone dead to it) by then,
// so its periodic exchange has nobody to go to: the policy's rejoin (a
// push-pull) and the sync it triggers bring it back, or nothing does.
std::optional<Duration> IsolatedThroughARotation(bool policy) {
  SimConfig c = Sealed(4, 44);
  c.rejoin = policy;
  SimMesh mesh(c);
  mesh.Bootstrap();
  mesh.RunUntil(mesh.now() + 12s);
  mesh.Partition({2});
  mesh.RunUntil(mesh.now() + 15s);
  auto done = mesh.RotateKeys(0);
  EXPECT_TRUE(done.ok());
  mesh.RunUntil(mesh.now() + 75s);
  EXPECT_EQ(mesh.node(2).AliveCount(), 1u) << "not alone by the heal";
  EXPECT_FALSE(Opens(mesh, 0, Primary(mesh, 2))) << "its key is still in use";
  mesh.Heal();
  return RunUntilTrue(mesh, 120s, [&] { return done.ok() && Holds(mesh, 2, done->key) && OneMembership(mesh); });
}

TEST(MeshSimSecurity, ANodeIsolatedThroughARotationCatchesUpByRejoining) {
  auto with = IsolatedThroughARotation(true);
  ASSERT_TRUE(with.has_value()) << "not back 120 s after the heal, with the policy";
  EXPECT_LE(*with, 40s);
  EXPECT_FALSE(IsolatedThroughARotation(false).has_value());
}

TEST(MeshSimSecurity, QuietSyncLeavesTheTraceAsWithoutItAndCostsLittle) {
  // The periodic exchange runs (every node, every 10 s), changes nothing,
  // and the membership's figures are those without SecuritySync.
  ScenarioOptions o;
  o.nodes = 40;
  o.seed = 45;
  o.repeats = 3;
  o.seal = true;
  Figures with = CrashDetection(o);
  o.security_sync = false;
  Figures without = CrashDetection(o);
  for (const char* k : {"detect_all_p50_s", "detect_all_max_s", "detect_observer_p50_s", "false_dead",
                        "false_suspect", "datagram_bytes_per_s_per_node", "stream_bytes_per_s_per_node",
                        "seal_opened", "seal_dropped"})
    EXPECT_EQ(with.Get(k), without.Get(k)) << k;
  EXPECT_GT(with.Get("security_requests"), 40 * 6);  // ~70 s of exchanges
  EXPECT_EQ(with.Get("security_errors"), 0);
  EXPECT_EQ(with.Get("keyrings_installed"), 0);
  EXPECT_GT(with.Get("security_bytes_per_s_per_node"), 0);
  EXPECT_LT(with.Get("security_bytes_per_s_per_node"), 100);  // one ~300-byte state each way per 10 s
  EXPECT_TRUE(std::isnan(without.Get("security_bytes_per_s_per_node")));
}

TEST(MeshSimSecurity, TheKeysScenarioGivesTheSameFiguresForTheSameSeed) {
  ScenarioOptions o;
  o.nodes = 20;
  o.seed = 46;
  o.count_bytes = false;
  Figures a = KeyRotation(o), b = KeyRotation(o);
  ASSERT_EQ(a.values.size(), b.values.size());
  for (size_t k = 0; k < a.values.size(); ++k) {
    EXPECT_EQ(a.values[k].first, b.values[k].first);
    if (!std::isnan(a.values[k].second)) EXPECT_EQ(a.values[k].second, b.values[k].second) << a.values[k].first;
  }
  // And what it measures holds at this N.
  EXPECT_LE(a.Get("rotation_held_by_connected_s"), 1);
  EXPECT_LE(a.Get("rotation_sealing_all_s"), kRotationLead + 1);
  EXPECT_EQ(a.Get("rotation_seal_dropped"), 0);
  EXPECT_LE(a.Get("revocation_refused_by_all_s"), 1);
  EXPECT_EQ(a.Get("revoked_holds_new_key"), 0);
  EXPECT_FALSE(std::isnan(a.Get("isolated_one_membership_after_heal_s")));
  o.seed = 47;
  Figures c = KeyRotation(o);
  bool differs = false;
  for (size_t k = 0; k < a.values.size() && k < c.values.size(); ++k)
    differs |= a.values[k].second != c.values[k].second && !std::isnan(a.values[k].second);
  EXPECT_TRUE(differs);
}

}  // namespace
}  // namespace ndo::mesh::sim
