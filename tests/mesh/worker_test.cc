// The work core alone: the coordinator's grant and renewal rules over
// hand-made scan states, the worker's state machine with a fake clock, and a
// small simulated mesh (one coordinator, four workers in two vantages, a
// crash) run to the end. No sockets; only the pure parts of pool_state.
#include "mesh/work/worker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <queue>
#include <set>

#include "scan/permutation.h"

namespace ndo::mesh {
namespace {

constexpr int64_t kS = 1000;  // ms

NodeId N(uint64_t n) { return {n, n * 7}; }

ScanId Id(uint8_t n) {
  ScanId id{};
  id[0] = n;
  return id;
}

// A scan state as NewScanState makes it, by hand: every shard pending.
ScanState Scan(uint8_t n, std::vector<std::string> vantages, uint32_t shards, int64_t created_ms = 0) {
  ScanState s;
  s.id = Id(n);
  s.definition.spec.shard_count = shards;
  std::sort(vantages.begin(), vantages.end());
  s.definition.vantages = vantages;
  s.definition.created_ms = created_ms;
  s.pools.assign(vantages.size(), std::vector<ShardState>(shards));
  return s;
}

void Add(WorkStates& states, ScanState s) { states[s.id] = std::move(s); }

ShardState& At(WorkStates& states, uint8_t scan, const std::string& vantage, uint32_t shard) {
  ScanState& s = states.at(Id(scan));
  return s.pools[*VantageIndex(s, vantage)][shard];
}

const IsAlive kAllAlive = [](const NodeId&) { return true; };

IsAlive AllBut(std::set<NodeId> dead) {
  return [dead](const NodeId& id) { return !dead.count(id); };
}

// ---- Coordinator ------------------------------------------------------------

TEST(GrantLease, FreeShardsGoLowestFirstAndNeverToTwoLiveWorkers) {
  WorkStates states;
  Add(states, Scan(1, {"dmz"}, 4));
  WorkConfig cfg;
  std::vector<uint32_t> got;
  std::map<uint32_t, NodeId> holder;
  for (uint64_t w : {1, 2, 1, 3, 4}) {
    auto g = GrantLease(states, N(w), "dmz", 5, 1000, kAllAlive, cfg);
    if (!g) continue;
    EXPECT_FALSE(holder.count(g->ref.shard)) << "shard " << g->ref.shard << " granted twice";
    holder[g->ref.shard] = N(w);
    got.push_back(g->ref.shard);
    EXPECT_EQ(g->ref.scan, Id(1));
    EXPECT_EQ(g->ref.vantage, "dmz");
    EXPECT_EQ(g->lease, (ShardLease{N(w), 5, 1, 1000 + 30 * kS}));
    EXPECT_EQ(At(states, 1, "dmz", g->ref.shard).lease, g->lease);  // written into the state
  }
  EXPECT_EQ(got, (std::vector<uint32_t>{0, 1, 2, 3}));  // worker 4 found nothing left
  EXPECT_FALSE(GrantLease(states, N(5), "dmz", 5, 2000, kAllAlive, cfg));
}

TEST(GrantLease, ExpiredLeasesAndDeadHoldersAreLeasedAgain) {
  WorkStates states;
  Add(states, Scan(1, {"dmz"}, 3));
  WorkConfig cfg;
  ASSERT_EQ(GrantLease(states, N(1), "dmz", 1, 0, kAllAlive, cfg)->ref.shard, 0u);
  ASSERT_EQ(GrantLease(states, N(2), "dmz", 1, 0, kAllAlive, cfg)->ref.shard, 1u);
  // Node 2 is declared dead long before its lease runs out: shard 1 is free
  // at once, and lower than the never-leased shard 2.
  auto g = GrantLease(states, N(3), "dmz", 1, 5 * kS, AllBut({N(2)}), cfg);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->ref.shard, 1u);
  EXPECT_EQ(g->lease.counter, 2u);  // outranks the lease it replaces
  // Node 1's lease expires at 30 s (expiry instant included).
  auto h = GrantLease(states, N(4), "dmz", 1, 30 * kS - 1, AllBut({N(2)}), cfg);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->ref.shard, 2u);
  auto i = GrantLease(states, N(5), "dmz", 1, 30 * kS, AllBut({N(2)}), cfg);
  ASSERT_TRUE(i);
  EXPECT_EQ(i->ref.shard, 0u);
  EXPECT_EQ(i->lease.holder, N(5));
}

TEST(GrantLease, ANewCoordinatorAdoptsItsPredecessorsLeasesOfAliveHolders) {
  WorkStates states;
  Add(states, Scan(1, {"dmz"}, 3));
  WorkConfig cfg;
  // Epoch 1 granted shards 0 and 1; our copy shows both expired (their
  // renewals with the old coordinator never reached us), node 2 is dead.
  ASSERT_EQ(GrantLease(states, N(1), "dmz", 1, 0, kAllAlive, cfg)->ref.shard, 0u);
  ASSERT_EQ(GrantLease(states, N(2), "dmz", 1, 0, kAllAlive, cfg)->ref.shard, 1u);
  int64_t now = 40 * kS, adopt_until = now + 15 * kS;
  // Epoch 2, within the adoption window: node 1's lease is taken (it still
  // scans, and renews with us soon); dead node 2's shard and the
  // never-granted one are free.
  auto g = GrantLease(states, N(3), "dmz", 2, now, AllBut({N(2)}), cfg, adopt_until);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->ref.shard, 1u);
  auto h = GrantLease(states, N(4), "dmz", 2, now, AllBut({N(2)}), cfg, adopt_until);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->ref.shard, 2u);
  EXPECT_FALSE(GrantLease(states, N(5), "dmz", 2, now, AllBut({N(2)}), cfg, adopt_until));
  // Node 1 renews with the new coordinator: its lease is epoch 2's now.
  ASSERT_TRUE(RenewLease(states, N(1), Id(1), "dmz", 0, 2, now + kS, cfg).ok());
  EXPECT_EQ(At(states, 1, "dmz", 0).lease.epoch, 2u);
  // Had it not renewed, its expired lease is free once the window is over.
  WorkStates silent;
  Add(silent, Scan(1, {"dmz"}, 1));
  ASSERT_TRUE(GrantLease(silent, N(1), "dmz", 1, 0, kAllAlive, cfg));
  EXPECT_FALSE(GrantLease(silent, N(3), "dmz", 2, now, kAllAlive, cfg, adopt_until));
  auto late = GrantLease(silent, N(3), "dmz", 2, adopt_until, kAllAlive, cfg, adopt_until);
  ASSERT_TRUE(late);
  EXPECT_EQ(late->lease.holder, N(3));
}

