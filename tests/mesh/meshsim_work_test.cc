// Distributed scans on meshsim (sim_work.h): the daemon's WorkCore on every
// simulated node, its requests carried with the mesh's latency and loss, a
// fake scanner that encodes real bundles, crashes that lose everything. At
// small N, a few seeds.
#include <gtest/gtest.h>

#include <cmath>

#include "base/log.h"
#include "mesh/work/scan_regions.h"
#include "store/result_bundle.h"
#include "sim_mesh.h"
#include "sim_work.h"

namespace ndo::mesh::sim {
namespace {

using namespace std::chrono_literals;

// The cores log every grant and shard done, as in the daemon.
class QuietLogs : public ::testing::Environment {
 public:
  void SetUp() override { SetLogLevel(LogLevel::kError); }
};
const auto* const kQuiet = ::testing::AddGlobalTestEnvironment(new QuietLogs);

ScenarioOptions Mesh(int nodes, uint64_t seed) {
  ScenarioOptions o;
  o.nodes = nodes;
  o.seed = seed;
  o.loss = 0.01;
  o.count_bytes = false;
  return o;
}

WorkScenarioOptions Scan(uint32_t shards, double crash_fraction) {
  WorkScenarioOptions w;
  w.vantages = 2;
  w.shards_per_pool = shards;
  w.crash_fraction = crash_fraction;
  w.time_limit_s = 900;
  return w;
}

class TenPercentCrash : public ::testing::TestWithParam<uint64_t> {};

// The acceptance at N=50: 2 vantages, 5 nodes crash during the
// scan, the coordinator among them.
TEST_P(TenPercentCrash, EveryShardDoneAndEveryResultOnEverySurvivor) {
  Figures f = DistributedScan(Mesh(50, GetParam()), Scan(40, 0.1));
  EXPECT_EQ(f.Get("crashes"), 5);
  EXPECT_GE(f.Get("coordinator_crashes"), 1);
  EXPECT_EQ(f.Get("survivors"), 45);
  ASSERT_FALSE(std::isnan(f.Get("completion_s"))) << "not complete within the time limit";
  EXPECT_EQ(f.Get("survivors_complete"), 45);
  EXPECT_EQ(f.Get("shards_done_min_over_survivors"), 80);
  EXPECT_EQ(f.Get("results_missing"), 0);
  EXPECT_EQ(f.Get("shards_lost"), 0);
  EXPECT_EQ(f.Get("invariant_violations"), 0);
  // A core due at once right after its Tick, or earlier than its clock, is
  // a busy loop in the daemon.
  EXPECT_EQ(f.Get("worker_past_wakeups"), 0);
  // Only a crash makes a shard be scanned again.
  EXPECT_EQ(f.Get("scanned_twice_first_holder_crashed"), f.Get("shards_scanned_twice"));
  EXPECT_EQ(f.Get("rescans_previous_scanner_up"), 0);
  EXPECT_EQ(f.Get("concurrent_scans"), 0);
  EXPECT_GE(f.Get("scans_finished"), 80);
  // Remote grants as the coordinators replied, plus the coordinators' own.
  EXPECT_GE(f.Get("lease_grants") + f.Get("self_grants"), 80);
}

INSTANTIATE_TEST_SUITE_P(Seeds, TenPercentCrash, ::testing::Values(1, 2, 3, 4, 5, 6, 7, 8));

// A finding of this simulator, fixed: every shard's replica went to the
// coordinator and nodes fetched only from a shard's two holders, so when the
// coordinator crashed after shards were done and, later, the scanner of one
// of them, nodes that had not fetched it yet never could (at N=100, seeds 1
// and 3, one shard was held by no survivor; at N=1000, 26). Replicas now go
// to a random member, and a shard whose holders are gone is fetched from any
// member, every node serving what it fetched.
TEST(MeshSimWork, CoordinatorCrashAfterShardsAreDoneLosesNoResult) {
  for (uint64_t seed : {1, 3}) {
    WorkScenarioOptions w = Scan(100, 0.1);
    w.coordinator_crash_at_s = 25;  // after the first shards are done
    w.time_limit_s = 600;
    Figures f = DistributedScan(Mesh(100, seed), w);
    EXPECT_GT(f.Get("shards_done_at_coordinator_crash"), 0) << "seed " << seed;
    EXPECT_EQ(f.Get("shards_lost"), 0) << "seed " << seed;
    EXPECT_EQ(f.Get("results_missing"), 0) << "seed " << seed;
  }
}

TEST(MeshSimWork, WithoutCrashesEveryShardIsScannedOnce) {
  Figures f = DistributedScan(Mesh(30, 7), Scan(30, 0));
  ASSERT_FALSE(std::isnan(f.Get("completion_s")));
  EXPECT_EQ(f.Get("shards_scanned_twice"), 0);
  EXPECT_EQ(f.Get("scans_started"), 60);
  EXPECT_EQ(f.Get("scans_finished"), 60);
  // Every shard's bundle was kept by a second node before it was done.
  EXPECT_GE(f.Get("replicas_stored"), 60);
  EXPECT_EQ(f.Get("results_missing"), 0);
  EXPECT_EQ(f.Get("invariant_violations"), 0);
  // 30 nodes fetch the 60 bundles they did not scan or store: the slow part.
  EXPECT_GT(f.Get("completion_s"), f.Get("all_shards_done_everywhere_s"));
}

// The fake scanner's bundles are real ones: they decode, the done record
// every core agreed on names their digest and result count, and every
// node's core holds that digest (the shelves share one copy of the bytes).
TEST(MeshSimWork, DoneRecordsNameTheScannersRealBundles) {
  SimConfig c;
  c.nodes = 12;
  c.seed = 3;
  c.count_bytes = false;
  SimMesh mesh(c);
  mesh.Bootstrap();
  SimWorkConfig wc;
  wc.count_bytes = false;
  wc.seed = 3;
  SimWork work(mesh, wc);
  work.RunUntil(mesh.now() + 10s);
  auto id = work.Submit(0, 6);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  SimWork::Progress p;
  for (Time t = mesh.now(); t < mesh.now() + 300s && p.complete < 12; t += 1s) {
    work.RunUntil(t);
    p = work.Check(*id);
  }
  ASSERT_EQ(p.complete, 12);
  const ScanState* s = work.core(5)->Find(*id);
  ASSERT_NE(s, nullptr);
  for (size_t v = 0; v < s->pools.size(); ++v)
    for (uint32_t k = 0; k < s->pools[v].size(); ++k) {
      const ShardDone& d = s->pools[v][k].done;
      ASSERT_TRUE(d.done);
      auto truth = work.Yield(*s, s->definition.vantages[v], k);
      auto decoded = DecodeResultBundle(*truth->bytes);
      ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
      EXPECT_EQ(decoded->results.size(), d.results);
      EXPECT_EQ(BundleDigest(*truth->bytes), d.digest);
      for (int i = 0; i < 12; ++i) {
        auto h = work.core(i)->held().find({PoolId(*id, s->definition.vantages[v]), k});
        ASSERT_NE(h, work.core(i)->held().end()) << "node " << i;
        EXPECT_EQ(h->second, d.digest);
      }
    }
  EXPECT_GT(s->pools[0][0].done.results, 0u);  // 400,000 probes at 0.001
  EXPECT_EQ(work.MissingResults(*id), 0u);
}

TEST(MeshSimWork, SameSeedSameFigures) {
  Figures a = DistributedScan(Mesh(30, 11), Scan(20, 0.1));
  Figures b = DistributedScan(Mesh(30, 11), Scan(20, 0.1));
  ASSERT_EQ(a.values.size(), b.values.size());
  for (size_t k = 0; k < a.values.size(); ++k) {
    EXPECT_EQ(a.values[k].first, b.values[k].first);
    EXPECT_EQ(a.values[k].second, b.values[k].second) << a.values[k].first;
  }
  Figures c = DistributedScan(Mesh(30, 12), Scan(20, 0.1));
  EXPECT_NE(a.Get("work_events"), c.Get("work_events"));
}

// Driven by hand, with the checks after every instant: the coordinator
// crashes in the middle of the scan, while leases are out; its successor
// adopts them, nothing done goes back, and the scan completes.
TEST(MeshSimWork, CoordinatorCrashMidScanWithChecksAtEveryInstant) {
  SimConfig c;
  c.nodes = 24;
  c.seed = 5;
  c.loss = 0.01;
  c.count_bytes = false;
  SimMesh mesh(c);
  mesh.Bootstrap();
  SimWorkConfig wc;
  wc.count_bytes = false;
  wc.seed = 5;
  SimWork work(mesh, wc);
  work.RunUntil(mesh.now() + 10s);
  int first = work.MajorityCoordinator();
  ASSERT_GE(first, 0);
  auto id = work.Submit(3, 30);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  const Time t0 = mesh.now();
  auto check = [&] { work.Check(*id); };
  work.RunUntil(t0 + 25s, check);
  EXPECT_GT(work.stats().grants + work.stats().self_grants, 12u);
  work.Crash(first);
  work.RunUntil(t0 + 40s, check);
  int second = work.MajorityCoordinator();
  EXPECT_GE(second, 0);
  EXPECT_NE(second, first);
  SimWork::Progress p;
  for (Time t = mesh.now(); t < t0 + 600s && p.complete < 23; t += 1s) {
    work.RunUntil(t, check);
    p = work.Check(*id);
  }
  EXPECT_EQ(p.survivors, 23);
  EXPECT_EQ(p.all_done, 23);
  EXPECT_EQ(p.complete, 23);
  uint64_t lost = 0;
  EXPECT_EQ(work.MissingResults(*id, &lost), 0u);
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(work.stats().violations, 0u) << work.stats().first_violation;
  EXPECT_EQ(work.stats().rescans_previous_up, 0u);
  // The views the cores were handed, rebuilt only on the membership's
  // events, are the membership's.
  EXPECT_TRUE(work.ViewsConsistent());
}

}  // namespace
}  // namespace ndo::mesh::sim

