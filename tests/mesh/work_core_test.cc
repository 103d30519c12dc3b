// WorkCore, the node logic of distributed scans, driven by hand: no store,
// no socket, no clock (every input carries its time), bundles on a shelf in
// memory. What comes out (requests, gossip, scan commands, states to save)
// is what the daemon's driver and the simulator carry out.
#include "mesh/work/work_core.h"

#include <gtest/gtest.h>

#include <algorithm>
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

// In a secured mesh the driver passes the vantage the sender's certificate
// binds: a member certified for "internet" that asks for, renews, or
// reports holding shards of the "dmz" pool is refused, and the
// coordinator's copy does not change (no lease, no adopted claim, nothing
// to save or gossip). With no vantage known ("": an insecure mesh) the
// request's own claim is taken, as before.
TEST(WorkCore, ALeaseOrRenewalForAPoolOfAnotherCertifiedVantageIsRefusedAndChangesNothing) {
  MemoryShelf shelf;
  NodeId a{1, 1}, b{2, 2}, c{3, 3};
  WorkCore coordinator(a, "dmz", WorkConfig{}, 1, shelf);
  coordinator.UpdateView(View(a, {{b, "b:1", "dmz"}, {c, "c:1", "dmz"}}), kT0);
  ScanDefinition def = Definition(4);  // 8 probes: 4 shards, enough for a, b and c
  def.spec.targets.addresses.Add({IpAddress::FromV4(0x7f000002).value(), IpAddress::FromV4(0x7f000004).value()});
  auto id = coordinator.Submit(def, kT0);
  ASSERT_TRUE(id.ok());
  coordinator.TakeRequests();
  coordinator.TakeBroadcasts();
  coordinator.TakeDirty();
  const ScanState before = *coordinator.Find(*id);

  WorkMessage ask;
  ask.kind = WorkKind::kLeaseRequest;
  ask.sender = b;
  ask.vantage = "dmz";
  ask.epoch = 1;
  // It also claims to hold shard 2 (as a worker reports its leases).
  ask.held = {{*id, "dmz", 2, ShardLease{b, 1, 1, kT0 + 60'000}}};
  WorkMessage refused = coordinator.OnMessage(ask, "internet", kT0 + 1);
  ASSERT_EQ(refused.kind, WorkKind::kRefused);
  EXPECT_EQ(refused.error, "member of vantage internet asked for vantage dmz");
  WorkMessage renew;
  renew.kind = WorkKind::kRenewRequest;
  renew.sender = b;
  renew.scan = *id;
  renew.vantage = "dmz";
  renew.shard = 2;
  renew.epoch = 1;
  renew.held = ask.held;
  refused = coordinator.OnMessage(renew, "internet", kT0 + 2);
  ASSERT_EQ(refused.kind, WorkKind::kRefused);
  EXPECT_EQ(refused.error, "member of vantage internet asked for vantage dmz");
  EXPECT_TRUE(coordinator.Find(*id)->pools == before.pools) << "no lease granted, renewed or adopted";
  EXPECT_TRUE(coordinator.TakeDirty().empty());
  EXPECT_TRUE(coordinator.TakeBroadcasts().empty());

  // The same member certified for dmz gets its lease, and renews it.
  WorkMessage grant = coordinator.OnMessage(ask, "dmz", kT0 + 3);
  ASSERT_EQ(grant.kind, WorkKind::kLeaseGrant);
  renew.shard = grant.shard;
  EXPECT_EQ(coordinator.OnMessage(renew, "internet", kT0 + 4).kind, WorkKind::kRefused);
  EXPECT_EQ(coordinator.Find(*id)->pools[0][grant.shard].lease, grant.lease) << "the refused renewal changed it";
  EXPECT_EQ(coordinator.OnMessage(renew, "dmz", kT0 + 5).kind, WorkKind::kRenewed);
  // Unknown vantage (insecure mesh): the claim is taken.
  ask.sender = c;
  ask.held.clear();
  WorkMessage unknown = coordinator.OnMessage(ask, "", kT0 + 6);
  EXPECT_EQ(unknown.kind, WorkKind::kLeaseGrant) << unknown.error;
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

// A daemon restarted with a lease it held takes it up again; with no
// coordinator yet (its seeds silent), the renewal that falls due waits for
// one, and its wake-ups stay in the future (a past one is a busy loop).
TEST(WorkCore, ARestartedNodeWithoutACoordinatorDoesNotWakeInThePast) {
  MemoryShelf shelf;
  NodeId self{2, 2}, peer{1, 1};
  WorkCore core(self, "dmz", WorkConfig{}, 3, shelf);
  auto state = NewScanState(Definition(2), HlcStamp{kT0, 0, peer});
  ASSERT_TRUE(state.ok());
  state->pools[0][0].lease = ShardLease{self, 1, 4, kT0 + 25'000};
  core.UpdateView(View(std::nullopt, {{peer, "a:1", "dmz"}}), kT0);
  core.Load({{state->id, *state}}, {}, kT0);
  ASSERT_EQ(core.worker().scanning_count(), 1u);
  for (int64_t now = kT0; now < kT0 + 25'000; now += 500) {
    core.Tick(now);
    EXPECT_GT(core.NextWakeup(), now) << now - kT0;
  }
}

// ---- Fetching the bundles of done shards ------------------------------------

// A state of `shards` pending shards, and the same with some of them done
// by `holders` with the bundle of `digest`.
ScanState Pending(uint32_t shards) {
  auto s = NewScanState(Definition(shards), HlcStamp{kT0, 0, NodeId{9, 9}});
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? *s : ScanState{};
}

ScanState WithDone(ScanState s, const std::vector<uint32_t>& shards, const Digest& digest,
                   std::vector<NodeId> holders) {
  std::sort(holders.begin(), holders.end());
  for (uint32_t k : shards) s.pools[0][k].done = ShardDone{true, 0, digest, holders};
  return s;
}

std::string Encoded(const ScanState& s) {
  auto bytes = EncodeScanState(s);
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return bytes.ok() ? *bytes : std::string();
}

// The bundle fetches among `requests`, by shard.
std::map<uint32_t, WorkRequest> Fetches(const std::vector<WorkRequest>& requests) {
  std::map<uint32_t, WorkRequest> out;
  for (const auto& r : requests)
    if (r.message.kind == WorkKind::kBundleFetch) {
      EXPECT_FALSE(out.count(r.message.shard)) << "shard " << r.message.shard << " fetched twice at once";
      out[r.message.shard] = r;
    }
  return out;
}

std::vector<uint32_t> Shards(const std::map<uint32_t, WorkRequest>& fetches) {
  std::vector<uint32_t> out;
  for (const auto& [k, r] : fetches) out.push_back(k);
  return out;
}

WorkMessage BundleData(const WorkRequest& fetch, std::string bundle) {
  WorkMessage m;
  m.kind = WorkKind::kBundleData;
  m.scan = fetch.message.scan;
  m.vantage = fetch.message.vantage;
  m.shard = fetch.message.shard;
  m.bundle = std::move(bundle);
  return m;
}

// The node keeps an index of the done shards whose bundle it lacks rather
// than walking every shard for them; each way a done record or a bundle
// comes in must keep that index true, or a fetch is missed for ever (or
// made again and again).
TEST(WorkCore, EveryDoneShardsBundleItLacksIsFetchedWhetherTheRecordCameWholeByDeltaOrAtLoad) {
  MemoryShelf shelf;
  NodeId a{1, 1}, b{2, 2}, gone{3, 3};
  const std::string bundle = Bundle();
  const Digest digest = BundleDigest(bundle);
  WorkCore core(b, "dmz", WorkConfig{}, 3, shelf);
  core.UpdateView(View(a, {{a, "a:1", "dmz"}}), kT0);
  const ScanState pending = Pending(6);
  const ScanId id = pending.id;
  const ScanId pool = PoolId(id, "dmz");
  int64_t now = kT0;
  // Each sync round (kSyncIntervalMs) looks for bundles to fetch.
  auto round = [&] {
    now += kSyncIntervalMs;
    core.Tick(now);
    return core.TakeRequests();
  };
  auto answer = [&](const std::map<uint32_t, WorkRequest>& fetches) {
    for (const auto& [k, r] : fetches) core.OnReply(r.id, BundleData(r, bundle), now);
  };

  // A scan unknown so far, pushed whole with shard 0 done: fetched from its
  // holder that is alive.
  WorkMessage push;
  push.kind = WorkKind::kPush;
  push.sender = a;
  push.states = {Encoded(WithDone(pending, {0}, digest, {a, gone}))};
  ASSERT_EQ(core.OnMessage(push, "dmz", now).kind, WorkKind::kAck);
  auto fetches = Fetches(round());
  ASSERT_EQ(Shards(fetches), std::vector<uint32_t>{0});
  EXPECT_EQ(fetches[0].to, a);
  EXPECT_EQ(fetches[0].message.scan, id);
  answer(fetches);
  EXPECT_EQ(core.held().at({pool, 0}), digest);
  EXPECT_TRUE(Fetches(round()).empty()) << "a bundle held is not fetched again";

  // A known scan merged whole from a sync's answer: only the shard newly
  // done is fetched.
  auto requests = round();
  WorkRequest sync;
  for (const auto& r : requests)
    if (r.message.kind == WorkKind::kSync) sync = r;
  ASSERT_EQ(sync.message.kind, WorkKind::kSync);
  WorkMessage reply;
  reply.kind = WorkKind::kSyncReply;
  reply.sender = a;
  reply.states = {Encoded(WithDone(pending, {0, 1}, digest, {a, gone}))};
  core.OnReply(sync.id, reply, now);
  fetches = Fetches(round());
  ASSERT_EQ(Shards(fetches), std::vector<uint32_t>{1});
  answer(fetches);

  // A done record by delta (the gossip).
  auto delta = ScanDeltaPayload(DeltaOf(WithDone(pending, {2}, digest, {a, gone}), false, {{0, 2}}));
  ASSERT_TRUE(delta.ok());
  core.OnPayload(*delta, now);
  fetches = Fetches(round());
  ASSERT_EQ(Shards(fetches), std::vector<uint32_t>{2});
  answer(fetches);

  // A bundle stored here as a replica before its shard is done is not
  // fetched once the record comes.
  WorkMessage put;
  put.kind = WorkKind::kBundlePut;
  put.sender = a;
  put.scan = id;
  put.vantage = "dmz";
  put.shard = 3;
  put.bundle = bundle;
  ASSERT_EQ(core.OnMessage(put, "dmz", now).kind, WorkKind::kAck);
  delta = ScanDeltaPayload(DeltaOf(WithDone(pending, {3}, digest, {a, b}), false, {{0, 3}}));
  ASSERT_TRUE(delta.ok());
  core.OnPayload(*delta, now);
  EXPECT_TRUE(Fetches(round()).empty());
  // Nor when the replica comes after the record that names it (a shard
  // scanned again), before the next round asks for it.
  delta = ScanDeltaPayload(DeltaOf(WithDone(pending, {5}, digest, {a, gone}), false, {{0, 5}}));
  ASSERT_TRUE(delta.ok());
  core.OnPayload(*delta, now);
  put.shard = 5;
  ASSERT_EQ(core.OnMessage(put, "dmz", now).kind, WorkKind::kAck);
  EXPECT_TRUE(Fetches(round()).empty());

  // Restarted: the states and held digests it saved are loaded; what is
  // done and not held, or held with another digest than the record's, is
  // fetched, and with no holder alive, from another member.
  MemoryShelf shelf2;
  WorkCore restarted(b, "dmz", WorkConfig{}, 3, shelf2);
  restarted.UpdateView(View(a, {{a, "a:1", "dmz"}}), kT0);
  Digest other = digest;
  other[0] ^= 1;
  restarted.Load({{id, WithDone(pending, {0, 1, 2, 4}, digest, {gone, NodeId{4, 4}})}},
                 {{{pool, 0}, digest}, {{pool, 1}, other}}, now);
  restarted.Tick(now + 1);
  fetches = Fetches(restarted.TakeRequests());
  ASSERT_EQ(Shards(fetches), (std::vector<uint32_t>{1, 2, 4}));
  EXPECT_EQ(fetches[4].to, a);
}

TEST(WorkCore, AtMostEightBundleFetchesAreInFlightAndTheNextGoesOutAsOneArrives) {
  MemoryShelf shelf;
  NodeId a{1, 1}, b{2, 2}, c{3, 3};
  const std::string bundle = Bundle();
  const Digest digest = BundleDigest(bundle);
  WorkCore core(b, "dmz", WorkConfig{}, 3, shelf);
  core.UpdateView(View(a, {{a, "a:1", "dmz"}, {c, "c:1", "dmz"}}), kT0);
  std::vector<uint32_t> all(kMaxBundleFetches + 3);
  for (uint32_t k = 0; k < all.size(); ++k) all[k] = k;
  const ScanState done = WithDone(Pending(static_cast<uint32_t>(all.size())), all, digest, {a, c});
  core.Load({{done.id, done}}, {}, kT0);
  core.Tick(kT0);
  auto first = Fetches(core.TakeRequests());
  ASSERT_EQ(first.size(), kMaxBundleFetches);
  EXPECT_EQ(first.rbegin()->first, kMaxBundleFetches - 1) << "in the order of the shards";
  // One arrives: the next goes out at once, not at the next round.
  core.OnReply(first[0].id, BundleData(first[0], bundle), kT0 + 10);
  auto next = Fetches(core.TakeRequests());
  ASSERT_EQ(Shards(next), std::vector<uint32_t>{kMaxBundleFetches});
  // One fails, one sends what does not match its record: both are asked
  // again at the next round (with the two slots they freed).
  core.OnReply(first[1].id, Status::Unavailable("connection refused"), kT0 + 20);
  core.OnReply(first[2].id, BundleData(first[2], "not the bundle"), kT0 + 20);
  EXPECT_TRUE(Fetches(core.TakeRequests()).empty());
  core.Tick(kT0 + kSyncIntervalMs);
  EXPECT_EQ(Shards(Fetches(core.TakeRequests())), (std::vector<uint32_t>{1, 2}));
  EXPECT_FALSE(core.held().count({PoolId(done.id, "dmz"), 2}));
}

}  // namespace
}  // namespace ndo::mesh