TEST(GrantLease, AWorkerGetsItsOwnExpiredShardOnlyWhenNothingElseIsFree) {
  WorkStates states;
  Add(states, Scan(1, {"dmz"}, 2));
  WorkConfig cfg;
  GrantLease(states, N(1), "dmz", 1, 0, kAllAlive, cfg);  // shard 0
  auto g = GrantLease(states, N(1), "dmz", 1, 31 * kS, kAllAlive, cfg);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->ref.shard, 1u);  // not its own expired shard 0
  auto h = GrantLease(states, N(2), "dmz", 1, 31 * kS, kAllAlive, cfg);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->ref.shard, 0u);  // others take it

  WorkStates one;
  Add(one, Scan(1, {"dmz"}, 1));
  GrantLease(one, N(1), "dmz", 1, 0, kAllAlive, cfg);
  auto again = GrantLease(one, N(1), "dmz", 1, 31 * kS, kAllAlive, cfg);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->ref.shard, 0u);
  EXPECT_EQ(again->lease.counter, 2u);
}

TEST(GrantLease, ScansGoInCreationOrderAndOnlyRunningOnesWithTheVantage) {
  WorkStates states;
  Add(states, Scan(1, {"dmz"}, 1, /*created*/ 200));
  Add(states, Scan(2, {"dmz", "wifi"}, 1, 100));
  Add(states, Scan(3, {"wifi"}, 1, 50));  // older, but not ours
  Add(states, Scan(4, {"dmz"}, 1, 100));  // as old as 2: the id decides
  WorkConfig cfg;
  cfg.max_leases_per_worker = 10;
  std::vector<uint8_t> order;
  while (auto g = GrantLease(states, N(1), "dmz", 1, 0, kAllAlive, cfg)) order.push_back(g->ref.scan[0]);
  EXPECT_EQ(order, (std::vector<uint8_t>{2, 4, 1}));

  WorkStates paused;
  Add(paused, Scan(1, {"dmz"}, 2));
  paused[Id(1)].control.value = ScanControl::kPaused;
  EXPECT_FALSE(GrantLease(paused, N(1), "dmz", 1, 0, kAllAlive, cfg));
  paused[Id(1)].control.value = ScanControl::kStopped;
  EXPECT_FALSE(GrantLease(paused, N(1), "dmz", 1, 0, kAllAlive, cfg));
  paused[Id(1)].control.value = ScanControl::kRunning;
  EXPECT_TRUE(GrantLease(paused, N(1), "dmz", 1, 0, kAllAlive, cfg));
  EXPECT_FALSE(GrantLease(paused, N(1), "lab", 1, 0, kAllAlive, cfg));
}

TEST(GrantLease, DoneShardsAreNeverLeasedAgain) {
  WorkStates states;
  Add(states, Scan(1, {"dmz"}, 3));
  WorkConfig cfg;
  At(states, 1, "dmz", 0).done = {true, 3, {}, {N(1), N(2)}};
  At(states, 1, "dmz", 1).lease = {N(1), 1, 4, 10};  // long expired, holder gone, but done
  At(states, 1, "dmz", 1).done = {true, 0, {}, {N(1), N(2)}};
  auto g = GrantLease(states, N(3), "dmz", 1, 100 * kS, AllBut({N(1)}), cfg);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->ref.shard, 2u);
  EXPECT_FALSE(GrantLease(states, N(4), "dmz", 1, 100 * kS, AllBut({N(1)}), cfg));
  auto late = GrantLease(states, N(4), "dmz", 1, 1000 * kS, kAllAlive, cfg);  // all expired
  ASSERT_TRUE(late);
  EXPECT_EQ(late->ref.shard, 2u);
}

TEST(GrantLease, MaxLeasesPerWorkerCapsUnexpiredLeases) {
  WorkStates states;
  Add(states, Scan(1, {"dmz"}, 10));
  WorkConfig cfg;  // default: 2
  EXPECT_TRUE(GrantLease(states, N(1), "dmz", 1, 0, kAllAlive, cfg));
  EXPECT_TRUE(GrantLease(states, N(1), "dmz", 1, 0, kAllAlive, cfg));
  EXPECT_FALSE(GrantLease(states, N(1), "dmz", 1, 0, kAllAlive, cfg));
  EXPECT_TRUE(GrantLease(states, N(2), "dmz", 1, 0, kAllAlive, cfg));  // per worker
  At(states, 1, "dmz", 0).done = {true, 1, {}, {N(1), N(9)}};         // done: no longer counts
  EXPECT_TRUE(GrantLease(states, N(1), "dmz", 1, 0, kAllAlive, cfg));
  EXPECT_FALSE(GrantLease(states, N(1), "dmz", 1, 0, kAllAlive, cfg));
  EXPECT_TRUE(GrantLease(states, N(1), "dmz", 1, 30 * kS, kAllAlive, cfg));  // all expired

  cfg.max_leases_per_worker = 3;
  WorkStates three;
  Add(three, Scan(1, {"dmz"}, 10));
  int n = 0;
  while (GrantLease(three, N(1), "dmz", 1, 0, kAllAlive, cfg)) ++n;
  EXPECT_EQ(n, 3);
}

TEST(RenewLease, ExtendsTheHoldersLeaseAndRefusesEveryoneElse) {
  WorkStates states;
  Add(states, Scan(1, {"dmz"}, 3));
  WorkConfig cfg;
  GrantLease(states, N(1), "dmz", 1, 0, kAllAlive, cfg);
  auto r = RenewLease(states, N(1), Id(1), "dmz", 0, 1, 10 * kS, cfg);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, (ShardLease{N(1), 1, 2, 40 * kS}));
  EXPECT_EQ(At(states, 1, "dmz", 0).lease, *r);
  // Expired but taken by nobody: still the holder's.
  auto late = RenewLease(states, N(1), Id(1), "dmz", 0, 1, 50 * kS, cfg);
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(late->counter, 3u);

  auto refused = [&](const NodeId& w, uint32_t shard) {
    auto x = RenewLease(states, w, Id(1), "dmz", shard, 1, 60 * kS, cfg);
    EXPECT_FALSE(x.ok());
    EXPECT_EQ(x.status().code(), Status::Code::kUnavailable);
    return x.status().message();
  };
  EXPECT_EQ(refused(N(2), 0), "leased to another node");
  EXPECT_EQ(refused(N(2), 1), "leased to another node");  // never leased
  At(states, 1, "dmz", 0).done = {true, 1, {}, {N(1), N(2)}};
  EXPECT_EQ(refused(N(1), 0), "shard done");
  GrantLease(states, N(1), "dmz", 1, 60 * kS, kAllAlive, cfg);  // shard 1
  states[Id(1)].control.value = ScanControl::kPaused;
  EXPECT_EQ(refused(N(1), 1), "scan paused");
  states[Id(1)].control.value = ScanControl::kStopped;
  EXPECT_EQ(refused(N(1), 1), "scan stopped");

  EXPECT_EQ(RenewLease(states, N(1), Id(7), "dmz", 0, 1, 0, cfg).status().code(), Status::Code::kNotFound);
  EXPECT_EQ(RenewLease(states, N(1), Id(1), "wifi", 0, 1, 0, cfg).status().code(), Status::Code::kNotFound);
  EXPECT_EQ(RenewLease(states, N(1), Id(1), "dmz", 3, 1, 0, cfg).status().code(), Status::Code::kNotFound);
}