namespace ndo::mesh::sim {
namespace {

// Mixed scan policies: node i may scan the low half of the simulated
// targets, the high half, or nothing (i % 3), so each vantage has nodes of
// every kind. The scan is cut into the two halves' regions, completes in
// both pools, and every shard's lease went to a node whose policy holds
// its region; the nodes without a policy scanned nothing.
TEST(MeshSimWork, MixedPoliciesScanEveryRegionOnlyByNodesAllowedIt) {
  SimConfig c;
  c.nodes = 12;
  c.seed = 5;
  c.count_bytes = false;
  SimMesh mesh(c);
  mesh.Bootstrap();
  SimWorkConfig wc;
  wc.count_bytes = false;
  wc.seed = 5;
  IntervalSet low, high;
  low.Add({IpAddress::FromV4(0x0a000000).value(), IpAddress::FromV4(0x0a7fffff).value()});
  high.Add({IpAddress::FromV4(0x0a800000).value(), IpAddress::FromV4(0x0affffff).value()});
  wc.policies = {low, high, IntervalSet()};
  SimWork work(mesh, wc);
  work.RunUntil(mesh.now() + 10s);
  auto id = work.Submit(0, 8);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  SimWork::Progress p;
  for (Time t = mesh.now(); t < mesh.now() + 600s && p.complete < 12; t += 1s) {
    work.RunUntil(t);
    p = work.Check(*id);
  }
  ASSERT_EQ(p.complete, 12);
  const ScanState* s = work.core(0)->Find(*id);
  ASSERT_NE(s, nullptr);
  ASSERT_EQ(s->definition.regions.size(), 2u);
  std::map<NodeId, int> index;
  for (int i = 0; i < 12; ++i) index[mesh.node(i).self().id] = i;
  for (size_t v = 0; v < s->pools.size(); ++v)
    for (uint32_t k = 0; k < s->pools[v].size(); ++k) {
      const ShardState& sh = s->pools[v][k];
      ASSERT_TRUE(sh.done.done);
      int scanner = index.at(sh.lease.holder);
      const IntervalSet& region = s->definition.regions[RegionOfShard(s->definition, k).region].targets;
      EXPECT_TRUE(region.IsSubsetOf(wc.policies[scanner % 3])) << "shard " << k << " scanned by node " << scanner;
      EXPECT_NE(scanner % 3, 2) << "a node without a policy scanned shard " << k;
    }
  EXPECT_EQ(work.MissingResults(*id), 0u);
}

// --signatures: every node has the daemon's CertificateKeys with a
// certificate of the simulation's CA binding its vantage, scanner but for
// the operators named; what one signs verifies at another once it has the
// signer's certificate (what the work core's certificate fetch hands over).
TEST(MeshSimWork, WithSignaturesEveryNodeHoldsKeysCertifiedForItsVantage) {
  SimConfig c;
  c.nodes = 6;
  c.seed = 5;
  c.count_bytes = false;
  SimMesh mesh(c);
  mesh.Bootstrap();
  SimWorkConfig wc;
  wc.count_bytes = false;
  wc.seed = 5;
  wc.signatures = true;
  wc.operators = {0};
  SimWork work(mesh, wc);
  EXPECT_EQ(work.stats().violations, 0u) << work.stats().first_violation;
  for (int i = 0; i < 6; ++i) {
    ASSERT_NE(work.keys(i), nullptr) << i;
    EXPECT_EQ(work.keys(i)->known(), 1u) << "only its own certificate at first";
  }
  for (int signer : {0, 1, 2}) {
    const NodeId id = mesh.node(signer).self().id;
    std::string sig = work.keys(signer)->Sign("record");
    ASSERT_EQ(sig.size(), 64u);
    CountingKeys* other = work.keys(5);
    EXPECT_EQ(other->Verify(id, "record", sig).status().code(), Status::Code::kNotFound);
    ASSERT_TRUE(other->Learn(*work.keys(signer)->Certificate(id)).ok());
    auto info = other->Verify(id, "record", sig);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->is_operator, signer == 0);
    EXPECT_EQ(info->vantage, work.VantageOf(signer));
    // Node 2's signature is not node 1's.
    if (signer == 2) {
      EXPECT_FALSE(other->Verify(mesh.node(1).self().id, "record", sig).ok());
    }
  }
  const KeyStats& k = work.key_stats();
  EXPECT_EQ(k.signs, 3u);
  EXPECT_EQ(k.certs_learnt, 3u);
  EXPECT_EQ(k.verify_unknown, 3u);
  EXPECT_EQ(k.verify_refused, 1u);
  // Without signatures: no keys, as before.
  SimMesh plain_mesh(c);
  plain_mesh.Bootstrap();
  wc.signatures = false;
  SimWork plain(plain_mesh, wc);
  EXPECT_EQ(plain.keys(0), nullptr);
}

// A scan with signatures on: it completes as without, and in an honest
// mesh no signature is refused.
TEST(MeshSimWork, WithSignaturesTheScanCompletesAndNothingIsRefused) {
  WorkScenarioOptions w = Scan(20, 0);
  w.signatures = true;
  Figures f = DistributedScan(Mesh(20, 4), w);
  ASSERT_FALSE(std::isnan(f.Get("completion_s")));
  EXPECT_EQ(f.Get("signatures"), 1);
  EXPECT_EQ(f.Get("results_missing"), 0);
  EXPECT_EQ(f.Get("invariant_violations"), 0);
  EXPECT_EQ(f.Get("verify_refused"), 0);
  EXPECT_EQ(f.Get("cert_learn_refusals"), 0);
}

}  // namespace
}  // namespace ndo::mesh::sim
