// WorkCore, the node logic of distributed scans, driven by hand: no store,
// no socket, no clock (every input carries its time), bundles on a shelf in
// memory. What comes out (requests, gossip, scan commands, states to save)
// is what the daemon's driver and the simulator carry out.
#include "mesh/work/work_core.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "store/result_bundle.h"

namespace ndo::mesh {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;  // ms

class MemoryShelf : public BundleShelf {
 public:
  Result<std::string> Load(const ScanId& pool, uint32_t shard) override {
    auto it = bundles.find({pool, shard});
    if (it == bundles.end()) return Status::NotFound("no bundle");
    return it->second;
  }
  Status Keep(const ScanState& s, std::string_view vantage, uint32_t shard, std::string_view bundle,
              const Digest&) override {
    bundles[{PoolId(s.id, vantage), shard}] = std::string(bundle);
    return Status::Ok();
  }
  std::map<std::pair<ScanId, uint32_t>, std::string> bundles;
};

ScanDefinition Definition(uint32_t shards) {
  ScanDefinition def;
  def.spec.arguments = {"ndo", "127.0.0.1", "-p", "22,80"};
  def.spec.targets.addresses.Add({IpAddress::FromV4(0x7f000001).value(), IpAddress::FromV4(0x7f000001).value()});
  def.spec.ports = {22, 80};
  def.spec.seed = 5;
  def.spec.shard_count = shards;
  def.vantages = {"dmz"};
  return def;
}

std::shared_ptr<const MeshView> View(std::optional<NodeId> coordinator, std::vector<MeshPeer> alive) {
  auto v = std::make_shared<MeshView>();
  v->coordinator = coordinator;
  v->epoch = 1;
  v->alive = std::move(alive);
  v->known = v->unsuspected = v->alive.size();
  for (const auto& p : v->alive)
    if (coordinator && p.id == *coordinator) v->coordinator_address = p.address, v->coordinator_unsuspected = true;
  return v;
}

std::string Bundle() {
  auto b = EncodeResultBundle(std::vector<ProbeResult>{});
  EXPECT_TRUE(b.ok());
  return b.ok() ? *b : std::string();
}

TEST(WorkCore, AMeshOfOneLeasesScansAndFinishesEveryShardThroughItsOutputs) {
  MemoryShelf shelf;
  NodeId self{1, 1};
  WorkCore core(self, "dmz", WorkConfig{}, 7, shelf);
  core.UpdateView(View(self, {}));
  auto id = core.Submit(Definition(2), kT0);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(core.TakeDirty(), std::vector<ScanId>{*id}) << "a new scan is to be saved";
  EXPECT_TRUE(core.TakeRequests().empty()) << "nobody to push it to";

  int64_t now = kT0;
  for (uint32_t expected = 0; expected < 2; ++expected) {
    now += 10;
    core.Tick(now);
    auto commands = core.TakeScanCommands();
    ASSERT_EQ(commands.size(), 1u) << "shard " << expected;
    EXPECT_EQ(commands[0].kind, ScanCommand::Kind::kStart);
    EXPECT_EQ(commands[0].ref.shard, expected);
    EXPECT_EQ(commands[0].lease.holder, self);
    // The driver's engine finishes and puts the bundle on the shelf.
    std::string bundle = Bundle();
    ASSERT_TRUE(shelf.Keep(*core.Find(*id), "dmz", expected, bundle, BundleDigest(bundle)).ok());
    ShardOutcome out;
    out.ref = commands[0].ref;
    out.digest = BundleDigest(bundle);
    core.OnShardOutcome(out, now + 1);
  }
  const ScanState& s = *core.Find(*id);
  EXPECT_TRUE(s.pools[0][0].done.done);
  EXPECT_TRUE(s.pools[0][1].done.done);
  EXPECT_FALSE(core.TakeBroadcasts().empty()) << "grants and done records ride the gossip";
  EXPECT_EQ(core.TakeDirty(), std::vector<ScanId>{*id});
  EXPECT_TRUE(core.TakeDirty().empty());
  EXPECT_GT(core.NextWakeup(), now);
}

TEST(WorkCore, AWorkerAsksTheCoordinatorAndStartsOnItsGrant) {
  MemoryShelf shelf_a, shelf_b;
  NodeId a{1, 1}, b{2, 2};
  WorkCore coordinator(a, "dmz", WorkConfig{}, 1, shelf_a), worker(b, "dmz", WorkConfig{}, 2, shelf_b);
  coordinator.UpdateView(View(a, {{b, "b:1", "dmz"}}));
  worker.UpdateView(View(a, {{a, "a:1", "dmz"}}));
  auto id = coordinator.Submit(Definition(1), kT0);
  ASSERT_TRUE(id.ok());
  auto pushes = coordinator.TakeRequests();
  ASSERT_EQ(pushes.size(), 1u);
  EXPECT_EQ(pushes[0].address, "b:1");
  EXPECT_EQ(pushes[0].message.kind, WorkKind::kPush);
  WorkMessage ack = worker.OnMessage(pushes[0].message, "dmz", kT0 + 5);
  EXPECT_EQ(ack.kind, WorkKind::kAck);
  coordinator.OnReply(pushes[0].id, ack, kT0 + 6);
  // The coordinator itself takes the only shard first; the worker then
  // finds none free in its copy and asks nothing.
  coordinator.Tick(kT0 + 10);
  ASSERT_EQ(coordinator.TakeScanCommands().size(), 1u);
  // A second scan: the worker asks, the coordinator grants, it starts.
  auto second = coordinator.Submit(Definition(3), kT0 + 20);
  ASSERT_TRUE(second.ok());
  for (auto& r : coordinator.TakeRequests())
    if (r.message.kind == WorkKind::kPush) worker.OnMessage(r.message, "dmz", kT0 + 25);
  worker.Tick(kT0 + 30);
  WorkRequest ask;
  for (auto& r : worker.TakeRequests())
    if (r.message.kind == WorkKind::kLeaseRequest) ask = r;
  ASSERT_EQ(ask.message.kind, WorkKind::kLeaseRequest);
  EXPECT_EQ(ask.address, "a:1");
  // A member of another vantage may not ask for this one.
  EXPECT_EQ(coordinator.OnMessage(ask.message, "internet", kT0 + 31).kind, WorkKind::kRefused);
  WorkMessage grant = coordinator.OnMessage(ask.message, "dmz", kT0 + 31);
  ASSERT_EQ(grant.kind, WorkKind::kLeaseGrant);
  worker.OnReply(ask.id, grant, kT0 + 32);
  auto started = worker.TakeScanCommands();
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started[0].ref.scan, *second);
  EXPECT_EQ(started[0].lease.holder, b);
  // A reply to a request it never sent (or a second one) changes nothing.
  worker.OnReply(ask.id, grant, kT0 + 33);
  worker.OnReply(9999, grant, kT0 + 33);
  EXPECT_TRUE(worker.TakeScanCommands().empty());
}

}  // namespace
}  // namespace ndo::mesh