// Coordinator A (epoch 1) grants; B takes over with epoch 2 from the
// replicated state, adopts the running lease at its holder's next renewal,
// and its grants win the join against anything A still does.
TEST(RenewLease, ANewCoordinatorAdoptsRunningLeasesAndItsGrantsWinTheJoin) {
  WorkConfig cfg;
  WorkStates a;
  Add(a, Scan(1, {"dmz"}, 2));
  GrantLease(a, N(1), "dmz", 1, 0, kAllAlive, cfg);  // shard 0: (1, 1)
  ASSERT_EQ(RenewLease(a, N(1), Id(1), "dmz", 0, 1, 10 * kS, cfg)->counter, 2u);
  ASSERT_EQ(RenewLease(a, N(1), Id(1), "dmz", 0, 1, 20 * kS, cfg)->counter, 3u);

  WorkStates b = a;  // B's copy, as replicated
  // Node 1 is alive with an unexpired lease: B grants the next shard instead.
  auto other = GrantLease(b, N(2), "dmz", 2, 21 * kS, kAllAlive, cfg);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->ref.shard, 1u);
  EXPECT_EQ(other->lease.counter, 1u);  // a new epoch starts the counter again
  auto adopted = RenewLease(b, N(1), Id(1), "dmz", 0, 2, 25 * kS, cfg);
  ASSERT_TRUE(adopted.ok());
  EXPECT_EQ(*adopted, (ShardLease{N(1), 2, 1, 55 * kS}));
  EXPECT_EQ(JoinLease(At(a, 1, "dmz", 0).lease, *adopted), *adopted);

  // A, cut off, sees node 1's lease expire and leases shard 0 to node 3:
  // (1, 4) loses to B's (2, 1).
  auto stale = GrantLease(a, N(3), "dmz", 1, 50 * kS, kAllAlive, cfg);
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->lease, (ShardLease{N(3), 1, 4, 80 * kS}));
  EXPECT_EQ(JoinLease(stale->lease, *adopted).holder, N(1));
  EXPECT_EQ(JoinLease(*adopted, stale->lease).holder, N(1));

  // Node 1 dies; B leases the shard to node 4, which wins over A's grant too.
  auto fresh = GrantLease(b, N(4), "dmz", 2, 56 * kS, AllBut({N(1)}), cfg);
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->ref.shard, 0u);
  EXPECT_EQ(fresh->lease, (ShardLease{N(4), 2, 2, 86 * kS}));
  EXPECT_EQ(JoinLease(stale->lease, fresh->lease), fresh->lease);

  // Once A has merged B's state it grants nothing over a newer lease, and
  // refuses to renew one, even expired.
  At(a, 1, "dmz", 0).lease = JoinLease(At(a, 1, "dmz", 0).lease, fresh->lease);
  At(a, 1, "dmz", 1).lease = JoinLease(At(a, 1, "dmz", 1).lease, At(b, 1, "dmz", 1).lease);
  EXPECT_FALSE(GrantLease(a, N(5), "dmz", 1, 500 * kS, kAllAlive, cfg));
  auto r = RenewLease(a, N(4), Id(1), "dmz", 0, 1, 60 * kS, cfg);
  EXPECT_EQ(r.status().message(), "leased by a newer coordinator");
}

TEST(MeshShardCount, ShardsTakeAboutTwentySecondsAtANodesRate) {
  EXPECT_EQ(MeshShardCount(0, 0), 1u);
  EXPECT_EQ(MeshShardCount(1, 0), 1u);
  EXPECT_EQ(MeshShardCount(400000, 0), 1u);  // 20 s at the assumed 20,000/s
  EXPECT_EQ(MeshShardCount(400001, 0), 2u);
  EXPECT_EQ(MeshShardCount(1000000, 1000), 50u);
  EXPECT_EQ(MeshShardCount(u128{1} << 48, 0), kMaxPoolShards);
  EXPECT_EQ(MeshShardCount(~u128{0}, 0.001), kMaxPoolShards);
  EXPECT_EQ(MeshShardCount(1000, 1e300), 1u);
  EXPECT_EQ(MeshShardCount(1000, -5), 1u);
  for (double rate : {10.0, 300.0, 5000.0, 0.0, 100000.0}) {
    double r = rate > 0 ? rate : 20000;
    for (u128 probes : {u128{50000}, u128{1} << 24, u128{1} << 32, u128{3} << 33}) {
      uint32_t n = MeshShardCount(probes, rate);
      double seconds = static_cast<double>(probes) / n / r;
      if (n > 1 && n < kMaxPoolShards) {
        EXPECT_GE(seconds, 10) << "rate " << rate << " shards " << n;
        EXPECT_LE(seconds, 20) << "rate " << rate << " shards " << n;
      }
    }
  }
}

// ---- Worker -----------------------------------------------------------------

using Kind = WorkAction::Kind;

std::vector<Kind> Kinds(const std::vector<WorkAction>& actions) {
  std::vector<Kind> k;
  for (const auto& a : actions) k.push_back(a.kind);
  return k;
}

class WorkerTest : public ::testing::Test {
 protected:
  WorkerTest() {
    Add(states, Scan(1, {"dmz", "wifi"}, 4));
    view.coordinator = kCoord;
    view.coordinator_address = "10.0.0.9:7946";
    view.in_contact = true;
    view.states = &states;
    view.alive_members = {N(1), N(2), N(3), kCoord};
  }

  Worker Make(WorkConfig c) { return Worker(N(1), "dmz", c, 7); }

  // The coordinator's answer to a request, applied as the driver would.
  LeaseGrant Grant(int64_t now) {
    auto g = GrantLease(states, N(1), "dmz", 1, now, kAllAlive, cfg);
    EXPECT_TRUE(g);
    return *g;
  }

  std::vector<WorkAction> TickAt(Worker& w, int64_t now) {
    w.Tick(now, view);
    return w.TakeActions();
  }

  const NodeId kCoord = N(9);
  WorkStates states;
  WorkerView view;
  WorkConfig cfg;
};

