// Scans across nodes of different scan policies (mesh/work/scan_regions.h):
// the targets cut into regions by the members' policies, each shard inside
// one region, every probe in exactly one shard; leases only to workers
// whose policy holds a shard's region; what no member may scan refused.
#include "mesh/work/scan_regions.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "mesh/membership/scan_policy.h"
#include "mesh/work/work_core.h"
#include "mesh/work/worker.h"
#include "scan/target_parser.h"

namespace ndo::mesh {
namespace {

IntervalSet Set(const std::string& list) {
  auto s = ParseAddressList(list);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? *s : IntervalSet();
}

// 127.70.0.0/28 and 127.71.0.0/28, two ports: 64 probes.
ScanDefinition Mixed(const std::vector<IntervalSet>& policies, uint32_t shards) {
  ScanDefinition def;
  def.spec.arguments = {"ndo", "127.70.0.0/28,127.71.0.0/28", "-p", "22,80"};
  def.spec.targets.addresses = Set("127.70.0.0/28,127.71.0.0/28");
  def.spec.ports = {22, 80};
  def.spec.seed = 9;
  def.vantages = {"dmz"};
  auto regions = PlanRegions(def.spec.targets.addresses, def.spec.ports.size(), policies, shards);
  EXPECT_TRUE(regions.ok()) << regions.status().ToString();
  def.regions = *regions;
  def.spec.shard_count = 0;
  for (const auto& r : def.regions) def.spec.shard_count += r.shards;
  if (def.regions.empty()) def.spec.shard_count = shards;
  return def;
}

const IntervalSet kLeft = Set("127.70.0.0/24");
const IntervalSet kRight = Set("127.71.0.0/24");

TEST(PlanRegions, PoliciesCutTheTargetsIntoRegionsWithProportionalShares) {
  auto regions = PlanRegions(Set("127.70.0.0/24,127.71.0.0/25"), 3, {kLeft, kRight}, 30);
  ASSERT_TRUE(regions.ok());
  ASSERT_EQ(regions->size(), 2u);
  EXPECT_EQ(FormatAddressSet((*regions)[0].targets), "127.70.0.0/24");
  EXPECT_EQ(FormatAddressSet((*regions)[1].targets), "127.71.0.0/25");
  EXPECT_EQ((*regions)[0].shards, 20u);  // 256 of 384 addresses
  EXPECT_EQ((*regions)[1].shards, 10u);

  // Equal policies, or policies that hold all targets alike, cut nothing.
  auto none = PlanRegions(Set("127.70.0.0/24"), 1, {kLeft, kLeft, Set("127.0.0.0/8"), IntervalSet()}, 8);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  // A policy that holds part: inside and outside (a region no one may scan).
  auto part = PlanRegions(Set("127.70.0.0/24"), 1, {Set("127.70.0.0/25")}, 8);
  ASSERT_TRUE(part.ok());
  ASSERT_EQ(part->size(), 2u);
  EXPECT_EQ(FormatAddressSet((*part)[1].targets), "127.70.0.128/25");
  // At least one shard a region, never more than its probes.
  auto tiny = PlanRegions(Set("127.70.0.1,127.71.0.0/24"), 1, {kLeft}, 4);
  ASSERT_TRUE(tiny.ok());
  ASSERT_EQ(tiny->size(), 2u);
  EXPECT_EQ((*tiny)[0].shards, 1u);
  EXPECT_GE((*tiny)[1].shards, 1u);
  EXPECT_LE((*tiny)[0].shards + (*tiny)[1].shards, 5u);
}

TEST(PlanRegions, TooManyRegionsAreRefused) {
  std::vector<IntervalSet> policies;
  for (int i = 0; i < 70; ++i) policies.push_back(Set("127.70." + std::to_string(i) + ".0/24"));
  auto r = PlanRegions(Set("127.70.0.0/16"), 1, policies, 100);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("regions"), std::string::npos);
}

// Every probe of the scan in exactly one shard, and each shard's probes
// inside its own region.
TEST(ShardSpec, EveryProbeLiesInExactlyOneShardInsideItsRegion) {
  ScanDefinition def = Mixed({kLeft, kRight}, 6);
  ASSERT_EQ(def.regions.size(), 2u);
  ASSERT_EQ(def.spec.shard_count, 6u);
  std::map<std::pair<u128, uint16_t>, int> seen;
  for (uint32_t k = 0; k < def.spec.shard_count; ++k) {
    uint32_t local = 99;
    ScanSpec spec = ShardSpec(def, k, &local);
    RegionShard rs = RegionOfShard(def, k);
    EXPECT_EQ(local, rs.local);
    EXPECT_EQ(spec.targets.addresses.ranges(), def.regions[rs.region].targets.ranges());
    auto plan = ScanPlan::Create(spec);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    PositionRange r = plan->Shard(local);
    for (uint64_t pos = r.begin; pos < r.end; ++pos) {
      uint64_t index = 0;
      if (!plan->permutation().IndexOf(plan->permutation().ElementAt(pos), index)) continue;  // skipped
      ProbeTarget t = plan->TargetAt(index);
      EXPECT_TRUE(def.regions[rs.region].targets.Contains(t.address.value()));
      ++seen[{t.address.value(), t.port}];
    }
  }
  EXPECT_EQ(seen.size(), 64u);
  for (const auto& [probe, n] : seen) EXPECT_EQ(n, 1);
}

TEST(ScanDefinition, RegionsAreEncodedCheckedAndHashedIntoTheId) {
  ScanDefinition def = Mixed({kLeft, kRight}, 6);
  auto bytes = EncodeScanDefinition(def);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  auto back = DecodeScanDefinition(*bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->regions.size(), 2u);
  EXPECT_EQ(back->regions[1].targets.ranges(), def.regions[1].targets.ranges());
  EXPECT_EQ(back->regions[1].shards, def.regions[1].shards);
  ScanDefinition plain = def;
  plain.regions.clear();
  auto plain_bytes = EncodeScanDefinition(plain);
  ASSERT_TRUE(plain_bytes.ok());
  EXPECT_NE(ScanDefinitionId(*plain_bytes), ScanDefinitionId(*bytes));

  ScanDefinition overlap = def;
  overlap.regions[1].targets.Add(def.regions[0].targets.ranges()[0]);
  ScanDefinition short_shards = def;
  short_shards.regions[0].shards -= 1;
  ScanDefinition missing = def;
  missing.regions.pop_back();
  for (const auto* bad : {&overlap, &short_shards, &missing}) {
    auto e = EncodeScanDefinition(*bad);
    EXPECT_FALSE(e.ok());
    EXPECT_EQ(e.status().code(), Status::Code::kInvalidArgument);
  }
}

ScanState StateOf(ScanDefinition def) {
  auto s = NewScanState(std::move(def), HlcStamp{1, 0, NodeId{9, 9}});
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return *s;
}

TEST(GrantLease, OnlyShardsWhoseRegionTheWorkersPolicyHolds) {
  ScanState s = StateOf(Mixed({kLeft, kRight}, 6));
  std::vector<uint32_t> starts = RegionStarts(s.definition);
  WorkStates states{{s.id, s}};
  WorkConfig cfg;
  cfg.max_leases_per_worker = 100;
  auto alive = [](const NodeId&) { return true; };
  std::set<uint32_t> left, right;
  while (auto g = GrantLease(states, NodeId{1, 1}, "dmz", 1, 1000, alive, cfg, 0, kLeft)) left.insert(g->ref.shard);
  while (auto g = GrantLease(states, NodeId{2, 2}, "dmz", 1, 1000, alive, cfg, 0, kRight)) right.insert(g->ref.shard);
  std::set<uint32_t> want_left, want_right;
  for (uint32_t k = starts[0]; k < starts[1]; ++k) want_left.insert(k);
  for (uint32_t k = starts[1]; k < starts[2]; ++k) want_right.insert(k);
  EXPECT_EQ(left, want_left);
  EXPECT_EQ(right, want_right);
  // An empty policy is granted nothing, a fresh state or not.
  WorkStates fresh{{s.id, s}};
  EXPECT_FALSE(GrantLease(fresh, NodeId{3, 3}, "dmz", 1, 1000, alive, cfg, 0, IntervalSet()));
  // A policy that holds only part of a region gets none of its shards.
  EXPECT_FALSE(GrantLease(fresh, NodeId{3, 3}, "dmz", 1, 1000, alive, cfg, 0, Set("127.70.0.0/29")));
}

TEST(RefusedByPolicy, RegionsNoPolicyHoldsAreRefusedWithTheirProbes) {
  ScanDefinition def = Mixed({kLeft, kRight}, 6);
  std::vector<uint32_t> starts = RegionStarts(def);
  PolicyRefusal none = RefusedByPolicy(def, {kLeft, kRight});
  EXPECT_TRUE(none.shards.empty());
  EXPECT_EQ(none.probes, 0u);
  PolicyRefusal right = RefusedByPolicy(def, {kLeft, IntervalSet()});
  EXPECT_EQ(FormatAddressSet(right.targets), "127.71.0.0/28");
  EXPECT_EQ(right.probes, 32u);
  std::vector<uint32_t> want;
  for (uint32_t k = starts[1]; k < starts[2]; ++k) want.push_back(k);
  EXPECT_EQ(right.shards, want);
  PolicyRefusal all = RefusedByPolicy(def, {});
  EXPECT_EQ(all.probes, 64u);
  EXPECT_EQ(all.shards.size(), def.spec.shard_count);
  // Counted apart from pending.
  ScanState s = StateOf(def);
  PoolCounts c = CountPool(s.pools[0], 0, right.shards);
  EXPECT_EQ(c.refused, want.size());
  EXPECT_EQ(c.pending, def.spec.shard_count - want.size());
}

WorkerView ViewOf(const WorkStates& states) {
  WorkerView v;
  v.coordinator = NodeId{9, 9};
  v.coordinator_address = "127.0.0.9:7946";
  v.in_contact = true;
  v.states = &states;
  v.alive_members = {NodeId{1, 1}, NodeId{9, 9}};
  return v;
}

bool AsksForWork(Worker& w, const WorkStates& states, int64_t now) {
  w.Tick(now, ViewOf(states));
  for (const auto& a : w.TakeActions())
    if (a.kind == WorkAction::Kind::kRequestLease) return true;
  return false;
}

TEST(Worker, ANodeWithoutPolicyNeverAsksForWorkAndOneAsksOnlyForItsRegions) {
  ScanState s = StateOf(Mixed({kLeft, kRight}, 6));
  WorkStates states{{s.id, s}};
  Worker none(NodeId{1, 1}, "dmz", WorkConfig{}, 1);
  none.SetPolicy(IntervalSet());
  EXPECT_FALSE(AsksForWork(none, states, 1000));
  Worker unrestricted(NodeId{1, 1}, "dmz", WorkConfig{}, 1);
  EXPECT_TRUE(AsksForWork(unrestricted, states, 1000)) << "the test's states have work to ask for";

  // Every shard of the left region leased away: a left-only node has
  // nothing to ask for though the right region's shards are free.
  std::vector<uint32_t> starts = RegionStarts(s.definition);
  for (uint32_t k = starts[0]; k < starts[1]; ++k) states[s.id].pools[0][k].lease = {NodeId{9, 9}, 1, 1, 1'000'000};
  Worker left(NodeId{1, 1}, "dmz", WorkConfig{}, 1);
  left.SetPolicy(kLeft);
  EXPECT_FALSE(AsksForWork(left, states, 1000));
  Worker right(NodeId{1, 1}, "dmz", WorkConfig{}, 1);
  right.SetPolicy(kRight);
  EXPECT_TRUE(AsksForWork(right, states, 1000));
}

class NoShelf : public BundleShelf {
 public:
  Result<std::string> Load(const ScanId&, uint32_t) override { return Status::NotFound("none"); }
  Status Keep(const ScanState&, std::string_view, uint32_t, std::string_view, const Digest&) override {
    return Status::Ok();
  }
};

TEST(WorkCore, TheCoordinatorGrantsByThePolicyInTheMembersRecord) {
  NoShelf shelf;
  NodeId self{9, 9}, left{1, 1}, none{2, 2}, stranger{3, 3};
  WorkCore core(self, "dmz", WorkConfig{}, 1, shelf);
  core.SetPolicy(IntervalSet());  // the coordinator itself scans nothing
  auto view = std::make_shared<MeshView>();
  view->coordinator = self;
  view->epoch = 1;
  view->alive = {{left, "127.0.0.1:1", "dmz", kLeft}, {none, "127.0.0.2:1", "dmz", IntervalSet()}};
  view->known = view->unsuspected = 2;
  core.UpdateView(view, 1000);
  auto id = core.Submit(Mixed({kLeft, kRight}, 6), 1000);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_TRUE(core.TakeScanCommands().empty()) << "a coordinator without policy started a shard";
  std::vector<uint32_t> starts = RegionStarts(core.Find(*id)->definition);

  auto ask = [&](const NodeId& who) {
    WorkMessage m;
    m.kind = WorkKind::kLeaseRequest;
    m.sender = who;
    m.vantage = "dmz";
    m.epoch = 1;
    return core.OnMessage(m, "dmz", 1001);
  };
  WorkMessage g = ask(left);
  ASSERT_EQ(g.kind, WorkKind::kLeaseGrant) << g.error;
  EXPECT_LT(g.shard, starts[1]) << "granted a shard outside the member's policy";
  WorkMessage refused = ask(none);
  EXPECT_EQ(refused.kind, WorkKind::kRefused);
  EXPECT_NE(refused.error.find("no scan policy"), std::string::npos) << refused.error;
  WorkMessage unknown = ask(stranger);
  EXPECT_EQ(unknown.kind, WorkKind::kRefused);
  EXPECT_NE(unknown.error.find("policy is unknown"), std::string::npos) << unknown.error;
}

}  // namespace
}  // namespace ndo::mesh
