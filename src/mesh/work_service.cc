#include "mesh/work_service.h"

#include <algorithm>

#include "mesh/log.h"
#include "mesh/pool_store.h"
#include "store/result_bundle.h"

namespace ndo::mesh {
namespace {

constexpr auto kSyncInterval = std::chrono::seconds(1);

}  // namespace

Result<std::string> ScanDeltaPayload(const ScanDelta& delta) {
  auto bytes = EncodeScanDelta(delta);
  if (!bytes.ok()) return bytes.status();
  return kScanDeltaPayload + *bytes;
}

std::string ScanDeltaKey(const ScanId& scan) {
  std::string key(1, kScanDeltaPayload);
  key.append(reinterpret_cast<const char*>(scan.data()), scan.size());
  return key + 'c';
}

std::string ScanDeltaKey(const ScanId& scan, uint32_t pool, uint32_t shard) {
  std::string key(1, kScanDeltaPayload);
  key.append(reinterpret_cast<const char*>(scan.data()), scan.size());
  key += 's';
  for (uint32_t x : {pool, shard})
    for (int i = 0; i < 4; ++i) key += static_cast<char>(x >> (8 * i));
  return key;
}

WorkService::WorkService(Store& store, NodeId self, std::string vantage, WorkConfig config, WorkEnv env,
                         uint64_t seed)
    : store_(store),
      self_(self),
      vantage_(std::move(vantage)),
      cfg_(config),
      env_(std::move(env)),
      rng_(seed),
      hlc_(self),
      worker_(self, vantage_, config, seed) {
  auto post = env_.post;
  host_ = std::make_unique<ScanHost>(store_, [post](std::function<void()> fn) { post(std::move(fn)); });
}

WorkService::~WorkService() {
  *alive_ = false;
  host_.reset();  // stops and joins the engines; their completions are dropped
}

Status WorkService::Load() {
  size_t skipped = 0;
  auto loaded = LoadScanStates(store_, &skipped);
  if (!loaded.ok()) return loaded.status();
  scans_ = std::move(*loaded);
  if (skipped) Log(LogLevel::kWarn, "scan states that do not decode were skipped", {{"count", uint64_t(skipped)}});
  // Which bundles this node holds: looked up once, then kept up to date.
  for (const auto& [id, s] : scans_)
    for (size_t v = 0; v < s.pools.size(); ++v) {
      ScanId pool = PoolId(id, s.definition.vantages[v]);
      for (uint32_t k = 0; k < s.pools[v].size(); ++k) {
        if (!s.pools[v][k].done.done) continue;
        if (auto bundle = LoadBundle(store_, pool, k); bundle.ok()) held_[{pool, k}] = BundleDigest(*bundle);
      }
    }
  // Leases this node held before a restart are still its own in everyone's
  // state (its id did not change), and nobody else will take them before
  // they expire: take them up again and scan them anew (whatever the old
  // process stored of them stays; the merge keeps the better answers).
  int64_t now = WallMs();
  for (const auto& [id, s] : scans_) {
    if (s.control.value != ScanControl::kRunning) continue;
    for (size_t v = 0; v < s.pools.size(); ++v) {
      if (s.definition.vantages[v] != vantage_) continue;
      for (uint32_t k = 0; k < s.pools[v].size(); ++k) {
        const ShardState& sh = s.pools[v][k];
        if (sh.done.done || sh.lease.holder != self_ || sh.lease.expires_ms <= now) continue;
        Log(LogLevel::kInfo, "taking up a lease held before the restart",
            {{"scan", ScanIdToHex(id)}, {"vantage", vantage_}, {"shard", uint64_t(k)}});
        worker_.OnGrant(LeaseGrant{{id, vantage_, k}, sh.lease}, now);
      }
    }
  }
  return Status::Ok();
}

WorkMessage WorkService::Base(WorkKind kind) const {
  WorkMessage m;
  m.kind = kind;
  m.sender = self_;
  return m;
}

WorkMessage WorkService::Refusal(std::string reason) const {
  WorkMessage m = Base(WorkKind::kRefused);
  m.error = std::move(reason);
  return m;
}

ScanState* WorkService::Find(const ScanId& id) {
  auto it = scans_.find(id);
  return it == scans_.end() ? nullptr : &it->second;
}

Result<ScanState*> WorkService::FindByPrefix(std::string_view prefix) {
  std::string p(prefix);
  std::transform(p.begin(), p.end(), p.begin(), [](unsigned char c) { return std::tolower(c); });
  if (p.size() < 4) return Status::InvalidArgument("a scan id prefix needs at least 4 hex digits");
  ScanState* found = nullptr;
  for (auto& [id, s] : scans_) {
    if (ScanIdToHex(id).rfind(p, 0) != 0) continue;
    if (found) return Status::InvalidArgument("scan id prefix " + p + " is ambiguous");
    found = &s;
  }
  if (!found) return Status::NotFound("no distributed scan " + p + " on this node");
  return found;
}

bool WorkService::Absorb(const ScanState& state) {
  ScanState* mine = Find(state.id);
  bool changed = false;
  if (!mine) {
    scans_[state.id] = state;
    changed = true;
  } else if (Status s = MergeScanState(*mine, state, &changed); !s.ok()) {
    Log(LogLevel::kWarn, "scan state not merged", {{"scan", ScanIdToHex(state.id)}, {"reason", s.message()}});
    return false;
  }
  if (changed) {
    hlc_.Observe(scans_[state.id].control.stamp, WallMs());
    Save(scans_[state.id]);
  }
  return changed;
}

void WorkService::Save(const ScanState& state) {
  if (Status s = SaveScanState(store_, state); !s.ok())
    Log(LogLevel::kError, "cannot save scan state", {{"reason", s.message()}});
}

void WorkService::Changed(const ScanState& state) {
  Save(state);
  Push({state.id});
}

void WorkService::GossipControl(const ScanState& state) {
  Save(state);
  Gossip(DeltaOf(state, true, {}), ScanDeltaKey(state.id));
}

void WorkService::GossipShard(const ScanState& state, size_t pool, uint32_t shard) {
  Save(state);
  auto v = static_cast<uint32_t>(pool);
  Gossip(DeltaOf(state, false, {{v, shard}}), ScanDeltaKey(state.id, v, shard));
}

void WorkService::Gossip(const ScanDelta& delta, std::string key) {
  if (!env_.broadcast) return;
  auto payload = ScanDeltaPayload(delta);
  // Only a broken state makes an unencodable delta; anti-entropy still
  // carries the whole state.
  if (!payload.ok()) return Log(LogLevel::kError, "scan delta not encoded", {{"reason", payload.status().message()}});
  env_.broadcast(std::move(key), std::move(*payload));
}

void WorkService::OnPayload(std::string_view payload) {
  if (payload.empty() || payload.front() != kScanDeltaPayload) return;
  uint64_t suppressed = 0;
  auto delta = DecodeScanDelta(payload.substr(1));
  if (!delta.ok()) {
    if (delta_log_.Allow(Clock::now(), suppressed))
      Log(LogLevel::kWarn, "scan delta refused", {{"reason", delta.status().message()}, {"suppressed", suppressed}});
    return;
  }
  ScanState* s = Find(delta->id);
  // A scan not known here yet: the next anti-entropy round brings it whole.
  if (!s) return;
  bool changed = false;
  if (Status st = MergeScanDelta(*s, *delta, &changed); !st.ok()) {
    if (delta_log_.Allow(Clock::now(), suppressed))
      Log(LogLevel::kWarn, "scan delta not merged",
          {{"scan", ScanIdToHex(delta->id)}, {"reason", st.message()}, {"suppressed", suppressed}});
    return;
  }
  if (!changed) return;
  // News to us: saved once, then passed on as what we now hold of those
  // fields (epidemic: a node that already knew it does not, so the
  // spreading dies out by itself).
  Save(*s);
  if (delta->control) {
    hlc_.Observe(s->control.stamp, WallMs());
    Gossip(DeltaOf(*s, true, {}), ScanDeltaKey(s->id));
  }
  for (const ShardDelta& sd : delta->shards)
    Gossip(DeltaOf(*s, false, {{sd.pool, sd.shard}}), ScanDeltaKey(s->id, sd.pool, sd.shard));
  RunActions();
}

void WorkService::Push(const std::vector<ScanId>& ids) {
  WorkMessage push = Base(WorkKind::kPush);
  for (const auto& id : ids) {
    const ScanState* s = Find(id);
    if (!s) continue;
    auto bytes = EncodeScanState(*s);
    if (bytes.ok()) push.states.push_back(std::move(*bytes));
  }
  if (push.states.empty()) return;
  std::vector<MeshPeer> targets = view_.alive;
  std::shuffle(targets.begin(), targets.end(), rng_);
  if (targets.size() > kMaxPushTargets) targets.resize(kMaxPushTargets);
  for (const auto& peer : targets) env_.request(peer.address, push, [](Result<WorkMessage>) {});
}

Result<ScanId> WorkService::Submit(ScanDefinition definition) {
  if (definition.vantages.empty()) {
    // Every vantage present now.
    std::set<std::string> vs{vantage_};
    for (const auto& p : view_.alive)
      if (!p.vantage.empty()) vs.insert(p.vantage);
    definition.vantages.assign(vs.begin(), vs.end());
  }
  definition.submitter = self_;
  definition.created_ms = WallMs();
  auto state = NewScanState(std::move(definition), hlc_.Now(WallMs()));
  if (!state.ok()) return state.status();
  ScanId id = state->id;
  scans_[id] = std::move(*state);
  Changed(scans_[id]);
  Log(LogLevel::kInfo, "scan submitted", {{"scan", ScanIdToHex(id)}, {"shards", uint64_t(scans_[id].definition.spec.shard_count)}});
  RunActions();
  return id;
}

Result<ScanId> WorkService::SetControl(std::string_view scan, ScanControl control) {
  auto found = FindByPrefix(scan);
  if (!found.ok()) return found.status();
  ScanState& s = **found;
  if (s.control.value == ScanControl::kStopped)
    return Status::Unavailable("scan " + ScanIdToHex(s.id) + " is stopped; a stop is final");
  ControlRegister next{control, hlc_.Now(WallMs())};
  s.control = JoinControl(s.control, next);
  GossipControl(s);
  Log(LogLevel::kInfo, "scan control", {{"scan", ScanIdToHex(s.id)}, {"state", std::string(ScanControlName(control))}});
  RunActions();
  return s.id;
}

void WorkService::OnMessage(const WorkMessage& m, const std::string& peer_vantage,
                            const std::function<void(WorkMessage)>& reply) {
  switch (m.kind) {
    case WorkKind::kSync: return reply(SyncReply(m));
    case WorkKind::kPush: {
      std::vector<ScanId> changed;
      for (const auto& bytes : m.states) {
        auto state = DecodeScanState(bytes);
        if (!state.ok()) return reply(Refusal("bad scan state: " + state.status().message()));
        if (Absorb(*state)) changed.push_back(state->id);
      }
      RunActions();
      return reply(Base(WorkKind::kAck));
    }
    case WorkKind::kLeaseRequest: return reply(Grant(m, peer_vantage));
    case WorkKind::kRenewRequest: return reply(Renew(m));
    case WorkKind::kBundlePut: return reply(PutBundle(m));
    case WorkKind::kBundleFetch: return reply(FetchBundle(m));
    default: return reply(Refusal("unexpected " + std::string(WorkKindName(m.kind))));
  }
}

WorkMessage WorkService::SyncReply(const WorkMessage& sync) {
  WorkMessage out = Base(WorkKind::kSyncReply);
  std::map<ScanId, Digest> theirs;
  for (const auto& d : sync.digests) theirs[d.scan] = d.digest;
  for (const auto& [id, s] : scans_) {
    auto it = theirs.find(id);
    auto mine = ScanStateDigest(s);
    if (!mine.ok()) continue;
    if (it != theirs.end() && it->second == *mine) continue;
    auto bytes = EncodeScanState(s);
    if (bytes.ok()) out.states.push_back(std::move(*bytes));
    if (it != theirs.end()) out.wanted.push_back(id);  // differs: theirs may hold what mine lacks
  }
  for (const auto& [id, digest] : theirs)
    if (!scans_.count(id)) out.wanted.push_back(id);
  return out;
}

void WorkService::SyncWithRandomPeer() {
  if (view_.alive.empty()) return;
  const MeshPeer& peer = view_.alive[std::uniform_int_distribution<size_t>(0, view_.alive.size() - 1)(rng_)];
  WorkMessage sync = Base(WorkKind::kSync);
  for (const auto& [id, s] : scans_)
    if (auto d = ScanStateDigest(s); d.ok()) sync.digests.push_back({id, *d});
  std::weak_ptr<bool> alive = alive_;
  std::string address = peer.address;
  env_.request(address, sync, [this, alive, address, to = peer.id](Result<WorkMessage> reply) {
    if (alive.expired() || !*alive.lock()) return;
    reachability_.Record(WallMs(), to, reply.ok());  // any answer shows the member within reach
    if (!reply.ok() || reply->kind != WorkKind::kSyncReply) return;
    for (const auto& bytes : reply->states)
      if (auto state = DecodeScanState(bytes); state.ok()) Absorb(*state);
    if (!reply->wanted.empty()) {
      WorkMessage push = Base(WorkKind::kPush);
      for (const auto& id : reply->wanted)
        if (const ScanState* s = Find(id))
          if (auto bytes = EncodeScanState(*s); bytes.ok()) push.states.push_back(std::move(*bytes));
      if (!push.states.empty()) env_.request(address, push, [](Result<WorkMessage>) {});
    }
    RunActions();
  });
}

WorkMessage WorkService::Grant(const WorkMessage& request, const std::string& peer_vantage) {
  if (!is_coordinator_) return Refusal("not the coordinator");
  // A member asks for its own vantage only (its membership record says
  // which); an unknown peer's claim is taken only when it names no other.
  if (!peer_vantage.empty() && peer_vantage != request.vantage)
    return Refusal("member of vantage " + peer_vantage + " asked for vantage " + request.vantage);
  std::set<NodeId> alive{self_};
  for (const auto& p : view_.alive) alive.insert(p.id);
  auto grant = GrantLease(scans_, request.sender, request.vantage, view_.epoch, WallMs(),
                          [&](const NodeId& id) { return alive.count(id) > 0; }, cfg_);
  if (!grant) return Refusal("no work");
  Log(LogLevel::kInfo, "lease granted",
      {{"scan", ScanIdToHex(grant->ref.scan)}, {"vantage", grant->ref.vantage}, {"shard", uint64_t(grant->ref.shard)},
       {"holder", grant->lease.holder.Hex()}, {"epoch", grant->lease.epoch}, {"counter", grant->lease.counter}});
  const ScanState& granted = scans_[grant->ref.scan];
  GossipShard(granted, *VantageIndex(granted, grant->ref.vantage), grant->ref.shard);
  WorkMessage out = Base(WorkKind::kLeaseGrant);
  out.scan = grant->ref.scan;
  out.vantage = grant->ref.vantage;
  out.shard = grant->ref.shard;
  out.lease = grant->lease;
  return out;
}

WorkMessage WorkService::Renew(const WorkMessage& request) {
  if (!is_coordinator_) return Refusal("not the coordinator");
  auto lease = RenewLease(scans_, request.sender, request.scan, request.vantage, request.shard, view_.epoch, WallMs(), cfg_);
  if (!lease.ok()) return Refusal(lease.status().message());
  // Renewals are frequent and change only the lease's expiry: saved, and
  // spread by the next anti-entropy rounds rather than gossiped (at a
  // thousand nodes they would crowd the gossip out).
  if (ScanState* s = Find(request.scan)) Save(*s);
  WorkMessage out = Base(WorkKind::kRenewed);
  out.scan = request.scan;
  out.vantage = request.vantage;
  out.shard = request.shard;
  out.lease = *lease;
  return out;
}

WorkMessage WorkService::PutBundle(const WorkMessage& request) {
  ScanState* s = Find(request.scan);
  if (!s) return Refusal("unknown scan " + ScanIdToHex(request.scan));
  if (!VantageIndex(*s, request.vantage)) return Refusal("scan has no pool for vantage " + request.vantage);
  if (request.shard >= s->definition.spec.shard_count) return Refusal("no such shard");
  // A shard scanned twice has two bundles: the one held here is kept
  // unless the incoming one is what the done record names (else a second
  // scanner's replica could overwrite every copy of the record's bundle),
  // or, before the shard is done, it comes from the shard's lease holder:
  // that scanner is the one that will declare it done. Refusing it too left
  // a rescanned shard without a second holder for ever once its first
  // scanner had replicated to the only other member and died (make demo
  // hung so, 1 run in 13).
  auto key = std::make_pair(PoolId(s->id, request.vantage), request.shard);
  Digest incoming = BundleDigest(request.bundle);
  const ShardState& shard = s->pools[*VantageIndex(*s, request.vantage)][request.shard];
  const ShardDone& done = shard.done;
  bool record_names_it = done.done && done.digest == incoming;
  bool from_lease_holder = !done.done && shard.lease.holder == request.sender;
  if (auto h = held_.find(key);
      h != held_.end() && h->second != incoming && !record_names_it && !from_lease_holder)
    return Refusal("holds another bundle of this shard");
  if (Status st = StoreBundle(store_, *s, request.vantage, request.shard, request.bundle); !st.ok())
    return Refusal("bundle not stored: " + st.message());
  held_[key] = incoming;
  return Base(WorkKind::kAck);
}

WorkMessage WorkService::FetchBundle(const WorkMessage& request) {
  auto bundle = LoadBundle(store_, PoolId(request.scan, request.vantage), request.shard);
  if (!bundle.ok()) return Refusal("bundle not held here");
  WorkMessage out = Base(WorkKind::kBundleData);
  out.scan = request.scan;
  out.vantage = request.vantage;
  out.shard = request.shard;
  out.bundle = std::move(*bundle);
  return out;
}

std::string WorkService::AddressOf(const NodeId& id) const {
  for (const auto& p : view_.alive)
    if (p.id == id) return p.address;
  return {};
}

void WorkService::Tick(Time now, const MeshView& view) {
  now_ = now;
  view_ = view;
  is_coordinator_ = view.coordinator && *view.coordinator == self_;
  if (now >= next_sync_) {
    next_sync_ = now + kSyncInterval;
    SyncWithRandomPeer();
    FetchMissingBundles();
  }
  RunActions();
}

Time WorkService::NextWakeup() const {
  Time t = next_sync_;
  int64_t w = worker_.NextWakeup();
  if (w > 0) {
    // The worker's wake-up is wall-clock; translate by the distance from now.
    int64_t delta = std::max<int64_t>(0, w - env_.wall_ms());
    t = std::min(t, Clock::now() + std::chrono::milliseconds(delta));
  }
  return t;
}

void WorkService::RunActions() {
  // The worker sees the states and the membership as they are now.
  WorkerView wv;
  wv.coordinator = view_.coordinator;
  wv.coordinator_address = view_.coordinator_address;
  size_t known = view_.known + 1, alive = view_.unsuspected + 1;
  wv.alive_members.push_back(self_);
  for (const auto& p : view_.alive) wv.alive_members.push_back(p.id);
  std::sort(wv.alive_members.begin(), wv.alive_members.end());
  wv.in_contact = InContact(view_.coordinator.has_value(), is_coordinator_ || view_.coordinator_unsuspected, alive,
                            known) &&
                  reachability_.Verdict(WallMs(), self_, wv.alive_members, known);
  wv.states = &scans_;
  wv.sole_member = view_.known == 0;
  worker_.Tick(WallMs(), wv);
  if (worker_.dead_man_engaged() != dead_man_logged_) {
    dead_man_logged_ = worker_.dead_man_engaged();
    if (dead_man_logged_)
      Log(LogLevel::kWarn, "dead man's switch engaged: cut off from the coordinator or most of the mesh; no new probes",
          {{"alive", uint64_t(alive)}, {"known", uint64_t(known)}});
    else
      Log(LogLevel::kInfo, "dead man's switch released: back in contact", {{"alive", uint64_t(alive)}});
  }
  for (int round = 0; round < 4; ++round) {
    auto actions = worker_.TakeActions();
    if (actions.empty()) break;
    for (const auto& a : actions) Execute(a);
    worker_.Tick(WallMs(), wv);
  }
}

void WorkService::Execute(const WorkAction& a) {
  switch (a.kind) {
    case WorkAction::Kind::kRequestLease: return RequestLease();
    case WorkAction::Kind::kRenew: return RenewShard(a.ref);
    case WorkAction::Kind::kStartScan: return StartShard(a.ref);
    case WorkAction::Kind::kStopScan:
      Log(LogLevel::kInfo, "shard stopped", {{"scan", ScanIdToHex(a.ref.scan)}, {"vantage", a.ref.vantage},
                                              {"shard", uint64_t(a.ref.shard)}, {"reason", a.reason}});
      return host_->Stop(a.ref);
    case WorkAction::Kind::kReplicate: return Replicate(a.ref, a.to);
    case WorkAction::Kind::kMarkDone: return MarkDone(a.ref, a.done);
  }
}

void WorkService::RequestLease() {
  WorkMessage req = Base(WorkKind::kLeaseRequest);
  req.vantage = vantage_;
  req.epoch = view_.epoch;
  std::weak_ptr<bool> alive = alive_;
  auto on_reply = [this, alive](Result<WorkMessage> reply) {
    if (alive.expired() || !*alive.lock()) return;
    if (!reply.ok()) {
      worker_.OnGrantRefused(reply.status().message(), WallMs());
    } else if (reply->kind == WorkKind::kLeaseGrant) {
      LeaseGrant g{{reply->scan, reply->vantage, reply->shard}, reply->lease};
      // Our copy learns the lease at once (the coordinator's push may come later).
      if (ScanState* s = Find(g.ref.scan))
        if (auto v = VantageIndex(*s, g.ref.vantage); v && g.ref.shard < s->pools[*v].size()) {
          ShardLease& l = s->pools[*v][g.ref.shard].lease;
          l = JoinLease(l, g.lease);
        }
      worker_.OnGrant(g, WallMs());
    } else {
      worker_.OnGrantRefused(reply->kind == WorkKind::kRefused ? reply->error : "unexpected reply", WallMs());
    }
    RunActions();
  };
  if (is_coordinator_) {
    // Asked of ourselves: no stream, but still through the event loop so
    // the worker is never re-entered from inside its own actions.
    WorkMessage reply = Grant(req, vantage_);
    env_.post([on_reply, reply]() mutable { on_reply(std::move(reply)); });
    return;
  }
  if (view_.coordinator_address.empty()) {
    env_.post([on_reply] { on_reply(Status::Unavailable("no coordinator")); });
    return;
  }
  env_.request(view_.coordinator_address, req, on_reply);
}

void WorkService::RenewShard(const ShardRef& ref) {
  WorkMessage req = Base(WorkKind::kRenewRequest);
  req.scan = ref.scan;
  req.vantage = ref.vantage;
  req.shard = ref.shard;
  req.epoch = view_.epoch;
  std::weak_ptr<bool> alive = alive_;
  auto on_reply = [this, alive, ref](Result<WorkMessage> reply) {
    if (alive.expired() || !*alive.lock()) return;
    if (reply.ok() && reply->kind == WorkKind::kRenewed) {
      worker_.OnRenewed(ref, reply->lease, WallMs());
    } else if (reply.ok() && reply->kind == WorkKind::kRefused && reply->error != "not the coordinator") {
      worker_.OnRenewRefused(ref, reply->error, WallMs());
    }
    // A transport failure or a node that is no longer coordinator: the
    // lease runs on; the next renewal goes to whoever coordinates then.
    RunActions();
  };
  if (is_coordinator_) {
    WorkMessage reply = Renew(req);
    env_.post([on_reply, reply]() mutable { on_reply(std::move(reply)); });
    return;
  }
  if (view_.coordinator_address.empty()) return;
  env_.request(view_.coordinator_address, req, on_reply);
}

void WorkService::StartShard(const ShardRef& ref) {
  ScanState* s = Find(ref.scan);
  std::weak_ptr<bool> alive = alive_;
  Status started = s ? host_->Start(*s, ref, [this, alive](ShardOutcome out) {
    if (alive.expired() || !*alive.lock()) return;
    if (!out.status.ok()) {
      Log(LogLevel::kError, "shard failed", {{"scan", ScanIdToHex(out.ref.scan)}, {"shard", uint64_t(out.ref.shard)},
                                              {"reason", out.status.message()}});
      worker_.OnRenewRefused(out.ref, "scan failed: " + out.status.message(), WallMs());
    } else if (!out.stopped) {
      held_[{PoolId(out.ref.scan, out.ref.vantage), out.ref.shard}] = out.digest;
      Log(LogLevel::kInfo, "shard scanned", {{"scan", ScanIdToHex(out.ref.scan)}, {"vantage", out.ref.vantage},
                                              {"shard", uint64_t(out.ref.shard)}, {"results", out.results},
                                              {"probes", out.probes_sent}});
      worker_.OnShardScanned(out.ref, out.results, out.digest, WallMs());
    }
    RunActions();
  })
                     : Status::NotFound("unknown scan");
  if (!started.ok()) {
    Log(LogLevel::kError, "shard not started", {{"scan", ScanIdToHex(ref.scan)}, {"reason", started.message()}});
    env_.post([this, alive, ref, why = started.message()] {
      if (alive.expired() || !*alive.lock()) return;
      worker_.OnRenewRefused(ref, why, WallMs());
      RunActions();
    });
  }
}

void WorkService::Replicate(const ShardRef& ref, const NodeId& to) {
  std::weak_ptr<bool> alive = alive_;
  auto fail = [this, alive, ref, to](const std::string& why) {
    env_.post([this, alive, ref, to, why] {
      if (alive.expired() || !*alive.lock()) return;
      Log(LogLevel::kWarn, "replica not stored", {{"shard", uint64_t(ref.shard)}, {"to", to.Hex()}, {"reason", why}});
      worker_.OnReplicaFailed(ref, to, WallMs());
      RunActions();
    });
  };
  auto bundle = LoadBundle(store_, PoolId(ref.scan, ref.vantage), ref.shard);
  std::string address = AddressOf(to);
  if (!bundle.ok()) return fail("bundle not held: " + bundle.status().message());
  if (address.empty()) return fail("member not alive");
  WorkMessage put = Base(WorkKind::kBundlePut);
  put.scan = ref.scan;
  put.vantage = ref.vantage;
  put.shard = ref.shard;
  put.bundle = std::move(*bundle);
  env_.request(address, put, [this, alive, ref, to](Result<WorkMessage> reply) {
    if (alive.expired() || !*alive.lock()) return;
    if (reply.ok() && reply->kind == WorkKind::kAck) {
      worker_.OnReplicaStored(ref, to, WallMs());
    } else {
      Log(LogLevel::kWarn, "replica not stored",
          {{"shard", uint64_t(ref.shard)}, {"to", to.Hex()},
           {"reason", reply.ok() ? reply->error : reply.status().message()}});
      worker_.OnReplicaFailed(ref, to, WallMs());
    }
    RunActions();
  });
}

void WorkService::MarkDone(const ShardRef& ref, const ShardDone& done) {
  ScanState* s = Find(ref.scan);
  if (!s) return;
  auto v = VantageIndex(*s, ref.vantage);
  if (!v || ref.shard >= s->pools[*v].size()) return;
  ShardDone& d = s->pools[*v][ref.shard].done;
  d = JoinDone(d, done);
  Log(LogLevel::kInfo, "shard done", {{"scan", ScanIdToHex(ref.scan)}, {"vantage", ref.vantage},
                                       {"shard", uint64_t(ref.shard)}, {"results", done.results}});
  GossipShard(*s, *v, ref.shard);
}

void WorkService::FetchMissingBundles() {
  for (const auto& [id, s] : scans_) {
    for (size_t v = 0; v < s.pools.size(); ++v) {
      const std::string& vantage = s.definition.vantages[v];
      ScanId pool = PoolId(id, vantage);
      for (uint32_t k = 0; k < s.pools[v].size(); ++k) {
        if (fetching_.size() >= kMaxBundleFetches) return;
        const ShardDone& done = s.pools[v][k].done;
        if (!done.done || fetching_.count({pool, k})) continue;
        if (auto h = held_.find({pool, k}); h != held_.end() && h->second == done.digest) continue;
        // From a holder that is alive, picked at random, else from any
        // alive member: every node that fetched a bundle serves it too, so
        // a shard whose two holders are both gone is still found. A member
        // without it, or with another bundle of the shard, says so or
        // sends what does not match, and the next round asks another.
        std::vector<std::string> holders;
        for (const auto& h : done.holders)
          if (h != self_)
            if (std::string a = AddressOf(h); !a.empty()) holders.push_back(std::move(a));
        std::string address;
        if (!holders.empty())
          address = holders[std::uniform_int_distribution<size_t>(0, holders.size() - 1)(rng_)];
        else if (!view_.alive.empty())
          address = view_.alive[std::uniform_int_distribution<size_t>(0, view_.alive.size() - 1)(rng_)].address;
        if (address.empty()) continue;
        fetching_.insert({pool, k});
        WorkMessage fetch = Base(WorkKind::kBundleFetch);
        fetch.scan = id;
        fetch.vantage = vantage;
        fetch.shard = k;
        std::weak_ptr<bool> alive = alive_;
        Digest want = done.digest;
        ScanId scan_id = id;  // a copy: clang does not capture structured bindings
        env_.request(address, fetch, [this, alive, scan_id, vantage, pool, k, want](Result<WorkMessage> reply) {
          if (alive.expired() || !*alive.lock()) return;
          fetching_.erase({pool, k});
          if (!reply.ok() || reply->kind != WorkKind::kBundleData) return;
          if (BundleDigest(reply->bundle) != want) {
            Log(LogLevel::kWarn, "fetched bundle does not match its digest", {{"shard", uint64_t(k)}});
            return;
          }
          ScanState* st = Find(scan_id);
          if (!st) return;
          if (Status s = StoreBundle(store_, *st, vantage, k, reply->bundle); !s.ok()) {
            Log(LogLevel::kError, "cannot store fetched bundle", {{"reason", s.message()}});
            return;
          }
          held_[{pool, k}] = want;
          FetchMissingBundles();  // the next one at once, not at the next round
        });
      }
    }
  }
}

WorkStatus WorkService::status() const {
  WorkStatus st;
  st.scans = scans_.size();
  st.running_shards = host_->running();
  st.probes_sent = host_->probes_sent();
  st.dead_man_engaged = worker_.dead_man_engaged();
  return st;
}

}  // namespace ndo::mesh