TEST_F(WorkerTest, AsksOnlyWhenInContactWithACoordinatorAndWorkToGet) {
  Worker w = Make(cfg);
  WorkStates none;
  view.states = &none;
  EXPECT_TRUE(TickAt(w, 0).empty());
  view.states = &states;
  view.in_contact = false;
  EXPECT_TRUE(TickAt(w, 0).empty());
  view.in_contact = true;
  view.coordinator.reset();
  EXPECT_TRUE(TickAt(w, 0).empty());
  view.coordinator = kCoord;
  auto a = TickAt(w, 0);
  ASSERT_EQ(Kinds(a), (std::vector<Kind>{Kind::kRequestLease}));
  EXPECT_EQ(a[0].to, kCoord);
  EXPECT_EQ(a[0].to_address, "10.0.0.9:7946");
  EXPECT_TRUE(w.request_outstanding());
  EXPECT_TRUE(TickAt(w, 100).empty());  // one request at a time
  w.OnGrantRefused("no work", 200);

  // Nothing free in our pool: every shard done or leased to a live node.
  for (uint32_t k = 0; k < 4; ++k) At(states, 1, "dmz", k).lease = {N(k % 2 ? 2 : 3), 1, 1, 100 * kS};
  At(states, 1, "dmz", 3).done = {true, 0, {}, {N(2), N(3)}};
  EXPECT_TRUE(TickAt(w, 5 * kS).empty());
  At(states, 1, "dmz", 2).lease.expires_ms = 5 * kS;  // expired
  EXPECT_EQ(Kinds(TickAt(w, 5 * kS)), (std::vector<Kind>{Kind::kRequestLease}));
  w.OnGrantRefused("no work", 5 * kS);
  At(states, 1, "dmz", 2).lease.expires_ms = 100 * kS;
  EXPECT_TRUE(TickAt(w, 7 * kS).empty());
  view.alive_members = {N(1), N(2), kCoord};  // node 3 died: its shards are free
  EXPECT_EQ(Kinds(TickAt(w, 7 * kS)), (std::vector<Kind>{Kind::kRequestLease}));
  w.OnGrantRefused("no work", 7 * kS);
  states[Id(1)].control.value = ScanControl::kPaused;
  EXPECT_TRUE(TickAt(w, 9 * kS).empty());
}

TEST_F(WorkerTest, AnUnansweredRequestIsGivenUpAndARefusalBacksOff) {
  Worker w = Make(cfg);
  EXPECT_EQ(Kinds(TickAt(w, 0)), (std::vector<Kind>{Kind::kRequestLease}));
  EXPECT_EQ(w.NextWakeup(), 1 * kS);  // the idle poll; the timeout is later
  EXPECT_TRUE(TickAt(w, 4999).empty());
  EXPECT_EQ(Kinds(TickAt(w, 5000)), (std::vector<Kind>{Kind::kRequestLease}));
  w.OnGrantRefused("no work", 5100);
  EXPECT_FALSE(w.request_outstanding());
  EXPECT_EQ(w.NextWakeup(), 6100);
  EXPECT_TRUE(TickAt(w, 6099).empty());
  EXPECT_EQ(Kinds(TickAt(w, 6100)), (std::vector<Kind>{Kind::kRequestLease}));
}

TEST_F(WorkerTest, AGrantStartsTheScanAndRenewalsComeEveryThirdOfTheLease) {
  Worker w = Make(cfg);
  TickAt(w, 0);
  LeaseGrant g = Grant(1000);
  w.OnGrant(g, 1000);
  auto a = w.TakeActions();
  ASSERT_EQ(Kinds(a), (std::vector<Kind>{Kind::kStartScan}));
  EXPECT_EQ(a[0].ref, (ShardRef{Id(1), "dmz", 0}));
  EXPECT_EQ(a[0].lease, g.lease);
  EXPECT_EQ(w.Scanning(), (std::vector<ShardRef>{g.ref}));
  EXPECT_EQ(w.NextWakeup(), 2000);
  for (int64_t t = 2000; t < 11000; t += 1000) EXPECT_TRUE(TickAt(w, t).empty()) << t;  // parallel_shards 1
  a = TickAt(w, 11000);
  ASSERT_EQ(Kinds(a), (std::vector<Kind>{Kind::kRenew}));
  EXPECT_EQ(a[0].ref, g.ref);
  EXPECT_EQ(a[0].to, kCoord);
  EXPECT_EQ(a[0].lease, g.lease);
  auto r = RenewLease(states, N(1), Id(1), "dmz", 0, 1, 11100, cfg);
  ASSERT_TRUE(r.ok());
  w.OnRenewed(g.ref, *r, 11100);
  EXPECT_TRUE(TickAt(w, 20999).empty());
  a = TickAt(w, 21000);
  ASSERT_EQ(Kinds(a), (std::vector<Kind>{Kind::kRenew}));
  EXPECT_EQ(a[0].lease, *r);  // the renewed lease

  WorkConfig fast = cfg;
  fast.lease_duration = std::chrono::seconds(9);
  EXPECT_EQ(fast.RenewEvery(), std::chrono::seconds(3));
  fast.renew_every = std::chrono::seconds(2);
  EXPECT_EQ(fast.RenewEvery(), std::chrono::seconds(2));
}

TEST_F(WorkerTest, ANewCoordinatorHearsOfHeldLeasesAtOnceAndAnUnheardRenewalIsTriedSoon) {
  Worker w = Make(cfg);
  TickAt(w, 0);
  LeaseGrant g = Grant(1000);
  w.OnGrant(g, 1000);
  w.TakeActions();
  EXPECT_EQ(w.HeldLeases(), (std::vector<std::pair<ShardRef, ShardLease>>{{g.ref, g.lease}}));
  EXPECT_TRUE(TickAt(w, 5000).empty()) << "renewals come every renew_every";
  // The coordinator changes: the renewal goes to the new one at once, so
  // that it learns of the lease (it grants nothing new until it has).
  view.coordinator = N(2);
  view.coordinator_address = "10.0.0.2:7946";
  auto a = TickAt(w, 5100);
  ASSERT_EQ(Kinds(a), (std::vector<Kind>{Kind::kRenew}));
  EXPECT_EQ(a[0].to, N(2));
  EXPECT_EQ(a[0].lease, g.lease);
  EXPECT_TRUE(TickAt(w, 5200).empty()) << "once per coordinator change";
  // It is not the coordinator yet (its view lags ours): tried again after
  // idle_poll, not renew_every.
  w.OnRenewDeferred(g.ref, 5300);
  EXPECT_EQ(w.NextWakeup(), 6300);
  EXPECT_TRUE(TickAt(w, 6299).empty());
  EXPECT_EQ(Kinds(TickAt(w, 6300)), (std::vector<Kind>{Kind::kRenew}));
  EXPECT_EQ(w.held_count(), 1u) << "a deferred renewal stops nothing";
}

TEST_F(WorkerTest, ARefusedRenewalStopsTheScan) {
  Worker w = Make(cfg);
  TickAt(w, 0);
  LeaseGrant g = Grant(0);
  w.OnGrant(g, 0);
  w.TakeActions();
  w.OnRenewRefused(g.ref, "leased to another node", 10 * kS);
  auto a = w.TakeActions();
  ASSERT_EQ(Kinds(a), (std::vector<Kind>{Kind::kStopScan}));
  EXPECT_EQ(a[0].ref, g.ref);
  EXPECT_EQ(a[0].reason, "leased to another node");
  EXPECT_EQ(w.held_count(), 0u);
  // The engine's late report changes nothing: no replica, no done.
  w.OnShardScanned(g.ref, 5, Digest{}, 11 * kS);
  for (const auto& x : TickAt(w, 11 * kS)) EXPECT_EQ(x.kind, Kind::kRequestLease);
}

