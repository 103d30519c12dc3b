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

std::shared_ptr<const MeshView> ViewAt(uint64_t epoch, std::optional<NodeId> coordinator, std::vector<MeshPeer> alive) {
  auto v = std::const_pointer_cast<MeshView>(View(coordinator, std::move(alive)));
  v->epoch = epoch;
  return v;
}

// Carries every request `from` has queued to the core it is addressed to
// (those to a node not in `cores` fail, as to a dead one) and the answers
// back; returns the messages delivered, in order.
std::vector<WorkMessage> Deliver(WorkCore& from, const std::string& from_vantage,
                                 const std::map<NodeId, WorkCore*>& cores, int64_t now) {
  std::vector<WorkMessage> delivered;
  for (auto& r : from.TakeRequests()) {
    auto it = cores.find(r.to);
    if (it == cores.end()) {
      from.OnReply(r.id, Status::Unavailable("dead"), now);
      continue;
    }
    delivered.push_back(r.message);
    from.OnReply(r.id, it->second->OnMessage(r.message, from_vantage, now), now);
  }
  return delivered;
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
  core.UpdateView(View(self, {}), kT0);
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
  coordinator.UpdateView(View(a, {{b, "b:1", "dmz"}}), kT0);
  worker.UpdateView(View(a, {{a, "a:1", "dmz"}}), kT0);
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

// The gap meshsim found at N=1000: a coordinator grants a shard and dies
// before its gossip of the grant leaves; its successor, whose copy says the
// shard is free, must not grant it to another node while its scanner is
// alive. It grants nothing of a vantage until every alive member of it has
// reported the leases it holds, which the scanner does at once on seeing
// the new coordinator.
TEST(WorkCore, ASuccessorGrantsNoShardThatItsPredecessorGaveToAnAliveScanner) {
  MemoryShelf sa, sb, sc, sd;
  NodeId a{1, 1}, b{2, 2}, c{3, 3}, d{4, 4};
  MeshPeer pa{a, "a:1", "dmz"}, pb{b, "b:1", "dmz"}, pc{c, "c:1", "dmz"}, pd{d, "d:1", "dmz"};
  WorkCore old_coordinator(a, "dmz", WorkConfig{}, 1, sa), scanner(b, "dmz", WorkConfig{}, 2, sb),
      successor(c, "dmz", WorkConfig{}, 3, sc), idle(d, "dmz", WorkConfig{}, 4, sd);
  old_coordinator.UpdateView(ViewAt(1, a, {pb, pc, pd}), kT0);
  scanner.UpdateView(ViewAt(1, a, {pa, pc, pd}), kT0);
  successor.UpdateView(ViewAt(1, a, {pa, pb, pd}), kT0);
  idle.UpdateView(ViewAt(1, a, {pa, pb, pc}), kT0);
  std::map<NodeId, WorkCore*> all{{a, &old_coordinator}, {b, &scanner}, {c, &successor}, {d, &idle}};

  auto id = old_coordinator.Submit(Definition(4), kT0);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(Deliver(old_coordinator, "dmz", all, kT0 + 1).size(), 3u) << "the new scan pushed to b, c and d";
  // b asks the old coordinator and gets a shard (a's own worker took the
  // first); the gossip of that grant (from either of them) never reaches
  // anybody.
  scanner.Tick(kT0 + 10);
  Deliver(scanner, "dmz", all, kT0 + 11);
  auto started = scanner.TakeScanCommands();
  ASSERT_EQ(started.size(), 1u);
  const uint32_t held = started[0].ref.shard;
  EXPECT_TRUE(successor.Find(*id)->pools[0][held].lease.holder.empty()) << "c never heard of the grant";

  // a dies; c takes office in epoch 2.
  all.erase(a);
  int64_t t = kT0 + 8000;
  successor.UpdateView(ViewAt(2, c, {pb, pd}), t);
  idle.UpdateView(ViewAt(2, c, {pb, pc}), t);
  scanner.UpdateView(ViewAt(2, c, {pc, pd}), t);
  // d asks first: c has not heard from b yet, so nothing is granted.
  idle.Tick(t + 10);
  Deliver(idle, "dmz", all, t + 11);
  EXPECT_TRUE(idle.TakeScanCommands().empty()) << "granted before b reported its lease";
  // b renews with the new coordinator at once, and c adopts the lease.
  scanner.Tick(t + 20);
  size_t renewals = 0;
  for (const auto& m : Deliver(scanner, "dmz", all, t + 21)) renewals += m.kind == WorkKind::kRenewRequest;
  EXPECT_EQ(renewals, 1u) << "renewed at once, not after renew_every";
  const ShardLease& adopted = successor.Find(*id)->pools[0][held].lease;
  EXPECT_EQ(adopted.holder, b);
  EXPECT_EQ(adopted.epoch, 2u) << "renewed under the new epoch";
  EXPECT_TRUE(scanner.TakeScanCommands().empty()) << "b scans on";
  // Every member of the vantage has reported: c's own worker and d get
  // other shards, never b's (a's is free: a is dead).
  successor.Tick(t + 1100);  // its worker was refused too, and asks again after idle_poll
  auto own = successor.TakeScanCommands();
  ASSERT_EQ(own.size(), 1u);
  EXPECT_NE(own[0].ref.shard, held);
  idle.Tick(t + 1200);
  Deliver(idle, "dmz", all, t + 1201);
  auto granted = idle.TakeScanCommands();
  ASSERT_EQ(granted.size(), 1u);
  EXPECT_NE(granted[0].ref.shard, held);
  EXPECT_NE(granted[0].ref.shard, own[0].ref.shard);
}

TEST(WorkCore, ASuccessorGrantsOnceItsWindowEndsEvenIfAMemberNeverReports) {
  MemoryShelf sc, sd;
  NodeId b{2, 2}, c{3, 3}, d{4, 4};
  MeshPeer pb{b, "b:1", "dmz"}, pc{c, "c:1", "dmz"}, pd{d, "d:1", "dmz"};
  WorkConfig cfg;
  WorkCore successor(c, "dmz", cfg, 3, sc), idle(d, "dmz", cfg, 4, sd);
  successor.UpdateView(ViewAt(1, b, {pb, pd}), kT0);
  idle.UpdateView(ViewAt(1, b, {pb, pc}), kT0);
  auto id = idle.Submit(Definition(2), kT0);
  ASSERT_TRUE(id.ok());
  std::map<NodeId, WorkCore*> all{{c, &successor}};
  Deliver(idle, "dmz", all, kT0 + 1);
  ASSERT_NE(successor.Find(*id), nullptr);
  // b (silent, say its worker is stuck) stays alive in c's view.
  int64_t t = kT0 + 1000;
  successor.UpdateView(ViewAt(2, c, {pb, pd}), t);
  idle.UpdateView(ViewAt(2, c, {pb, pc}), t);
  // A claim of an epoch above the coordinator's is a bad member's: ignored.
  WorkMessage bogus;
  bogus.kind = WorkKind::kLeaseRequest;
  bogus.sender = d;
  bogus.vantage = "dmz";
  bogus.epoch = 2;
  bogus.held.push_back({*id, "dmz", 1, ShardLease{d, 99, 1, t + 10'000}});
  EXPECT_EQ(successor.OnMessage(bogus, "dmz", t + 5).kind, WorkKind::kRefused);
  EXPECT_EQ(successor.Find(*id)->pools[0][1].lease.epoch, 0u) << "a claim above our epoch was taken";
  idle.Tick(t + 10);
  Deliver(idle, "dmz", all, t + 11);
  EXPECT_TRUE(idle.TakeScanCommands().empty()) << "b has not reported";
  // After renew_every + request_timeout, a silent member no longer holds
  // grants back.
  int64_t after = t + (cfg.RenewEvery() + cfg.request_timeout).count() + 1;
  idle.Tick(after);
  Deliver(idle, "dmz", all, after + 1);
  EXPECT_EQ(idle.TakeScanCommands().size(), 1u);
}

}  // namespace
}  // namespace ndo::mesh
