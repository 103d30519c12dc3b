#include "mesh/work/work_core.h"

#include <algorithm>

#include "store/result_bundle.h"

namespace ndo::mesh {
namespace {

// The log limiter measures windows only: wall ms do as its time base.
std::chrono::steady_clock::time_point LogTime(int64_t now_ms) {
  return std::chrono::steady_clock::time_point(std::chrono::milliseconds(now_ms));
}

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

MeshView MeshViewOf(const Membership& core, const std::function<bool(const NodeId&)>& excluded) {
  MeshView v;
  v.coordinator = core.Coordinator();
  v.epoch = core.epoch();
  for (const auto& [id, m] : core.members()) {
    if (!m.info) continue;
    ++v.known;
    if (m.state != MemberState::kAlive && m.state != MemberState::kSuspect) continue;
    if (excluded && excluded(id)) continue;
    v.alive.push_back({id, m.info->address, m.info->vantage, m.info->allow});
    bool unsuspected = m.state == MemberState::kAlive;
    v.unsuspected += unsuspected;
    if (v.coordinator && *v.coordinator == id) {
      v.coordinator_address = m.info->address;
      v.coordinator_unsuspected = unsuspected;
    }
  }
  return v;
}

WorkCore::WorkCore(NodeId self, std::string vantage, WorkConfig config, uint64_t seed, BundleShelf& shelf,
                   RecordKeys* keys)
    : self_(self),
      vantage_(std::move(vantage)),
      cfg_(config),
      shelf_(shelf),
      keys_(keys),
      rng_(seed),
      hlc_(self),
      worker_(self, vantage_, config, seed) {
  alive_ids_.push_back(self_);
}

void WorkCore::SetPolicy(std::optional<IntervalSet> policy) {
  policy_ = policy;
  worker_.SetPolicy(std::move(policy));
}

void WorkCore::Load(WorkStates states, std::map<std::pair<ScanId, uint32_t>, Digest> held, int64_t now_ms) {
  scans_ = std::move(states);
  held_ = std::move(held);
  TrackAll();
  now_ms_ = now_ms;
  // Leases this node held before a restart are still its own in everyone's
  // state (its id did not change), and nobody else will take them before
  // they expire: take them up again and scan them anew (whatever the old
  // process stored of them stays; the merge keeps the better answers).
  for (const auto& [id, s] : scans_) {
    if (s.control.value != ScanControl::kRunning) continue;
    for (size_t v = 0; v < s.pools.size(); ++v) {
      if (s.definition.vantages[v] != vantage_) continue;
      for (uint32_t k = 0; k < s.pools[v].size(); ++k) {
        const ShardState& sh = s.pools[v][k];
        if (sh.done.done || sh.lease.holder != self_ || sh.lease.expires_ms <= now_ms) continue;
        Log(LogLevel::kInfo, "taking up a lease held before the restart",
            {{"scan", ScanIdToHex(id)}, {"vantage", vantage_}, {"shard", uint64_t(k)}});
        worker_.OnGrant(LeaseGrant{{id, vantage_, k}, sh.lease}, now_ms);
      }
    }
  }
}

WorkMessage WorkCore::Base(WorkKind kind) const {
  WorkMessage m;
  m.kind = kind;
  m.sender = self_;
  return m;
}

WorkMessage WorkCore::Refusal(std::string reason) const {
  WorkMessage m = Base(WorkKind::kRefused);
  m.error = std::move(reason);
  return m;
}

const ScanState* WorkCore::Find(const ScanId& id) const {
  auto it = scans_.find(id);
  return it == scans_.end() ? nullptr : &it->second;
}

ScanState* WorkCore::FindMutable(const ScanId& id) {
  auto it = scans_.find(id);
  return it == scans_.end() ? nullptr : &it->second;
}

Result<ScanState*> WorkCore::FindByPrefix(std::string_view prefix) {
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

void WorkCore::Changed(const ScanId& id) {
  cache_.erase(id);
  dirty_.insert(id);
}

const std::string* WorkCore::Encoded(const ScanId& id) {
  if (auto it = cache_.find(id); it != cache_.end()) return &it->second.bytes;
  const ScanState* s = Find(id);
  if (!s) return nullptr;
  auto bytes = EncodeScanState(*s);
  if (!bytes.ok()) return nullptr;
  Cached& c = cache_[id];
  c.digest = EncodedScanStateDigest(*bytes);
  c.bytes = std::move(*bytes);
  return &c.bytes;
}

std::optional<Digest> WorkCore::DigestOf(const ScanId& id) {
  if (!Encoded(id)) return std::nullopt;
  return cache_[id].digest;
}

bool WorkCore::Absorb(const ScanState& state, int64_t now_ms) {
  ScanState* mine = FindMutable(state.id);
  bool changed = false;
  if (!mine) {
    mine = &(scans_[state.id] = state);
    changed = true;
    TrackScan(*mine);
  } else {
    std::vector<std::pair<uint32_t, uint32_t>> done_changed;
    if (Status s = MergeScanState(*mine, state, &changed, &done_changed); !s.ok()) {
      Log(LogLevel::kWarn, "scan state not merged", {{"scan", ScanIdToHex(state.id)}, {"reason", s.message()}});
      return false;
    }
    for (const auto& [v, k] : done_changed) Track(*mine, v, k);
  }
  if (changed) {
    hlc_.Observe(mine->control.stamp, now_ms);
    Changed(state.id);
  }
  return changed;
}

void WorkCore::GossipControl(const ScanState& state) {
  Changed(state.id);
  Gossip(DeltaOf(state, true, {}), ScanDeltaKey(state.id));
}

void WorkCore::GossipShard(const ScanState& state, size_t pool, uint32_t shard) {
  Changed(state.id);
  auto v = static_cast<uint32_t>(pool);
  Gossip(DeltaOf(state, false, {{v, shard}}), ScanDeltaKey(state.id, v, shard));
}

void WorkCore::Gossip(const ScanDelta& delta, std::string key) {
  auto payload = ScanDeltaPayload(delta);
  // Only a broken state makes an unencodable delta; anti-entropy still
  // carries the whole state.
  if (!payload.ok()) return Log(LogLevel::kError, "scan delta not encoded", {{"reason", payload.status().message()}});
  broadcasts_.push_back({std::move(key), std::move(*payload)});
}

void WorkCore::OnPayload(std::string_view payload, int64_t now_ms) {
  now_ms_ = now_ms;
  if (payload.empty() || payload.front() != kScanDeltaPayload) return;
  uint64_t suppressed = 0;
  auto delta = DecodeScanDelta(payload.substr(1));
  if (!delta.ok()) {
    if (delta_log_.Allow(LogTime(now_ms), suppressed))
      Log(LogLevel::kWarn, "scan delta refused", {{"reason", delta.status().message()}, {"suppressed", suppressed}});
    return;
  }
  ScanState* s = FindMutable(delta->id);
  // A scan not known here yet: the next anti-entropy round brings it whole.
  if (!s) return;
  bool changed = false;
  if (Status st = MergeScanDelta(*s, *delta, &changed); !st.ok()) {
    if (delta_log_.Allow(LogTime(now_ms), suppressed))
      Log(LogLevel::kWarn, "scan delta not merged",
          {{"scan", ScanIdToHex(delta->id)}, {"reason", st.message()}, {"suppressed", suppressed}});
    return;
  }
  if (!changed) return;
  // News to us: passed on as what we now hold of those fields (epidemic: a
  // node that already knew it does not, so the spreading dies out by itself).
  Changed(s->id);
  for (const ShardDelta& sd : delta->shards) Track(*s, sd.pool, sd.shard);
  if (delta->control) {
    hlc_.Observe(s->control.stamp, now_ms);
    Gossip(DeltaOf(*s, true, {}), ScanDeltaKey(s->id));
  }
  for (const ShardDelta& sd : delta->shards)
    Gossip(DeltaOf(*s, false, {{sd.pool, sd.shard}}), ScanDeltaKey(s->id, sd.pool, sd.shard));
  RunActions();
}

uint64_t WorkCore::Send(const MeshPeer& to, WorkMessage message, Pending pending) {
  uint64_t id = next_request_++;
  pending.to = to.id;
  pending.address = to.address;
  pending_[id] = pending;
  requests_.push_back({id, to.id, to.address, std::move(message)});
  return id;
}

void WorkCore::Push(const std::vector<ScanId>& ids) {
  WorkMessage push = Base(WorkKind::kPush);
  for (const auto& id : ids)
    if (const std::string* bytes = Encoded(id)) push.states.push_back(*bytes);
  if (push.states.empty()) return;
  std::vector<const MeshPeer*> targets;
  for (const auto& p : view_->alive) targets.push_back(&p);
  std::shuffle(targets.begin(), targets.end(), rng_);
  if (targets.size() > kMaxPushTargets) targets.resize(kMaxPushTargets);
  for (const MeshPeer* peer : targets) Send(*peer, push, Pending(Purpose::kPush));
}

Result<ScanId> WorkCore::Submit(ScanDefinition definition, int64_t now_ms) {
  now_ms_ = now_ms;
  if (definition.vantages.empty()) {
    // Every vantage present now.
    std::set<std::string> vs{vantage_};
    for (const auto& p : view_->alive)
      if (!p.vantage.empty()) vs.insert(p.vantage);
    definition.vantages.assign(vs.begin(), vs.end());
  }
  definition.submitter = self_;
  definition.created_ms = now_ms;
  auto state = NewScanState(std::move(definition), hlc_.Now(now_ms));
  if (!state.ok()) return state.status();
  ScanId id = state->id;
  scans_[id] = std::move(*state);
  Changed(id);
  TrackScan(scans_[id]);  // nothing is done in a new state: tracked so that the index never relies on it
  Push({id});
  Log(LogLevel::kInfo, "scan submitted", {{"scan", ScanIdToHex(id)}, {"shards", uint64_t(scans_[id].definition.spec.shard_count)}});
  RunActions();
  return id;
}

Result<ScanId> WorkCore::SetControl(std::string_view scan, ScanControl control, int64_t now_ms) {
  now_ms_ = now_ms;
  auto found = FindByPrefix(scan);
  if (!found.ok()) return found.status();
  ScanState& s = **found;
  if (s.control.value == ScanControl::kStopped)
    return Status::Unavailable("scan " + ScanIdToHex(s.id) + " is stopped; a stop is final");
  ControlRegister next{control, hlc_.Now(now_ms)};
  s.control = JoinControl(s.control, next);
  GossipControl(s);
  Log(LogLevel::kInfo, "scan control", {{"scan", ScanIdToHex(s.id)}, {"state", std::string(ScanControlName(control))}});
  RunActions();
  return s.id;
}

WorkMessage WorkCore::OnMessage(const WorkMessage& m, const std::string& peer_vantage, int64_t now_ms) {
  now_ms_ = now_ms;
  switch (m.kind) {
    case WorkKind::kSync: return SyncReply(m);
    case WorkKind::kPush: {
      for (const auto& bytes : m.states) {
        auto state = DecodeScanState(bytes);
        if (!state.ok()) {
          RunActions();
          return Refusal("bad scan state: " + state.status().message());
        }
        Absorb(*state, now_ms);
      }
      RunActions();
      return Base(WorkKind::kAck);
    }
    case WorkKind::kLeaseRequest: return Grant(m, peer_vantage);
    case WorkKind::kRenewRequest: return Renew(m, peer_vantage);
    case WorkKind::kBundlePut: return PutBundle(m);
    case WorkKind::kBundleFetch: return FetchBundle(m);
    default: return Refusal("unexpected " + std::string(WorkKindName(m.kind)));
  }
}

WorkMessage WorkCore::SyncReply(const WorkMessage& sync) {
  WorkMessage out = Base(WorkKind::kSyncReply);
  std::map<ScanId, Digest> theirs;
  for (const auto& d : sync.digests) theirs[d.scan] = d.digest;
  for (const auto& [id, s] : scans_) {
    auto it = theirs.find(id);
    auto mine = DigestOf(id);
    if (!mine) continue;
    if (it != theirs.end() && it->second == *mine) continue;
    out.states.push_back(*Encoded(id));
    if (it != theirs.end()) out.wanted.push_back(id);  // differs: theirs may hold what mine lacks
  }
  for (const auto& [id, digest] : theirs)
    if (!scans_.count(id)) out.wanted.push_back(id);
  return out;
}

void WorkCore::SyncWithRandomPeer() {
  if (view_->alive.empty()) return;
  const MeshPeer& peer = view_->alive[std::uniform_int_distribution<size_t>(0, view_->alive.size() - 1)(rng_)];
  WorkMessage sync = Base(WorkKind::kSync);
  for (const auto& [id, s] : scans_)
    if (auto d = DigestOf(id)) sync.digests.push_back({id, *d});
  Send(peer, std::move(sync), Pending(Purpose::kSync));
}

WorkMessage WorkCore::Grant(const WorkMessage& request, const std::string& peer_vantage) {
  if (!is_coordinator_) return Refusal("not the coordinator");
  if (auto refused = OtherVantage(request, peer_vantage)) return *refused;
  AdoptHeld(request);
  // Only shards the member's scan policy holds: the one its record
  // publishes (it enforces the policy itself too, at the probe). A member
  // not in the view has no record to tell.
  const std::optional<IntervalSet>* policy = &policy_;
  if (request.sender != self_) {
    const MeshPeer* peer = PeerOf(request.sender);
    if (!peer) return Refusal("not a member known alive: its scan policy is unknown");
    policy = &peer->allow;
  }
  if (*policy && (*policy)->empty()) return Refusal("no scan policy: this member takes no distributed work");
  if (now_ms_ < adopt_until_ms_ && !VantageReported(request.vantage)) return Refusal("coordinator taking office");
  auto grant = GrantLease(scans_, request.sender, request.vantage, view_->epoch, now_ms_,
                          [&](const NodeId& id) { return AliveOrSelf(id); }, cfg_, adopt_until_ms_, *policy);
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

void WorkCore::AdoptHeld(const WorkMessage& request) {
  // What the sender says it holds, joined into our copy like any lease
  // that rode the gossip: a lease our predecessor granted and we never
  // heard of wins over the older one we have, and one we have since
  // granted anew (a higher epoch) wins over it. A claim of an epoch above
  // ours, or one that runs longer than any grant could, is a bad member's
  // and is left out: it would hold the shard for ever.
  int64_t latest_expiry = now_ms_ + 2 * cfg_.lease_duration.count();
  for (const HeldLease& h : request.held) {
    if (h.lease.holder != request.sender || h.vantage != request.vantage || h.lease.epoch > view_->epoch ||
        h.lease.expires_ms > latest_expiry)
      continue;
    ScanState* s = FindMutable(h.scan);
    if (!s) continue;
    auto v = VantageIndex(*s, h.vantage);
    if (!v || h.shard >= s->pools[*v].size()) continue;
    ShardState& sh = s->pools[*v][h.shard];
    if (sh.done.done) continue;
    ShardLease joined = JoinLease(sh.lease, h.lease);
    if (joined == sh.lease) continue;
    sh.lease = joined;
    Changed(s->id);
    GossipShard(*s, *v, h.shard);
  }
  reported_.insert(request.sender);
}

bool WorkCore::VantageReported(const std::string& vantage) const {
  // A member without a scan policy holds no lease and never asks: not
  // waited for.
  bool self_scans = !policy_ || !policy_->empty();
  if (vantage == vantage_ && self_scans && !reported_.count(self_)) return false;
  for (const auto& p : view_->alive)
    if (p.vantage == vantage && (!p.allow || !p.allow->empty()) && !reported_.count(p.id)) return false;
  return true;
}

// A member asks for (and renews, and reports holding) work of its own
// vantage only: the one its certificate binds in a secured mesh, else its
// membership record's. An unknown peer's claim is taken only when it names
// no other. Refused before anything is adopted: nothing changes.
std::optional<WorkMessage> WorkCore::OtherVantage(const WorkMessage& request, const std::string& peer_vantage) {
  if (peer_vantage.empty() || peer_vantage == request.vantage) return std::nullopt;
  std::string why = "member of vantage " + peer_vantage + " asked for vantage " + request.vantage;
  Log(LogLevel::kWarn, "work request refused",
      {{"kind", WorkKindName(request.kind)}, {"from", request.sender.Hex()}, {"reason", why}});
  return Refusal(why);
}

WorkMessage WorkCore::Renew(const WorkMessage& request, const std::string& peer_vantage) {
  if (!is_coordinator_) return Refusal("not the coordinator");
  if (auto refused = OtherVantage(request, peer_vantage)) return *refused;
  AdoptHeld(request);
  auto lease =
      RenewLease(scans_, request.sender, request.scan, request.vantage, request.shard, view_->epoch, now_ms_, cfg_);
  if (!lease.ok()) return Refusal(lease.status().message());
  // Renewals are frequent and change only the lease's expiry: saved, and
  // spread by the next anti-entropy rounds rather than gossiped (at a
  // thousand nodes they would crowd the gossip out).
  Changed(request.scan);
  WorkMessage out = Base(WorkKind::kRenewed);
  out.scan = request.scan;
  out.vantage = request.vantage;
  out.shard = request.shard;
  out.lease = *lease;
  return out;
}

WorkMessage WorkCore::PutBundle(const WorkMessage& request) {
  const ScanState* s = Find(request.scan);
  if (!s) return Refusal("unknown scan " + ScanIdToHex(request.scan));
  auto v = VantageIndex(*s, request.vantage);
  if (!v) return Refusal("scan has no pool for vantage " + request.vantage);
  if (request.shard >= s->pools[*v].size()) return Refusal("no such shard");
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
  const ShardState& shard = s->pools[*v][request.shard];
  bool record_names_it = shard.done.done && shard.done.digest == incoming;
  bool from_lease_holder = !shard.done.done && shard.lease.holder == request.sender;
  if (auto h = held_.find(key); h != held_.end() && h->second != incoming && !record_names_it && !from_lease_holder)
    return Refusal("holds another bundle of this shard");
  if (Status st = shelf_.Keep(*s, request.vantage, request.shard, request.bundle, incoming); !st.ok())
    return Refusal("bundle not stored: " + st.message());
  Hold(*s, *v, request.shard, incoming);
  return Base(WorkKind::kAck);
}

WorkMessage WorkCore::FetchBundle(const WorkMessage& request) {
  auto bundle = shelf_.Load(PoolId(request.scan, request.vantage), request.shard);
  if (!bundle.ok()) return Refusal("bundle not held here");
  WorkMessage out = Base(WorkKind::kBundleData);
  out.scan = request.scan;
  out.vantage = request.vantage;
  out.shard = request.shard;
  out.bundle = std::move(*bundle);
  return out;
}

const MeshPeer* WorkCore::PeerOf(const NodeId& id) const {
  for (const auto& p : view_->alive)
    if (p.id == id) return &p;
  return nullptr;
}

bool WorkCore::AliveOrSelf(const NodeId& id) const {
  return std::binary_search(alive_ids_.begin(), alive_ids_.end(), id);
}

void WorkCore::UpdateView(std::shared_ptr<const MeshView> view, int64_t now_ms) {
  if (!view) return;
  now_ms_ = now_ms;
  view_ = std::move(view);
  alive_ids_.clear();
  alive_ids_.reserve(view_->alive.size() + 1);
  alive_ids_.push_back(self_);
  for (const auto& p : view_->alive) alive_ids_.push_back(p.id);
  std::sort(alive_ids_.begin(), alive_ids_.end());
  bool coordinator = view_->coordinator && *view_->coordinator == self_;
  if (coordinator && (!is_coordinator_ || coordinator_epoch_ != view_->epoch)) {
    // Taking office: the predecessor's leases are adopted as their holders
    // renew with us, which each does within renew_every (a renewal lost to
    // a timeout is tried again after request_timeout).
    // Its predecessor may also have granted leases that this node never
    // heard of (it died before its gossip left, or our copy lags): until
    // every alive member of a vantage has reported the leases it holds (each
    // does with its next request, and renews at once on seeing a new
    // coordinator), nothing of that vantage is granted anew, or a shard
    // whose scanner is alive would be scanned twice (meshsim work, N=1000).
    // Epoch 1 is the cluster's first coordinator: it has no predecessor.
    coordinator_epoch_ = view_->epoch;
    reported_.clear();
    adopt_until_ms_ = view_->epoch <= 1 ? 0 : now_ms_ + (cfg_.RenewEvery() + cfg_.request_timeout).count();
    if (adopt_until_ms_)
      Log(LogLevel::kInfo, "coordinator taking office: new grants wait until the members have reported their leases",
          {{"epoch", view_->epoch}});
  }
  is_coordinator_ = coordinator;
}

void WorkCore::Tick(int64_t now_ms) {
  now_ms_ = now_ms;
  if (now_ms >= next_sync_ms_) {
    next_sync_ms_ = now_ms + kSyncIntervalMs;
    SyncWithRandomPeer();
    FetchMissingBundles();
  }
  RunActions();
}

int64_t WorkCore::NextWakeup() const {
  int64_t t = next_sync_ms_;
  int64_t w = worker_.NextWakeup();
  if (w > 0) t = std::min(t, w);
  return t;
}

void WorkCore::RunActions() {
  // The worker sees the states and the membership as they are now.
  WorkerView wv;
  wv.coordinator = view_->coordinator;
  wv.coordinator_address = view_->coordinator_address;
  size_t known = view_->known + 1, alive = view_->unsuspected + 1;
  wv.alive_members = alive_ids_;
  wv.in_contact = InContact(view_->coordinator.has_value(), is_coordinator_ || view_->coordinator_unsuspected, alive,
                            known) &&
                  reachability_.Verdict(now_ms_, self_, wv.alive_members, known);
  wv.states = &scans_;
  wv.sole_member = view_->known == 0;
  worker_.Tick(now_ms_, wv);
  if (worker_.dead_man_engaged() != dead_man_logged_) {
    dead_man_logged_ = worker_.dead_man_engaged();
    if (dead_man_logged_)
      Log(LogLevel::kWarn, "dead man's switch engaged: cut off from the coordinator or most of the mesh; no new probes",
          {{"alive", uint64_t(alive)}, {"known", uint64_t(known)}});
    else
      Log(LogLevel::kInfo, "dead man's switch released: back in contact", {{"alive", uint64_t(alive)}});
  }
  // A few rounds: an action's local answer (this node coordinates, or a
  // request that cannot leave) may make the worker act again, e.g. start
  // the shard it was just granted, which must not wait for the next Tick.
  for (int round = 0; round < 8; ++round) {
    auto actions = worker_.TakeActions();
    if (actions.empty()) {
      if (local_.empty() || draining_) break;
      DrainLocal();
    }
    for (const auto& a : actions) Execute(a);
    worker_.Tick(now_ms_, wv);
  }
  DrainLocal();
}

void WorkCore::AnswerLocally(Pending p, Result<WorkMessage> reply) { local_.emplace_back(std::move(p), std::move(reply)); }

void WorkCore::DrainLocal() {
  // Answers to ourselves run the worker again, which may ask again: the
  // outer call drains what the inner ones add.
  if (draining_) return;
  draining_ = true;
  for (int n = 0; !local_.empty() && n < 64; ++n) {
    auto [p, reply] = std::move(local_.front());
    local_.pop_front();
    HandleReply(p, std::move(reply));
  }
  draining_ = false;
}

void WorkCore::Execute(const WorkAction& a) {
  switch (a.kind) {
    case WorkAction::Kind::kRequestLease: return RequestLease();
    case WorkAction::Kind::kRenew: return RenewShard(a.ref);
    case WorkAction::Kind::kStartScan:
      if (!Find(a.ref.scan)) {
        Pending p(Purpose::kRenew);
        p.ref = a.ref;
        return AnswerLocally(p, Refusal("unknown scan"));
      }
      commands_.push_back({ScanCommand::Kind::kStart, a.ref, a.lease, {}});
      return;
    case WorkAction::Kind::kStopScan:
      Log(LogLevel::kInfo, "shard stopped", {{"scan", ScanIdToHex(a.ref.scan)}, {"vantage", a.ref.vantage},
                                              {"shard", uint64_t(a.ref.shard)}, {"reason", a.reason}});
      commands_.push_back({ScanCommand::Kind::kStop, a.ref, {}, a.reason});
      return;
    case WorkAction::Kind::kReplicate: return Replicate(a.ref, a.to);
    case WorkAction::Kind::kMarkDone: return MarkDone(a.ref, a.done);
  }
}

void WorkCore::RequestLease() {
  WorkMessage req = Base(WorkKind::kLeaseRequest);
  req.vantage = vantage_;
  req.epoch = view_->epoch;
  req.held = HeldByWorker();
  Pending p(Purpose::kLease);
  // Asked of ourselves: no stream, but answered after the worker's actions,
  // so that it is never re-entered from inside them.
  if (is_coordinator_) return AnswerLocally(p, Grant(req, vantage_));
  const MeshPeer* coordinator = view_->coordinator ? PeerOf(*view_->coordinator) : nullptr;
  if (!coordinator) return AnswerLocally(p, Status::Unavailable("no coordinator"));
  Send(*coordinator, std::move(req), p);
}

std::vector<HeldLease> WorkCore::HeldByWorker() const {
  std::vector<HeldLease> out;
  for (const auto& [ref, lease] : worker_.HeldLeases()) {
    if (out.size() >= kMaxHeldLeases) break;
    out.push_back({ref.scan, ref.vantage, ref.shard, lease});
  }
  return out;
}

void WorkCore::RenewShard(const ShardRef& ref) {
  WorkMessage req = Base(WorkKind::kRenewRequest);
  req.scan = ref.scan;
  req.vantage = ref.vantage;
  req.shard = ref.shard;
  req.epoch = view_->epoch;
  req.held = HeldByWorker();
  Pending p(Purpose::kRenew);
  p.ref = ref;
  if (is_coordinator_) return AnswerLocally(p, Renew(req, vantage_));
  const MeshPeer* coordinator = view_->coordinator ? PeerOf(*view_->coordinator) : nullptr;
  if (!coordinator) return AnswerLocally(p, Status::Unavailable("no coordinator"));
  Send(*coordinator, std::move(req), p);
}

void WorkCore::Replicate(const ShardRef& ref, const NodeId& to) {
  Pending p(Purpose::kReplica);
  p.ref = ref;
  p.to = to;
  auto bundle = shelf_.Load(PoolId(ref.scan, ref.vantage), ref.shard);
  const MeshPeer* peer = PeerOf(to);
  if (!bundle.ok()) return AnswerLocally(p, Status::NotFound("bundle not held: " + bundle.status().message()));
  if (!peer) return AnswerLocally(p, Status::Unavailable("member not alive"));
  WorkMessage put = Base(WorkKind::kBundlePut);
  put.scan = ref.scan;
  put.vantage = ref.vantage;
  put.shard = ref.shard;
  put.bundle = std::move(*bundle);
  Send(*peer, std::move(put), p);
}

void WorkCore::MarkDone(const ShardRef& ref, const ShardDone& done) {
  ScanState* s = FindMutable(ref.scan);
  if (!s) return;
  auto v = VantageIndex(*s, ref.vantage);
  if (!v || ref.shard >= s->pools[*v].size()) return;
  ShardDone& d = s->pools[*v][ref.shard].done;
  d = JoinDone(d, done);
  Track(*s, *v, ref.shard);
  Log(LogLevel::kInfo, "shard done", {{"scan", ScanIdToHex(ref.scan)}, {"vantage", ref.vantage},
                                       {"shard", uint64_t(ref.shard)}, {"results", done.results}});
  GossipShard(*s, *v, ref.shard);
}

void WorkCore::Track(const ScanState& s, size_t pool, uint32_t shard) {
  if (pool >= s.pools.size() || shard >= s.pools[pool].size()) return;
  Track(s, pool, shard, PoolId(s.id, s.definition.vantages[pool]));
}

void WorkCore::Track(const ScanState& s, size_t pool, uint32_t shard, const ScanId& pool_id) {
  MissingKey key{s.id, static_cast<uint32_t>(pool), shard};
  const ShardDone& done = s.pools[pool][shard].done;
  bool lacks = false;
  if (done.done) {
    auto h = held_.find({pool_id, shard});
    lacks = h == held_.end() || h->second != done.digest;
  }
  if (lacks) missing_.emplace(key, pool_id);
  else missing_.erase(key);
}

void WorkCore::TrackScan(const ScanState& s) {
  for (size_t v = 0; v < s.pools.size() && v < s.definition.vantages.size(); ++v) {
    ScanId pool_id = PoolId(s.id, s.definition.vantages[v]);
    for (uint32_t k = 0; k < s.pools[v].size(); ++k) Track(s, v, k, pool_id);
  }
}

void WorkCore::TrackAll() {
  missing_.clear();
  for (const auto& [id, s] : scans_) TrackScan(s);
}

void WorkCore::Hold(const ScanState& s, size_t pool, uint32_t shard, const Digest& digest) {
  ScanId pool_id = PoolId(s.id, s.definition.vantages[pool]);
  held_[{pool_id, shard}] = digest;
  Track(s, pool, shard, pool_id);
}

void WorkCore::FetchMissingBundles() {
  // Nobody alive: neither a holder nor any member to ask (holders are
  // looked up among the alive), and no rng draw, as the walk over every
  // shard found one by one.
  if (view_->alive.empty()) return;
  for (const auto& [key, pool] : missing_) {
    if (fetching_.size() >= kMaxBundleFetches) return;
    if (fetching_.count({pool, key.shard})) continue;
    const ScanState* s = Find(key.scan);
    if (!s) continue;  // cannot be: states are never dropped, and Load rebuilds the index
    const std::string& vantage = s->definition.vantages[key.pool];
    const ShardDone& done = s->pools[key.pool][key.shard].done;
    // From a holder that is alive, picked at random, else from any alive
    // member: every node that fetched a bundle serves it too, so a shard
    // whose two holders are both gone is still found. A member without
    // it, or with another bundle of the shard, says so or sends what does
    // not match, and the next round asks another.
    std::vector<const MeshPeer*> holders;
    for (const auto& h : done.holders)
      if (h != self_)
        if (const MeshPeer* p = PeerOf(h)) holders.push_back(p);
    const MeshPeer* from =
        holders.empty() ? &view_->alive[std::uniform_int_distribution<size_t>(0, view_->alive.size() - 1)(rng_)]
                        : holders[std::uniform_int_distribution<size_t>(0, holders.size() - 1)(rng_)];
    fetching_.insert({pool, key.shard});
    WorkMessage fetch = Base(WorkKind::kBundleFetch);
    fetch.scan = key.scan;
    fetch.vantage = vantage;
    fetch.shard = key.shard;
    Pending p(Purpose::kFetch);
    p.ref = {key.scan, vantage, key.shard};
    p.want = done.digest;
    Send(*from, std::move(fetch), p);
  }
}

void WorkCore::OnReply(uint64_t request, Result<WorkMessage> reply, int64_t now_ms) {
  now_ms_ = now_ms;
  auto it = pending_.find(request);
  if (it == pending_.end()) return;  // not ours, or answered already
  Pending p = std::move(it->second);
  pending_.erase(it);
  HandleReply(p, std::move(reply));
  RunActions();
}

void WorkCore::HandleReply(const Pending& p, Result<WorkMessage> reply) {
  switch (p.purpose) {
    case Purpose::kPush: return;
    case Purpose::kSync: {
      reachability_.Record(now_ms_, p.to, reply.ok());  // any answer shows the member within reach
      if (!reply.ok() || reply->kind != WorkKind::kSyncReply) return;
      for (const auto& bytes : reply->states)
        if (auto state = DecodeScanState(bytes); state.ok()) Absorb(*state, now_ms_);
      if (!reply->wanted.empty()) {
        WorkMessage push = Base(WorkKind::kPush);
        for (const auto& id : reply->wanted)
          if (const std::string* bytes = Encoded(id)) push.states.push_back(*bytes);
        if (!push.states.empty()) Send({p.to, p.address, {}}, std::move(push), Pending(Purpose::kPush));
      }
      return;
    }
    case Purpose::kLease: {
      if (!reply.ok()) return worker_.OnGrantRefused(reply.status().message(), now_ms_);
      if (reply->kind != WorkKind::kLeaseGrant)
        return worker_.OnGrantRefused(reply->kind == WorkKind::kRefused ? reply->error : "unexpected reply", now_ms_);
      LeaseGrant g{{reply->scan, reply->vantage, reply->shard}, reply->lease};
      // Our copy learns the lease at once (the coordinator's gossip may come
      // later), and we gossip it too: a coordinator that dies right after
      // granting takes its own gossip of the grant with it.
      if (ScanState* s = FindMutable(g.ref.scan))
        if (auto v = VantageIndex(*s, g.ref.vantage); v && g.ref.shard < s->pools[*v].size()) {
          ShardLease& l = s->pools[*v][g.ref.shard].lease;
          ShardLease joined = JoinLease(l, g.lease);
          if (!(joined == l)) {
            l = joined;
            Changed(s->id);
          }
          if (!is_coordinator_) GossipShard(*s, *v, g.ref.shard);
        }
      return worker_.OnGrant(g, now_ms_);
    }
    case Purpose::kRenew:
      if (reply.ok() && reply->kind == WorkKind::kRenewed) return worker_.OnRenewed(p.ref, reply->lease, now_ms_);
      // A transport failure or a node that is not the coordinator: the
      // lease runs on; the renewal goes again soon, to whoever coordinates.
      if (reply.ok() && reply->kind == WorkKind::kRefused && reply->error != "not the coordinator")
        return worker_.OnRenewRefused(p.ref, reply->error, now_ms_);
      return worker_.OnRenewDeferred(p.ref, now_ms_);
    case Purpose::kReplica:
      if (reply.ok() && reply->kind == WorkKind::kAck) return worker_.OnReplicaStored(p.ref, p.to, now_ms_);
      Log(LogLevel::kWarn, "replica not stored",
          {{"shard", uint64_t(p.ref.shard)}, {"to", p.to.Hex()},
           {"reason", reply.ok() ? reply->error : reply.status().message()}});
      return worker_.OnReplicaFailed(p.ref, p.to, now_ms_);
    case Purpose::kFetch: {
      ScanId pool = PoolId(p.ref.scan, p.ref.vantage);
      fetching_.erase({pool, p.ref.shard});
      if (!reply.ok() || reply->kind != WorkKind::kBundleData) return;
      if (BundleDigest(reply->bundle) != p.want) {
        Log(LogLevel::kWarn, "fetched bundle does not match its digest", {{"shard", uint64_t(p.ref.shard)}});
        return;
      }
      const ScanState* st = Find(p.ref.scan);
      auto v = st ? VantageIndex(*st, p.ref.vantage) : std::nullopt;
      if (!v || p.ref.shard >= st->pools[*v].size()) return;
      if (Status s = shelf_.Keep(*st, p.ref.vantage, p.ref.shard, reply->bundle, p.want); !s.ok()) {
        Log(LogLevel::kError, "cannot store fetched bundle", {{"reason", s.message()}});
        return;
      }
      Hold(*st, *v, p.ref.shard, p.want);
      return FetchMissingBundles();  // the next one at once, not at the next round
    }
  }
}

void WorkCore::OnShardOutcome(const ShardOutcome& out, int64_t now_ms) {
  now_ms_ = now_ms;
  if (!out.status.ok()) {
    Log(LogLevel::kError, "shard failed", {{"scan", ScanIdToHex(out.ref.scan)}, {"shard", uint64_t(out.ref.shard)},
                                            {"reason", out.status.message()}});
    worker_.OnRenewRefused(out.ref, "scan failed: " + out.status.message(), now_ms);
  } else if (!out.stopped) {
    const ScanState* s = Find(out.ref.scan);
    auto v = s ? VantageIndex(*s, out.ref.vantage) : std::nullopt;
    if (v && out.ref.shard < s->pools[*v].size()) Hold(*s, *v, out.ref.shard, out.digest);
    else held_[{PoolId(out.ref.scan, out.ref.vantage), out.ref.shard}] = out.digest;  // indexed when the state comes
    Log(LogLevel::kInfo, "shard scanned", {{"scan", ScanIdToHex(out.ref.scan)}, {"vantage", out.ref.vantage},
                                            {"shard", uint64_t(out.ref.shard)}, {"results", out.results},
                                            {"probes", out.probes_sent}});
    worker_.OnShardScanned(out.ref, out.results, out.digest, now_ms);
  }
  RunActions();
}

std::vector<WorkRequest> WorkCore::TakeRequests() { return std::exchange(requests_, {}); }
std::vector<GossipPayload> WorkCore::TakeBroadcasts() { return std::exchange(broadcasts_, {}); }
std::vector<ScanCommand> WorkCore::TakeScanCommands() { return std::exchange(commands_, {}); }
std::vector<ScanId> WorkCore::TakeDirty() {
  std::vector<ScanId> out(dirty_.begin(), dirty_.end());
  dirty_.clear();
  return out;
}

}  // namespace ndo::mesh