TEST_F(WorkerTest, TheScanStopsWhenTheStateSaysTheShardIsNoLongerOurs) {
  struct Case {
    std::string reason;
    std::function<void(WorkStates&)> change;
  };
  std::vector<Case> cases = {
      {"scan paused", [](WorkStates& s) { s[Id(1)].control.value = ScanControl::kPaused; }},
      {"scan stopped", [](WorkStates& s) { s[Id(1)].control.value = ScanControl::kStopped; }},
      {"shard done", [](WorkStates& s) { At(s, 1, "dmz", 0).done = {true, 2, {}, {N(2), N(3)}}; }},
      {"leased to another node", [](WorkStates& s) { At(s, 1, "dmz", 0).lease = {N(2), 1, 2, 70 * kS}; }},
      {"leased to another node", [](WorkStates& s) { At(s, 1, "dmz", 0).lease = {N(2), 2, 1, 70 * kS}; }},
  };
  for (const auto& c : cases) {
    WorkStates saved = states;
    Worker w = Make(cfg);
    TickAt(w, 0);
    w.OnGrant(Grant(0), 0);
    w.TakeActions();
    EXPECT_TRUE(TickAt(w, 1000).empty());
    c.change(states);
    auto a = TickAt(w, 2000);
    ASSERT_FALSE(a.empty()) << c.reason;
    EXPECT_EQ(a[0].kind, Kind::kStopScan);
    EXPECT_EQ(a[0].reason, c.reason);
    EXPECT_EQ(w.scanning_count(), 0u);
    states = saved;
  }
}

TEST_F(WorkerTest, OlderLeasesInTheStateDoNotStopTheScanAndNewerOwnOnesAreAdopted) {
  Worker w = Make(cfg);
  At(states, 1, "dmz", 0).lease = {N(2), 1, 5, 10};  // node 2's, expired
  WorkStates before = states;                         // the worker's copy lags behind the grant
  view.states = &before;
  TickAt(w, 100);
  LeaseGrant g = Grant(100);
  ASSERT_EQ(g.ref.shard, 0u);
  ASSERT_EQ(g.lease.counter, 6u);
  w.OnGrant(g, 100);
  w.TakeActions();
  EXPECT_TRUE(TickAt(w, 200).empty());  // node 2's (1, 5) is older than our (1, 6)
  // Our lease renewed by a new coordinator, seen in the state before the answer.
  At(before, 1, "dmz", 0).lease = {N(1), 2, 1, 90 * kS};
  EXPECT_TRUE(TickAt(w, 300).empty());
  auto a = TickAt(w, 10100);
  ASSERT_EQ(Kinds(a), (std::vector<Kind>{Kind::kRenew}));
  EXPECT_EQ(a[0].lease, (ShardLease{N(1), 2, 1, 90 * kS}));
}

TEST_F(WorkerTest, AScannedShardIsReplicatedThenDeclaredDone) {
  Worker w = Make(cfg);
  TickAt(w, 0);
  LeaseGrant g = Grant(0);
  w.OnGrant(g, 0);
  w.TakeActions();
  Digest digest{};
  digest[0] = 0xab;
  w.OnShardScanned(g.ref, 7, digest, 3 * kS);
  EXPECT_EQ(w.NextWakeup(), 3 * kS);
  auto a = TickAt(w, 3 * kS);
  // The replica goes to another alive member; a lease is free again for scanning.
  ASSERT_EQ(Kinds(a), (std::vector<Kind>{Kind::kReplicate, Kind::kRequestLease}));
  NodeId failed = a[0].to;
  EXPECT_TRUE(failed == N(2) || failed == N(3) || failed == kCoord) << failed.Hex();
  w.OnGrant(Grant(3 * kS), 3 * kS);
  EXPECT_EQ(Kinds(w.TakeActions()), (std::vector<Kind>{Kind::kStartScan}));
  EXPECT_TRUE(TickAt(w, 4 * kS).empty());  // two leases held: the cap

  w.OnReplicaFailed(g.ref, failed, 4 * kS);
  EXPECT_TRUE(TickAt(w, 6 * kS - 1).empty());  // backoff
  a = TickAt(w, 6 * kS);
  ASSERT_EQ(Kinds(a), (std::vector<Kind>{Kind::kReplicate}));
  NodeId replica = a[0].to;
  EXPECT_TRUE(replica != failed && replica != N(1)) << replica.Hex();  // another one
  // Renewals go on until done; a refusal now does not throw the bundle away.
  a = TickAt(w, 10 * kS);
  ASSERT_EQ(Kinds(a), (std::vector<Kind>{Kind::kRenew}));
  EXPECT_EQ(a[0].ref, g.ref);
  w.OnRenewRefused(g.ref, "leased to another node", 10 * kS);
  EXPECT_TRUE(w.TakeActions().empty());
  EXPECT_EQ(w.held_count(), 2u);

  w.OnReplicaStored(g.ref, replica, 11 * kS);
  a = w.TakeActions();
  ASSERT_EQ(Kinds(a), (std::vector<Kind>{Kind::kMarkDone}));
  EXPECT_EQ(a[0].ref, g.ref);
  EXPECT_TRUE(a[0].done.done);
  EXPECT_EQ(a[0].done.results, 7u);
  EXPECT_EQ(a[0].done.digest, digest);
  std::vector<NodeId> holders = {N(1), replica};
  std::sort(holders.begin(), holders.end());
  EXPECT_EQ(a[0].done.holders, holders);
  EXPECT_EQ(w.held_count(), 1u);
}

// A mesh of one cannot have a second copy: its shards are done with its own
// (or no scan on a lone node would ever finish). A node that is alone
// because the others are away, not gone, waits for one of them instead.
TEST_F(WorkerTest, ASoleMemberDeclaresDoneWithItsOwnCopyAndOthersWait) {
  for (bool sole : {true, false}) {
    SCOPED_TRACE(sole ? "mesh of one" : "others known, none alive");
    WorkStates fresh;
    Add(fresh, Scan(1, {"dmz", "wifi"}, 4));
    view.states = &fresh;
    view.coordinator = N(1);  // itself
    view.alive_members = {N(1)};
    view.sole_member = sole;
    Worker w = Make(cfg);
    TickAt(w, 0);
    auto g = GrantLease(fresh, N(1), "dmz", 1, 0, kAllAlive, cfg);
    ASSERT_TRUE(g);
    w.OnGrant(*g, 0);
    w.TakeActions();
    Digest digest{};
    digest[3] = 7;
    w.OnShardScanned(g->ref, 2, digest, kS);
    auto a = TickAt(w, kS);
    std::vector<WorkAction> done;
    for (const auto& x : a)
      if (x.kind == Kind::kMarkDone) done.push_back(x);
    if (sole) {
      ASSERT_EQ(done.size(), 1u);
      EXPECT_EQ(done[0].ref, g->ref);
      EXPECT_EQ(done[0].done.holders, std::vector<NodeId>{N(1)});
      EXPECT_EQ(done[0].done.digest, digest);
      EXPECT_EQ(done[0].done.results, 2u);
    } else {
      EXPECT_TRUE(done.empty());
      for (const auto& x : a) EXPECT_NE(x.kind, Kind::kReplicate);
    }
  }
}

TEST_F(WorkerTest, ReplicaTargetsAreOtherAliveMembersChosenDeterministically) {
  view.coordinator = N(1);  // we coordinate ourselves: someone else keeps the copy
  view.alive_members = {N(1), N(2), N(3), N(4), N(5)};
  auto targets = [&](uint64_t seed) {
    Worker w(N(1), "dmz", cfg, seed);
    TickAt(w, 0);
    w.OnGrant(GrantLease(states, N(1), "dmz", 1, 0, kAllAlive, cfg).value(), 0);
    w.TakeActions();
    ShardRef ref = w.Scanning()[0];
    w.OnShardScanned(ref, 1, Digest{}, 0);
    std::vector<NodeId> to;
    for (int i = 0; i < 6; ++i) {
      for (const auto& a : TickAt(w, i * 10 * kS))
        if (a.kind == Kind::kReplicate) to.push_back(a.to);
      w.OnReplicaFailed(ref, to.back(), i * 10 * kS);
    }
    At(states, 1, "dmz", ref.shard).lease = {};  // reset for the next run
    return to;
  };
  std::vector<NodeId> first = targets(3);
  ASSERT_EQ(first.size(), 6u);
  EXPECT_EQ(first, targets(3));
  // Each failed target is skipped until all four others failed once.
  EXPECT_EQ(std::set<NodeId>(first.begin(), first.begin() + 4), (std::set<NodeId>{N(2), N(3), N(4), N(5)}));
  for (const auto& id : first) EXPECT_NE(id, N(1));
}

TEST_F(WorkerTest, TheDeadMansSwitchStopsScansAfterTheConfiguredTimeAndReleasesOnContact) {
  cfg.dead_man_after = std::chrono::seconds(12);
  cfg.parallel_shards = 2;
  Worker w = Make(cfg);
  TickAt(w, 0);
  w.OnGrant(Grant(0), 0);
  w.Tick(0, view);
  w.OnGrant(Grant(0), 0);
  EXPECT_EQ(Kinds(w.TakeActions()), (std::vector<Kind>{Kind::kStartScan, Kind::kRequestLease, Kind::kStartScan}));
  EXPECT_EQ(w.scanning_count(), 2u);

  // A short loss of contact is forgiven once contact has held for
  // contact_settle (5 s), and the count starts again.
  view.in_contact = false;
  EXPECT_TRUE(TickAt(w, 1 * kS).empty());
  view.in_contact = true;
  TickAt(w, 2 * kS);
  TickAt(w, 7 * kS);
  view.in_contact = false;
  TickAt(w, 8 * kS);
  // A flicker of contact (2 s, less than contact_settle) changes nothing:
  // the count from 8 s goes on.
  view.in_contact = true;
  TickAt(w, 10 * kS);
  TickAt(w, 11 * kS);
  view.in_contact = false;
  for (int64_t t = 12 * kS; t < 20 * kS; t += kS) {
    for (const auto& a : TickAt(w, t)) EXPECT_EQ(a.kind, Kind::kRenew);  // renewals go on; no request
    EXPECT_FALSE(w.dead_man_engaged());
  }
  EXPECT_EQ(w.NextWakeup(), 20 * kS);
  auto a = TickAt(w, 20 * kS);
  ASSERT_EQ(Kinds(a), (std::vector<Kind>{Kind::kStopScan, Kind::kStopScan}));
  EXPECT_EQ(a[0].reason, "dead man's switch");
  EXPECT_TRUE(w.dead_man_engaged());
  EXPECT_EQ(w.held_count(), 0u);

  // Cut off, it starts nothing: not even a grant that was on its way.
  WorkStates more;
  Add(more, Scan(2, {"dmz"}, 4));
  view.states = &more;
  EXPECT_TRUE(TickAt(w, 60 * kS).empty());
  w.OnGrant(GrantLease(more, N(1), "dmz", 1, 60 * kS, kAllAlive, cfg).value(), 60 * kS);
  EXPECT_TRUE(w.TakeActions().empty());
  // Back in contact: released once it has held 5 s, not before.
  view.in_contact = true;
  EXPECT_TRUE(TickAt(w, 61 * kS).empty());
  EXPECT_TRUE(w.dead_man_engaged());
  a = TickAt(w, 66 * kS);
  EXPECT_FALSE(w.dead_man_engaged());
  EXPECT_EQ(Kinds(a), (std::vector<Kind>{Kind::kRequestLease}));
}

// A wake-up already past after a Tick is a busy loop in the daemon (its
// timer fires at once, the Tick changes nothing, and again), for as long as
// the reason lasts.
TEST_F(WorkerTest, AfterATickTheNextWakeupIsNeverInThePast) {
  Worker w = Make(cfg);
  TickAt(w, 0);
  LeaseGrant g = Grant(0);
  w.OnGrant(g, 0);
  w.TakeActions();
  // No coordinator (a node restarted whose seeds do not answer yet, or an
  // election's stabilisation): the renewal due at 10 s waits for one, and
  // the worker still looks at least every idle_poll.
  view.coordinator.reset();
  for (int64_t t = 9 * kS; t <= 14 * kS; t += kS / 2) {
    for (const auto& a : TickAt(w, t)) EXPECT_NE(a.kind, Kind::kRenew) << t;
    EXPECT_GT(w.NextWakeup(), t) << t;
  }
  // The first Tick with a coordinator sends it.
  view.coordinator = kCoord;
  EXPECT_EQ(Kinds(TickAt(w, 14 * kS + 10)), (std::vector<Kind>{Kind::kRenew}));
  EXPECT_EQ(w.NextWakeup(), 15 * kS + 10);
}

TEST_F(WorkerTest, AContactBackJustBeforeTheSwitchWouldEngageIsNoWakeupInThePast) {
  cfg.dead_man_after = std::chrono::seconds(12);
  Worker w = Make(cfg);
  TickAt(w, 0);
  w.OnGrant(Grant(0), 0);
  w.TakeActions();
  view.in_contact = false;
  TickAt(w, 1 * kS);  // lost at 1 s: the switch would engage at 13 s
  EXPECT_EQ(w.NextWakeup(), 2 * kS);
  view.in_contact = true;
  TickAt(w, 12 * kS);  // back at 12 s: over once it has held to 17 s
  for (int64_t t = 13 * kS; t <= 16 * kS; t += kS / 2) {
    TickAt(w, t);
    EXPECT_FALSE(w.dead_man_engaged()) << t;
    EXPECT_GT(w.NextWakeup(), t) << t;
  }
  // Lost again before it held: the count from 1 s went on, and is over.
  view.in_contact = false;
  auto a = TickAt(w, 16 * kS + 500);
  EXPECT_TRUE(w.dead_man_engaged());
  EXPECT_EQ(Kinds(a), (std::vector<Kind>{Kind::kStopScan}));
  EXPECT_GT(w.NextWakeup(), 16 * kS + 500);
}

TEST_F(WorkerTest, ParallelShardsAndTheLeaseCapBoundWhatAWorkerTakes) {
  cfg.parallel_shards = 2;
  cfg.max_leases_per_worker = 3;
  Worker w = Make(cfg);
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(Kinds(TickAt(w, i)), (std::vector<Kind>{Kind::kRequestLease}));
    w.OnGrant(Grant(i), i);
    EXPECT_EQ(Kinds(w.TakeActions()), (std::vector<Kind>{Kind::kStartScan}));
  }
  EXPECT_EQ(w.scanning_count(), 2u);
  EXPECT_TRUE(TickAt(w, 10).empty());
  ShardRef first = w.Scanning()[0];
  w.OnShardScanned(first, 0, Digest{}, 20);
  // One slot free to scan, third lease allowed.
  EXPECT_EQ(Kinds(TickAt(w, 20)), (std::vector<Kind>{Kind::kReplicate, Kind::kRequestLease}));
  w.OnGrant(Grant(30), 30);
  w.TakeActions();
  w.OnShardScanned(w.Scanning()[0], 0, Digest{}, 40);
  EXPECT_EQ(Kinds(TickAt(w, 40)), (std::vector<Kind>{Kind::kReplicate}));  // cap: 3 held
  w.OnReplicaStored(first, kCoord, 50);
  EXPECT_EQ(Kinds(w.TakeActions()), (std::vector<Kind>{Kind::kMarkDone}));
  EXPECT_EQ(Kinds(TickAt(w, 60)), (std::vector<Kind>{Kind::kRequestLease}));
}

// ---- A little mesh ----------------------------------------------------------

// One coordinator (node 100) and four workers, two per vantage, run a
// 2-vantage scan of 20 shards in 100 ms steps. Messages take 50-150 ms,
// shards 3-8 s. Mid-way a worker that is scanning crashes: it is declared
// dead 3 s later. The workers see the coordinator's state as of the last
// half second (replication lag).
struct SimResult {
  std::map<ShardRef, std::vector<NodeId>> starts;  // who started each shard, in order
  NodeId crashed;
  int64_t finished_ms = -1;
};

SimResult Simulate(uint64_t seed) {
  const NodeId coord = N(100);
  const std::vector<NodeId> workers = {N(1), N(2), N(3), N(4)};
  const std::map<NodeId, std::string> vantage = {{N(1), "dmz"}, {N(2), "dmz"}, {N(3), "wifi"}, {N(4), "wifi"}};
  uint64_t rng = seed;
  auto rand = [&](uint64_t n) { return SplitMix64(rng) % n; };

  WorkConfig cfg;
  WorkStates truth;
  Add(truth, Scan(1, {"dmz", "wifi"}, 20, 0));
  WorkStates seen = truth;
  std::map<NodeId, Worker> w;
  for (const NodeId& id : workers) w.emplace(id, Worker(id, vantage.at(id), cfg, seed ^ id.lo));

  SimResult out;
  const int64_t crash_at = 10 * kS + static_cast<int64_t>(rand(10)) * kS;
  std::optional<int64_t> crashed_at;
  auto live = [&](const NodeId& id) { return !crashed_at || id != out.crashed; };
  auto known_alive = [&](const NodeId& id, int64_t now) {
    return !crashed_at || id != out.crashed || now < *crashed_at + 3 * kS;
  };

  struct Event {
    int64_t at;
    uint64_t seq;
    NodeId to;
    std::function<void(int64_t)> fn;
    bool operator>(const Event& o) const { return std::tie(at, seq) > std::tie(o.at, o.seq); }
  };
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  uint64_t seq = 0;
  auto send = [&](const NodeId& to, int64_t now, std::function<void(int64_t)> fn) {
    events.push({now + 50 + static_cast<int64_t>(rand(100)), seq++, to, std::move(fn)});
  };
  std::set<std::pair<NodeId, ShardRef>> engine;  // running shard scans

  auto execute = [&](const NodeId& self, const WorkAction& a, int64_t now) {
    switch (a.kind) {
      case Kind::kRequestLease:
        send(coord, now, [&, self](int64_t t) {
          auto g = GrantLease(truth, self, vantage.at(self), 1, t, [&](const NodeId& id) { return known_alive(id, t); },
                              cfg);
          send(self, t, [&, self, g](int64_t t2) {
            if (g) w.at(self).OnGrant(*g, t2);
            else w.at(self).OnGrantRefused("no work", t2);
          });
        });
        break;
      case Kind::kRenew:
        send(coord, now, [&, self, ref = a.ref](int64_t t) {
          auto r = RenewLease(truth, self, ref.scan, ref.vantage, ref.shard, 1, t, cfg);
          send(self, t, [&, self, ref, r](int64_t t2) {
            if (r.ok()) w.at(self).OnRenewed(ref, *r, t2);
            else w.at(self).OnRenewRefused(ref, r.status().message(), t2);
          });
        });
        break;
      case Kind::kStartScan: {
        out.starts[a.ref].push_back(self);
        engine.insert({self, a.ref});
        int64_t took = 3 * kS + static_cast<int64_t>(rand(5000));
        events.push({now + took, seq++, self, [&, self, ref = a.ref](int64_t t) {
                       if (!engine.erase({self, ref})) return;  // stopped meanwhile
                       Digest d{};
                       d[0] = static_cast<uint8_t>(ref.shard);
                       d[1] = static_cast<uint8_t>(ref.vantage[0]);
                       w.at(self).OnShardScanned(ref, ref.shard, d, t);
                     }});
        break;
      }
      case Kind::kStopScan:
        engine.erase({self, a.ref});
        break;
      case Kind::kReplicate:
        // A stream to the target: stored and acked, or (a crashed target)
        // failed, as the driver's stream timeout would report it.
        send(self, now, [&, self, ref = a.ref, to = a.to](int64_t t) {
          if (live(to)) w.at(self).OnReplicaStored(ref, to, t);
          else w.at(self).OnReplicaFailed(ref, to, t);
        });
        break;
      case Kind::kMarkDone:
        send(coord, now, [&, ref = a.ref, done = a.done](int64_t) {
          ShardDone& d = At(truth, 1, ref.vantage, ref.shard).done;
          d = JoinDone(d, done);
        });
        break;
    }
  };

  auto all_done = [&] {
    for (const auto& pool : truth.at(Id(1)).pools)
      for (const auto& sh : pool)
        if (!sh.done.done) return false;
    return true;
  };

  for (int64_t now = 0; now <= 600 * kS; now += 100) {
    while (!events.empty() && events.top().at <= now) {
      Event e = events.top();
      events.pop();
      if (live(e.to)) e.fn(e.at);  // messages to (and timers of) a crashed node are lost
    }
    if (now % 500 == 0) seen = truth;
    if (all_done()) {
      out.finished_ms = now;
      break;
    }
    if (!crashed_at && now >= crash_at) {
      std::vector<NodeId> busy;
      for (const NodeId& id : workers)
        if (w.at(id).scanning_count() > 0) busy.push_back(id);
      if (!busy.empty()) {
        out.crashed = busy[rand(busy.size())];
        crashed_at = now;
      }
    }
    WorkerView view;
    view.coordinator = coord;
    view.coordinator_address = "coord";
    view.in_contact = true;
    view.states = &seen;
    view.alive_members = {coord};
    for (const NodeId& id : workers)
      if (known_alive(id, now)) view.alive_members.push_back(id);
    // Invariant: no shard is being scanned by two live workers at once.
    std::map<ShardRef, int> scanning;
    for (const NodeId& id : workers) {
      if (!live(id)) continue;
      Worker& me = w.at(id);
      me.Tick(now, view);
      for (const auto& a : me.TakeActions()) execute(id, a, now);
      for (const auto& ref : me.Scanning())
        EXPECT_LE(++scanning[ref], 1) << "shard " << ref.vantage << "/" << ref.shard << " at " << now;
    }
  }
  // Every done shard holds its bundle on its last scanner and on a replica.
  for (const auto& [ref, who] : out.starts) {
    const ShardDone& d = At(truth, 1, ref.vantage, ref.shard).done;
    EXPECT_TRUE(d.done);
    EXPECT_EQ(d.holders.size(), 2u);
    if (d.holders.size() != 2) continue;
    EXPECT_TRUE(d.holders[0] == who.back() || d.holders[1] == who.back());
    EXPECT_NE(d.holders[0], d.holders[1]);
  }
  return out;
}

TEST(WorkSimulation, FourWorkersInTwoVantagesFinishEveryShardDespiteACrash) {
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    SimResult r = Simulate(seed);
    ASSERT_GE(r.finished_ms, 0) << "not every shard done";
    ASSERT_FALSE(r.crashed.empty());
    EXPECT_EQ(r.starts.size(), 40u);  // every shard of both pools was scanned
    int twice = 0;
    for (const auto& [ref, who] : r.starts) {
      ASSERT_LE(who.size(), 2u);
      if (who.size() == 2) {
        ++twice;
        EXPECT_EQ(who[0], r.crashed) << "shard " << ref.vantage << "/" << ref.shard << " scanned twice";
        EXPECT_NE(who[1], r.crashed);
      }
    }
    EXPECT_GE(twice, 1);  // the crashed worker was scanning
    // 20 shards of 3-8 s, by one worker alone in the worst case.
    EXPECT_LT(r.finished_ms, 200 * kS);
  }
}

// The dead man's switch's second witness: how much of the mesh this node's
// recent syncs reach.
TEST(Reachability, FiveNodesSplitThreeTwo) {
  const NodeId a{1, 1}, b{1, 2}, c{1, 3}, d{1, 4}, e{1, 5};
  std::vector<NodeId> all{a, b, c, d, e};  // sorted
  constexpr size_t kKnown = 5;
  Reachability minority, majority;  // c's and a's
  EXPECT_EQ(minority.ReachesHalf(0, c, all, kKnown), std::nullopt) << "nothing to say yet";
  // Cut off, everyone still alive in the views: c reaches e only, a
  // reaches b and d: 2 of 5 against 3 of 5.
  int64_t t = 0;
  for (const NodeId& to : {a, b, d, e}) minority.Record(t += 1000, to, to == e);
  for (const NodeId& to : {b, c, d, e}) majority.Record(t, to, to == b || to == d);
  EXPECT_EQ(minority.ReachesHalf(t, c, all, kKnown), std::optional<bool>(false));
  EXPECT_EQ(majority.ReachesHalf(t, a, all, kKnown), std::optional<bool>(true));
  // c's view lost a and d, not b (it probes slowly): its syncs reach half
  // of the two others it believes alive, which is still not half the mesh.
  std::vector<NodeId> c_view{b, c, e};
  for (const NodeId& to : {b, e, b, e}) minority.Record(t += 1000, to, to == e);
  EXPECT_EQ(minority.ReachesHalf(t, c, c_view, kKnown), std::optional<bool>(false));
  // a's view lost c and e: the failures to them no longer count.
  std::vector<NodeId> a_view{a, b, d};
  EXPECT_EQ(majority.ReachesHalf(t, a, a_view, kKnown), std::nullopt) << "two outcomes left: too few";
  majority.Record(t, d, true);
  EXPECT_EQ(majority.ReachesHalf(t, a, a_view, kKnown), std::optional<bool>(true));
  // Outcomes age out of the window.
  EXPECT_EQ(minority.ReachesHalf(t + Reachability::kWindowMs + 1, c, c_view, kKnown), std::nullopt);
}

TEST(Reachability, TheVerdictHoldsWhileTheEvidenceIsThin) {
  const NodeId self{0, 3}, b{0, 2}, e{0, 5}, gone{0, 1};
  Reachability r;
  EXPECT_TRUE(r.Verdict(0, self, {gone, b, self, e}, 5)) << "in contact until shown otherwise";
  int64_t t = 0;
  for (const NodeId& to : {gone, b, gone, e}) r.Record(t += 1000, to, to == e);
  EXPECT_FALSE(r.Verdict(t, self, {gone, b, self, e}, 5));
  // `gone` leaves the view: two outcomes left, too few to say; the verdict stays.
  EXPECT_EQ(r.ReachesHalf(t, self, {b, self, e}, 5), std::nullopt);
  EXPECT_FALSE(r.Verdict(t, self, {b, self, e}, 5));
  EXPECT_FALSE(r.Verdict(t + Reachability::kWindowMs + 1, self, {b, self, e}, 5)) << "nor when all aged out";
  // Back in reach: enough answers turn it.
  t += 20'000;
  for (const NodeId& to : {b, e, b}) r.Record(t += 1000, to, true);
  EXPECT_TRUE(r.Verdict(t, self, {b, self, e}, 5));
  // Nobody else alive: nothing to reach, the view decides.
  Reachability alone;
  for (int k = 0; k < 5; ++k) alone.Record(k, b, false);
  EXPECT_FALSE(alone.Verdict(5, self, {b, self}, 3));
  EXPECT_TRUE(alone.Verdict(6, self, {self}, 1));
}

TEST(Reachability, OneCrashInALargeMeshIsNoCutOff) {
  std::vector<NodeId> alive;
  for (uint64_t i = 1; i <= 100; ++i) alive.push_back(NodeId{0, i});
  Reachability r;
  // One sync in ten to a member that crashed and is not yet declared dead.
  for (int k = 0; k < 20; ++k) r.Record(k * 400, alive[(k * 7) % 100], k % 10 != 0);
  EXPECT_EQ(r.ReachesHalf(8000, alive[0], alive, 100), std::optional<bool>(true));
}

TEST(Reachability, KeepsABoundedHistory) {
  Reachability r;
  const NodeId self{0, 9}, other{0, 1};
  // Nine failures for every answer, the answers last: only the last
  // kMaxSamples outcomes are kept, all of them answers.
  for (size_t i = 0; i < 10 * Reachability::kMaxSamples; ++i)
    r.Record(static_cast<int64_t>(i), other, i >= 9 * Reachability::kMaxSamples);
  EXPECT_EQ(r.ReachesHalf(1000, self, {other, self}, 4), std::optional<bool>(true));  // 2 of 4
  EXPECT_EQ(r.ReachesHalf(1000, self, {other, self}, 5), std::optional<bool>(false));
}

}  // namespace
}  // namespace ndo::mesh
