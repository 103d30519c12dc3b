#include "sim_work.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_set>

#include "scan/ip_address.h"
#include "scan/permutation.h"
#include "store/result_bundle.h"

namespace ndo::mesh::sim {

using namespace std::chrono_literals;

namespace {

// The wall clock the simulated clock stands for, in Unix milliseconds at
// Time{} (fixed, arbitrary); each node's is off by a fixed skew below this.
constexpr int64_t kWallBaseMs = 1'795'000'000'000;
constexpr int64_t kMaxSkewMs = 500;

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }
Duration FromSeconds(double s) { return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s)); }
double Unit(uint64_t& rng) { return static_cast<double>(SplitMix64(rng) >> 11) * 0x1.0p-53; }

uint64_t Mix(uint64_t h, uint64_t x) {
  // One round of a multiply-rotate hash (as in MurmurHash2's 64-bit loop).
  x *= 0x87c37b91114253d5ULL;
  x = (x << 31) | (x >> 33);
  h ^= x * 0x4cf5ad432745937fULL;
  return ((h << 27) | (h >> 37)) * 5 + 0x52dce729;
}

uint64_t HashString(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ULL;
  return h;
}

uint64_t FirstWord(const Digest& d) {
  uint64_t w = 0;
  for (int b = 0; b < 8; ++b) w = (w << 8) | d[b];
  return w;
}

std::string KindName(WorkKind k) {
  switch (k) {
    case WorkKind::kSync: return "sync";
    case WorkKind::kPush: return "push";
    case WorkKind::kLeaseRequest: return "lease";
    case WorkKind::kRenewRequest: return "renew";
    case WorkKind::kBundlePut: return "bundle_put";
    case WorkKind::kBundleFetch: return "bundle_fetch";
    default: return std::string(WorkKindName(k));
  }
}

}  // namespace

SimWork::SimWork(SimMesh& mesh, SimWorkConfig cfg)
    : mesh_(mesh), cfg_(std::move(cfg)), net_rng_(cfg_.seed * 0x2545f4914f6cdd1dULL + 0x5157) {
  nodes_.resize(static_cast<size_t>(mesh_.size()));
  crashed_at_.assign(nodes_.size(), Time::max());
  sent_.assign(nodes_.size(), 0);
  uint64_t rng = cfg_.seed ^ 0x776f726b73696dULL;  // "worksim"
  for (int i = 0; i < mesh_.size(); ++i) {
    Node& n = nodes_[i];
    n.up = mesh_.IsUp(i);
    n.vantage = VantageName(i % std::max(1, cfg_.vantages));
    n.rng = SplitMix64(rng);
    n.skew_ms = static_cast<int64_t>(SplitMix64(rng) % kMaxSkewMs);
    n.rate = cfg_.rate * (1 + cfg_.rate_spread * (2 * Unit(rng) - 1));
    const NodeId self = mesh_.node(i).self().id;
    n.worker = std::make_unique<Worker>(self, n.vantage, cfg_.work, SplitMix64(rng));
    n.hlc = std::make_unique<HybridClock>(self);
    // Nodes started at different times: their syncs do not line up.
    n.next_sync = mesh_.now() + FromSeconds(Unit(rng) * Seconds(cfg_.sync_interval));
    n.scheduled = n.next_sync;
    Push(n.scheduled, Ev::kWake, i, 0);
  }
  mesh_.OnPayloads([this](int i, std::vector<std::string> payloads) {
    if (static_cast<size_t>(i) >= nodes_.size()) return;
    for (const auto& p : payloads) OnPayload(i, p);
  });
  // The view follows the core's events (each state change is one); it is
  // built from the member table once, at first use.
  mesh_.OnObservation([this](const Observation& ob) {
    if (ob.observer < 0 || static_cast<size_t>(ob.observer) >= nodes_.size()) return;
    Node& n = nodes_[ob.observer];
    if (n.view_dirty || ob.event.kind != MemberEvent::Kind::kState) return;
    int j = mesh_.IndexOf(ob.event.id);
    if (j < 0) {
      n.view_dirty = true;
      return;
    }
    bool alive = ob.event.state == MemberState::kAlive || ob.event.state == MemberState::kSuspect;
    auto it = std::lower_bound(n.alive.begin(), n.alive.end(), j);
    auto id = std::lower_bound(n.alive_ids.begin(), n.alive_ids.end(), ob.event.id);
    bool has = it != n.alive.end() && *it == j;
    if (alive && !has) {
      n.alive.insert(it, j);
      n.alive_ids.insert(id, ob.event.id);
    } else if (!alive && has) {
      n.alive.erase(it);
      n.alive_ids.erase(id);
    }
  });
}

int64_t SimWork::WallMs(int i) const {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(mesh_.now().time_since_epoch()).count();
  return kWallBaseMs + ms + nodes_[i].skew_ms;
}

void SimWork::Push(Time at, Ev kind, int node, uint64_t id) { queue_.push({at, kind, seq_++, node, id}); }

void SimWork::Post(int i, std::function<void()> fn) {
  uint64_t id = next_id_++;
  posts_[id] = {i, std::move(fn)};
  Push(mesh_.now(), Ev::kPost, i, id);
}

void SimWork::Fail(const std::string& what) {
  if (stats_.violations++ == 0) stats_.first_violation = what;
}

// ---- The membership's view ---------------------------------------------------

void SimWork::RefreshView(int i) {
  Node& n = nodes_[i];
  if (!n.view_dirty) return;
  n.alive.clear();
  n.unsuspected = 0;
  // Node::WorkView: members with a record are known; alive or suspect ones
  // are reachable; alive ones count for the dead man's switch.
  for (const auto& [id, m] : mesh_.node(i).members()) {
    if (!m.info) continue;
    if (m.state != MemberState::kAlive && m.state != MemberState::kSuspect) continue;
    n.unsuspected += m.state == MemberState::kAlive;
    int j = mesh_.IndexOf(id);
    if (j >= 0) n.alive.push_back(j);
  }
  std::sort(n.alive.begin(), n.alive.end());
  n.alive_ids.clear();
  n.alive_ids.reserve(n.alive.size() + 1);
  n.alive_ids.push_back(mesh_.node(i).self().id);
  for (int j : n.alive) n.alive_ids.push_back(mesh_.node(j).self().id);
  std::sort(n.alive_ids.begin(), n.alive_ids.end());
  n.view_dirty = false;
}

bool SimWork::ViewsConsistent() {
  for (int i = 0; i < mesh_.size(); ++i) {
    if (!nodes_[i].up) continue;
    RefreshView(i);
    std::vector<int> kept = nodes_[i].alive;
    std::vector<NodeId> kept_ids = nodes_[i].alive_ids;
    nodes_[i].view_dirty = true;
    RefreshView(i);
    if (kept != nodes_[i].alive || kept_ids != nodes_[i].alive_ids) return false;
  }
  return true;
}

bool SimWork::AliveIn(int i, int j) {
  RefreshView(i);
  return std::binary_search(nodes_[i].alive.begin(), nodes_[i].alive.end(), j);
}

SimWork::View SimWork::ViewOf(int i) {
  RefreshView(i);
  View v;
  const Membership& core = mesh_.node(i);
  v.coordinator = core.Coordinator();
  v.epoch = core.epoch();
  v.is_coordinator = v.coordinator && *v.coordinator == core.self().id;
  if (v.coordinator && !v.is_coordinator) {
    int j = mesh_.IndexOf(*v.coordinator);
    if (j >= 0 && AliveIn(i, j)) v.coordinator_index = j;
  }
  return v;
}

int SimWork::MajorityCoordinator() const {
  std::map<NodeId, int> votes;
  for (int i = 0; i < mesh_.size(); ++i)
    if (mesh_.IsUp(i) && mesh_.node(i).Coordinator()) ++votes[*mesh_.node(i).Coordinator()];
  int best = 0;
  NodeId who;
  for (const auto& [id, v] : votes)
    if (v > best) best = v, who = id;
  return best ? mesh_.IndexOf(who) : -1;
}

// ---- The event loop ----------------------------------------------------------

void SimWork::RunUntil(Time until, const std::function<void()>& step) {
  for (;;) {
    Time t = until;
    if (!queue_.empty() && queue_.top().at < t) t = queue_.top().at;
    mesh_.RunUntil(t);  // the membership first, up to and including t
    bool any = false;
    while (!queue_.empty() && queue_.top().at <= t) {
      Event e = queue_.top();
      queue_.pop();
      ++processed_;
      Handle(e);
      any = true;
    }
    if (any && step) step();
    if (t >= until) break;
  }
}

void SimWork::Reschedule(int i) {
  Node& n = nodes_[i];
  if (!n.up) return;
  const Time now = mesh_.now();
  // WorkService::NextWakeup: the next sync, or the worker's wake-up (wall
  // clock, translated by its distance from now).
  Time w = n.next_sync;
  int64_t ww = n.worker->NextWakeup();
  int64_t delta = ww - WallMs(i);
  if (delta <= 0) {
    ++stats_.past_wakeups;
    delta = 1;  // the daemon's timer would fire at once; here 1 ms later, so time moves on
  }
  w = std::min(w, now + std::chrono::milliseconds(delta));
  if (w < n.scheduled) {
    n.scheduled = w;
    Push(w, Ev::kWake, i, 0);
  }
}

void SimWork::Handle(const Event& e) {
  switch (e.kind) {
    case Ev::kWake: {
      Node& n = nodes_[e.node];
      if (e.at != n.scheduled) return;  // superseded by an earlier one
      n.scheduled = Time::max();
      if (!n.up) return;
      Tick(e.node);
      return;
    }
    case Ev::kPost: {
      auto it = posts_.find(e.id);
      auto [i, fn] = std::move(it->second);
      posts_.erase(it);
      if (nodes_[i].up) fn();
      return;
    }
    case Ev::kScanned: {
      auto it = jobs_.find(e.id);
      Job job = it->second;
      jobs_.erase(it);
      Node& n = nodes_[job.node];
      if (!n.up) return;
      auto s = n.scanning.find(job.ref);
      if (s == n.scanning.end() || s->second != e.id) return;  // stopped meanwhile
      n.scanning.erase(s);
      DropScanner(job.node, job.ref);
      auto state = n.scans.find(job.ref.scan);
      auto v = state == n.scans.end() ? std::nullopt : VantageIndex(state->second, job.ref.vantage);
      if (!v) return;
      // ScanHost's completion: the bundle is stored locally, then the worker hears.
      auto bundle = Yield(state->second, job.ref.vantage, job.ref.shard);
      *HeldSlot(job.node, job.ref.scan, *v, job.ref.shard) = bundle;
      ++stats_.scans_finished;
      n.worker->OnShardScanned(job.ref, bundle->results.size(), bundle->digest, WallMs(job.node));
      RunActions(job.node);
      return;
    }
    case Ev::kRequest: {
      auto it = pending_.find(e.id);
      Pending& p = it->second;
      const Time now = mesh_.now();
      const std::string kind = KindName(p.request.kind);
      if (!mesh_.CanReach(p.from, p.to) || !nodes_[p.to].up) {
        ++stats_.by_kind[kind].failed;
        Push(std::max(now, p.sent + cfg_.request_timeout), Ev::kFail, p.from, e.id);
        return;
      }
      // Node::OnWorkStream: the service ticks with the current view, then answers.
      Tick(p.to);
      Msg reply = OnMessage(p.to, p.request);
      Count(reply, true, kind);
      if (Unit(net_rng_) < mesh_.config().loss) {
        ++stats_.by_kind[kind].failed;
        Push(std::max(now, p.sent + cfg_.request_timeout), Ev::kFail, p.from, e.id);
        return;
      }
      p.reply = std::move(reply);
      Push(now + mesh_.DrawLatency(net_rng_), Ev::kReply, p.from, e.id);
      return;
    }
    case Ev::kReply:
    case Ev::kFail: {
      auto it = pending_.find(e.id);
      Pending p = std::move(it->second);
      pending_.erase(it);
      if (!nodes_[p.from].up) return;
      if (e.kind == Ev::kFail) p.reply = Status::Unavailable("stream failed");
      p.on_reply(std::move(p.reply));
      return;
    }
  }
}

void SimWork::Count(const Msg& m, bool /*reply_leg*/, const std::string& kind) {
  WorkTraffic& t = stats_.by_kind[kind];
  ++t.messages;
  if (!cfg_.count_bytes) return;
  // The message as work_messages.h encodes it, states and bundles apart
  // (their sizes are known), plus the frame's kind byte.
  WorkMessage wm;
  wm.kind = m.kind;
  wm.sender = mesh_.node(m.from).self().id;
  wm.error = m.error;
  for (const auto& [id, fp] : m.digests) {
    ScanDigestEntry d{id, {}};
    for (int b = 0; b < 8; ++b) d.digest[b] = static_cast<uint8_t>(fp >> (8 * b));
    wm.digests.push_back(d);
  }
  wm.wanted = m.wanted;
  wm.scan = m.ref.scan;
  wm.vantage = m.ref.vantage;
  wm.shard = m.ref.shard;
  wm.lease = m.lease;
  wm.epoch = m.epoch;
  uint64_t bytes = 1;
  if (auto enc = EncodeWorkMessage(wm); enc.ok()) bytes += enc->size();
  for (const auto& s : m.states) bytes += s->bytes + 8;  // a list element's pointer and padding, roughly
  if (m.bundle) bytes += m.bundle->bytes;
  t.bytes += bytes;
  sent_[m.from] += bytes;
}

void SimWork::Request(int from, int to, Msg m, Reply on_reply) {
  const std::string kind = KindName(m.kind);
  Count(m, false, kind);
  uint64_t id = next_id_++;
  Pending& p = pending_[id];
  p.from = from;
  p.to = to;
  p.sent = mesh_.now();
  p.request = std::move(m);
  p.on_reply = std::move(on_reply);
  if (to < 0 || !mesh_.CanReach(from, to) || Unit(net_rng_) < mesh_.config().loss) {
    ++stats_.by_kind[kind].failed;
    Push(p.sent + cfg_.request_timeout, Ev::kFail, from, id);
    return;
  }
  // As SimMesh's streams: a handshake and the transfer, a few latencies.
  Push(p.sent + mesh_.DrawLatency(net_rng_) * 3, Ev::kRequest, to, id);
}

// ---- WorkService, node by node -------------------------------------------------

SimWork::Msg SimWork::Base(int i, WorkKind kind) const {
  Msg m;
  m.kind = kind;
  m.from = i;
  return m;
}

SimWork::Msg SimWork::Refusal(int i, std::string reason) const {
  Msg m = Base(i, WorkKind::kRefused);
  m.error = std::move(reason);
  return m;
}

uint64_t SimWork::FingerprintOf(int i, const ScanId& id) {
  Node& n = nodes_[i];
  if (auto it = n.fingerprints.find(id); it != n.fingerprints.end()) return it->second;
  const ScanState& s = n.scans.at(id);
  // Stands for ScanStateDigest: equal states, equal fingerprints.
  uint64_t h = Mix(0x7374617465ULL, static_cast<uint64_t>(s.control.value));
  h = Mix(h, static_cast<uint64_t>(s.control.stamp.wall_ms));
  h = Mix(h, s.control.stamp.logical);
  h = Mix(Mix(h, s.control.stamp.node.hi), s.control.stamp.node.lo);
  for (const auto& pool : s.pools)
    for (const ShardState& sh : pool) {
      h = Mix(Mix(h, sh.lease.holder.hi), sh.lease.holder.lo);
      h = Mix(Mix(Mix(h, sh.lease.epoch), sh.lease.counter), static_cast<uint64_t>(sh.lease.expires_ms));
      h = Mix(Mix(h, sh.done.done), sh.done.results);
      if (sh.done.done) {
        h = Mix(h, FirstWord(sh.done.digest));
        for (const NodeId& holder : sh.done.holders) h = Mix(Mix(h, holder.hi), holder.lo);
      }
    }
  n.fingerprints[id] = h;
  return h;
}

std::shared_ptr<const SimWork::Snapshot> SimWork::SnapshotOf(int i, const ScanId& id) {
  Node& n = nodes_[i];
  if (auto it = n.snaps.find(id); it != n.snaps.end()) return it->second;
  auto snap = std::make_shared<Snapshot>();
  snap->state = std::make_shared<const ScanState>(n.scans.at(id));
  snap->fingerprint = FingerprintOf(i, id);
  if (cfg_.count_bytes)
    if (auto bytes = EncodeScanState(*snap->state); bytes.ok()) snap->bytes = bytes->size();
  n.snaps[id] = snap;
  return snap;
}

bool SimWork::Absorb(int i, const ScanState& state) {
  Node& n = nodes_[i];
  auto it = n.scans.find(state.id);
  bool changed = false;
  if (it == n.scans.end()) {
    n.scans[state.id] = state;
    changed = true;
  } else if (Status s = MergeScanState(it->second, state, &changed); !s.ok()) {
    Fail("scan state not merged: " + s.message());
    return false;
  }
  if (changed) {
    Dirty(i, state.id);
    n.hlc->Observe(n.scans[state.id].control.stamp, WallMs(i));
  }
  return changed;
}

void SimWork::Changed(int i, const ScanId& id) {
  Dirty(i, id);
  PushStates(i, {id});
}

void SimWork::GossipShard(int i, const ScanId& id, size_t pool, uint32_t shard) {
  Dirty(i, id);
  const ScanState& s = nodes_[i].scans.at(id);
  auto v = static_cast<uint32_t>(pool);
  auto payload = ScanDeltaPayload(DeltaOf(s, false, {{v, shard}}));
  if (!payload.ok()) return Fail("scan delta not encoded: " + payload.status().message());
  mesh_.node(i).Broadcast(ScanDeltaKey(id, v, shard), std::move(*payload));
  mesh_.Wake(i);
  ++stats_.deltas_queued;
}

void SimWork::OnPayload(int i, std::string_view payload) {
  Node& n = nodes_[i];
  if (!n.up || payload.empty() || payload.front() != kScanDeltaPayload) return;
  auto delta = DecodeScanDelta(payload.substr(1));
  if (!delta.ok()) return Fail("scan delta refused: " + delta.status().message());
  auto s = n.scans.find(delta->id);
  if (s == n.scans.end()) return;  // the next anti-entropy round brings the scan whole
  bool changed = false;
  if (Status st = MergeScanDelta(s->second, *delta, &changed); !st.ok()) return Fail("scan delta not merged: " + st.message());
  if (!changed) return;
  Dirty(i, delta->id);
  ++stats_.deltas_merged;
  // No pause or stop in these runs: deltas carry shards only.
  for (const ShardDelta& sd : delta->shards) GossipShard(i, delta->id, sd.pool, sd.shard);
  RunActions(i);
}

void SimWork::PushStates(int i, const std::vector<ScanId>& ids) {
  Node& n = nodes_[i];
  Msg push = Base(i, WorkKind::kPush);
  for (const auto& id : ids)
    if (n.scans.count(id)) push.states.push_back(SnapshotOf(i, id));
  if (push.states.empty()) return;
  RefreshView(i);
  // Up to max_push_targets alive members, picked at random.
  std::vector<int> targets = n.alive;
  size_t k = std::min(targets.size(), cfg_.max_push_targets);
  for (size_t a = 0; a < k; ++a) std::swap(targets[a], targets[a + Draw(i) % (targets.size() - a)]);
  targets.resize(k);
  for (int t : targets) Request(i, t, push, [](Result<Msg>) {});
}

void SimWork::Sync(int i) {
  Node& n = nodes_[i];
  RefreshView(i);
  if (n.alive.empty()) return;
  int peer = n.alive[Draw(i) % n.alive.size()];
  Msg sync = Base(i, WorkKind::kSync);
  for (const auto& [id, s] : n.scans) sync.digests.emplace_back(id, FingerprintOf(i, id));
  Request(i, peer, std::move(sync), [this, i, peer](Result<Msg> reply) {
    nodes_[i].reachability.Record(WallMs(i), mesh_.node(peer).self().id, reply.ok());
    if (!reply.ok() || reply->kind != WorkKind::kSyncReply) return;
    for (const auto& snap : reply->states) Absorb(i, *snap->state);
    if (!reply->wanted.empty()) {
      Msg push = Base(i, WorkKind::kPush);
      for (const auto& id : reply->wanted)
        if (nodes_[i].scans.count(id)) push.states.push_back(SnapshotOf(i, id));
      if (!push.states.empty()) Request(i, peer, std::move(push), [](Result<Msg>) {});
    }
    RunActions(i);
  });
}

SimWork::Msg SimWork::SyncReply(int i, const Msg& sync) {
  Node& n = nodes_[i];
  Msg out = Base(i, WorkKind::kSyncReply);
  std::map<ScanId, uint64_t> theirs(sync.digests.begin(), sync.digests.end());
  for (const auto& [id, s] : n.scans) {
    auto it = theirs.find(id);
    if (it != theirs.end() && it->second == FingerprintOf(i, id)) continue;
    out.states.push_back(SnapshotOf(i, id));
    if (it != theirs.end()) out.wanted.push_back(id);
  }
  for (const auto& [id, fp] : theirs)
    if (!n.scans.count(id)) out.wanted.push_back(id);
  return out;
}

SimWork::Msg SimWork::OnMessage(int i, const Msg& m) {
  Node& n = nodes_[i];
  switch (m.kind) {
    case WorkKind::kSync: return SyncReply(i, m);
    case WorkKind::kPush:
      for (const auto& snap : m.states) Absorb(i, *snap->state);
      RunActions(i);
      return Base(i, WorkKind::kAck);
    case WorkKind::kLeaseRequest: return Grant(i, m);
    case WorkKind::kRenewRequest: return Renew(i, m);
    case WorkKind::kBundlePut: {
      auto s = n.scans.find(m.ref.scan);
      if (s == n.scans.end()) return Refusal(i, "unknown scan " + ScanIdToHex(m.ref.scan));
      auto v = VantageIndex(s->second, m.ref.vantage);
      if (!v) return Refusal(i, "scan has no pool for vantage " + m.ref.vantage);
      if (m.ref.shard >= s->second.definition.spec.shard_count) return Refusal(i, "no such shard");
      *HeldSlot(i, m.ref.scan, *v, m.ref.shard) = m.bundle;
      return Base(i, WorkKind::kAck);
    }
    case WorkKind::kBundleFetch: {
      auto s = n.scans.find(m.ref.scan);
      auto v = s == n.scans.end() ? std::nullopt : VantageIndex(s->second, m.ref.vantage);
      auto* slot = v ? HeldSlot(i, m.ref.scan, *v, m.ref.shard) : nullptr;
      if (!slot || !*slot) return Refusal(i, "bundle not held here");
      Msg out = Base(i, WorkKind::kBundleData);
      out.ref = m.ref;
      out.bundle = *slot;
      return out;
    }
    default: return Refusal(i, "unexpected " + std::string(WorkKindName(m.kind)));
  }
}

SimWork::Msg SimWork::Grant(int i, const Msg& request) {
  View v = ViewOf(i);
  if (!v.is_coordinator) return Refusal(i, "not the coordinator");
  const std::string& peer_vantage = nodes_[request.from].vantage;
  if (peer_vantage != request.ref.vantage)
    return Refusal(i, "member of vantage " + peer_vantage + " asked for vantage " + request.ref.vantage);
  const auto& alive = nodes_[i].alive_ids;  // self included
  auto grant = GrantLease(nodes_[i].scans, mesh_.node(request.from).self().id, request.ref.vantage, v.epoch,
                          WallMs(i), [&](const NodeId& id) { return std::binary_search(alive.begin(), alive.end(), id); },
                          cfg_.work);
  if (!grant) {
    ++stats_.grant_refusals;
    return Refusal(i, "no work");
  }
  ++stats_.grants;
  GossipShard(i, grant->ref.scan, *VantageIndex(nodes_[i].scans.at(grant->ref.scan), grant->ref.vantage),
              grant->ref.shard);
  Msg out = Base(i, WorkKind::kLeaseGrant);
  out.ref = grant->ref;
  out.lease = grant->lease;
  return out;
}

SimWork::Msg SimWork::Renew(int i, const Msg& request) {
  View v = ViewOf(i);
  if (!v.is_coordinator) return Refusal(i, "not the coordinator");
  auto lease = RenewLease(nodes_[i].scans, mesh_.node(request.from).self().id, request.ref.scan, request.ref.vantage,
                          request.ref.shard, v.epoch, WallMs(i), cfg_.work);
  if (!lease.ok()) {
    ++stats_.renew_refusals;
    return Refusal(i, lease.status().message());
  }
  ++stats_.renewals;
  Dirty(i, request.ref.scan);  // saved, not pushed: anti-entropy spreads renewals
  Msg out = Base(i, WorkKind::kRenewed);
  out.ref = request.ref;
  out.lease = *lease;
  return out;
}

void SimWork::Tick(int i) {
  Node& n = nodes_[i];
  if (mesh_.now() >= n.next_sync) {
    n.next_sync = mesh_.now() + cfg_.sync_interval;
    Sync(i);
    FetchMissingBundles(i);
  }
  RunActions(i);
}

void SimWork::RunActions(int i) {
  Node& n = nodes_[i];
  if (!n.up) return;
  View v = ViewOf(i);
  WorkerView wv;
  wv.coordinator = v.coordinator;
  if (v.coordinator_index >= 0) wv.coordinator_address = SimMesh::Address(v.coordinator_index);
  // As WorkService: known members (every one here has a record), and those
  // alive and not suspect.
  size_t known = mesh_.node(i).members().size() + 1, unsuspected = n.unsuspected + 1;
  bool coordinator_unsuspected = v.is_coordinator;
  if (!coordinator_unsuspected && v.coordinator)
    if (const Member* m = mesh_.node(i).Find(*v.coordinator)) coordinator_unsuspected = m->state == MemberState::kAlive;
  wv.in_contact = InContact(v.coordinator.has_value(), coordinator_unsuspected, unsuspected, known) &&
                  n.reachability.Verdict(WallMs(i), mesh_.node(i).self().id, n.alive_ids, known);
  wv.states = &n.scans;
  wv.alive_members = n.alive_ids;
  n.worker->Tick(WallMs(i), wv);
  for (int round = 0; round < 4; ++round) {
    auto actions = n.worker->TakeActions();
    if (actions.empty()) break;
    for (const auto& a : actions) Execute(i, a);
    n.worker->Tick(WallMs(i), wv);
  }
  Reschedule(i);
}

void SimWork::Execute(int i, const WorkAction& a) {
  switch (a.kind) {
    case WorkAction::Kind::kRequestLease: return RequestLease(i);
    case WorkAction::Kind::kRenew: return RenewShard(i, a.ref);
    case WorkAction::Kind::kStartScan: return StartShard(i, a.ref, a.lease);
    case WorkAction::Kind::kStopScan: return StopShard(i, a.ref);
    case WorkAction::Kind::kReplicate: return Replicate(i, a.ref, a.to);
    case WorkAction::Kind::kMarkDone: return MarkDone(i, a.ref, a.done);
  }
}

void SimWork::RequestLease(int i) {
  View v = ViewOf(i);
  Msg req = Base(i, WorkKind::kLeaseRequest);
  req.ref.vantage = nodes_[i].vantage;
  req.epoch = v.epoch;
  auto on_reply = [this, i](Result<Msg> reply) {
    Node& n = nodes_[i];
    if (!reply.ok()) {
      n.worker->OnGrantRefused(reply.status().message(), WallMs(i));
    } else if (reply->kind == WorkKind::kLeaseGrant) {
      LeaseGrant g{reply->ref, reply->lease};
      // Our copy learns the lease at once (the coordinator's push may come later).
      if (auto s = n.scans.find(g.ref.scan); s != n.scans.end())
        if (auto vi = VantageIndex(s->second, g.ref.vantage); vi && g.ref.shard < s->second.pools[*vi].size()) {
          ShardLease& l = s->second.pools[*vi][g.ref.shard].lease;
          ShardLease joined = JoinLease(l, g.lease);
          if (!(joined == l)) {
            l = joined;
            Dirty(i, g.ref.scan);
          }
        }
      n.worker->OnGrant(g, WallMs(i));
    } else {
      n.worker->OnGrantRefused(reply->kind == WorkKind::kRefused ? reply->error : "unexpected reply", WallMs(i));
    }
    RunActions(i);
  };
  if (v.is_coordinator) {
    Msg reply = Grant(i, req);
    Post(i, [on_reply, reply] { on_reply(reply); });
    return;
  }
  if (v.coordinator_index < 0) {
    Post(i, [on_reply] { on_reply(Status::Unavailable("no coordinator")); });
    return;
  }
  Request(i, v.coordinator_index, std::move(req), on_reply);
}

void SimWork::RenewShard(int i, const ShardRef& ref) {
  View v = ViewOf(i);
  Msg req = Base(i, WorkKind::kRenewRequest);
  req.ref = ref;
  req.epoch = v.epoch;
  auto on_reply = [this, i, ref](Result<Msg> reply) {
    Node& n = nodes_[i];
    if (reply.ok() && reply->kind == WorkKind::kRenewed) {
      n.worker->OnRenewed(ref, reply->lease, WallMs(i));
      // The invariant's record of the lease this scanner holds.
      auto key = std::make_tuple(ref.scan, ref.vantage, ref.shard);
      if (auto it = scanners_.find(key); it != scanners_.end()) {
        for (Scanner& s : it->second)
          if (s.node == i && std::tie(reply->lease.epoch, reply->lease.counter) > std::tie(s.lease.epoch, s.lease.counter))
            s.lease = reply->lease;
        for (const Scanner& a : it->second)
          for (const Scanner& b : it->second)
            if (a.node < b.node && mesh_.IsUp(a.node) && mesh_.IsUp(b.node) && a.lease.epoch == b.lease.epoch &&
                a.lease.counter == b.lease.counter)
              Fail("nodes " + std::to_string(a.node) + " and " + std::to_string(b.node) + " scan shard " +
                   std::to_string(ref.shard) + " of " + ref.vantage + " under lease (epoch " +
                   std::to_string(a.lease.epoch) + ", counter " + std::to_string(a.lease.counter) + ")");
      }
    } else if (reply.ok() && reply->kind == WorkKind::kRefused && reply->error != "not the coordinator") {
      n.worker->OnRenewRefused(ref, reply->error, WallMs(i));
    }
    RunActions(i);
  };
  if (v.is_coordinator) {
    Msg reply = Renew(i, req);
    Post(i, [on_reply, reply] { on_reply(reply); });
    return;
  }
  if (v.coordinator_index < 0) return;
  Request(i, v.coordinator_index, std::move(req), on_reply);
}

void SimWork::StartShard(int i, const ShardRef& ref, const ShardLease& lease) {
  Node& n = nodes_[i];
  if (!n.scans.count(ref.scan)) {
    Post(i, [this, i, ref] {
      nodes_[i].worker->OnRenewRefused(ref, "unknown scan", WallMs(i));
      RunActions(i);
    });
    return;
  }
  ++stats_.scans_started;
  auto key = std::make_tuple(ref.scan, ref.vantage, ref.shard);
  // Invariants: another up scanner of this shard must hold an older lease
  // (it will stop on seeing ours); its previous scanner should be down.
  std::vector<Scanner>& now_scanning = scanners_[key];
  for (const Scanner& s : now_scanning) {
    if (s.node == i || !mesh_.IsUp(s.node)) continue;
    ++stats_.concurrent_scans;
    if (s.lease.epoch == lease.epoch && s.lease.counter == lease.counter)
      Fail("nodes " + std::to_string(s.node) + " and " + std::to_string(i) + " scan shard " + std::to_string(ref.shard) +
           " of " + ref.vantage + " under lease (epoch " + std::to_string(lease.epoch) + ", counter " +
           std::to_string(lease.counter) + ")");
  }
  auto& starts = starts_[key];
  bool first_crashed = false;
  if (!starts.empty()) {
    if (mesh_.IsUp(starts.back().first)) ++stats_.rescans_previous_up;
    first_crashed = !mesh_.IsUp(starts.front().first);
  }
  starts.emplace_back(i, first_crashed);
  now_scanning.push_back({i, lease});
  // ScanHost::Start: the engine runs shard_probes at this node's rate.
  uint64_t job = next_id_++;
  jobs_[job] = {i, ref};
  n.scanning[ref] = job;
  Push(mesh_.now() + FromSeconds(static_cast<double>(cfg_.shard_probes) / n.rate), Ev::kScanned, i, job);
}

void SimWork::DropScanner(int i, const ShardRef& ref) {
  auto it = scanners_.find(std::make_tuple(ref.scan, ref.vantage, ref.shard));
  if (it == scanners_.end()) return;
  auto& v = it->second;
  v.erase(std::remove_if(v.begin(), v.end(), [i](const Scanner& s) { return s.node == i; }), v.end());
  if (v.empty()) scanners_.erase(it);
}

void SimWork::StopShard(int i, const ShardRef& ref) {
  Node& n = nodes_[i];
  if (n.scanning.erase(ref)) {
    ++stats_.scans_stopped;
    DropScanner(i, ref);
  }
}

void SimWork::Replicate(int i, const ShardRef& ref, const NodeId& to) {
  Node& n = nodes_[i];
  auto fail = [this, i, ref, to] {
    Post(i, [this, i, ref, to] {
      ++stats_.replicas_failed;
      nodes_[i].worker->OnReplicaFailed(ref, to, WallMs(i));
      RunActions(i);
    });
  };
  auto s = n.scans.find(ref.scan);
  auto v = s == n.scans.end() ? std::nullopt : VantageIndex(s->second, ref.vantage);
  auto* slot = v ? HeldSlot(i, ref.scan, *v, ref.shard) : nullptr;
  int j = mesh_.IndexOf(to);
  if (!slot || !*slot || j < 0 || !AliveIn(i, j)) return fail();
  Msg put = Base(i, WorkKind::kBundlePut);
  put.ref = ref;
  put.bundle = *slot;
  Request(i, j, std::move(put), [this, i, ref, to](Result<Msg> reply) {
    Node& n = nodes_[i];
    if (reply.ok() && reply->kind == WorkKind::kAck) {
      ++stats_.replicas_stored;
      n.worker->OnReplicaStored(ref, to, WallMs(i));
    } else {
      ++stats_.replicas_failed;
      n.worker->OnReplicaFailed(ref, to, WallMs(i));
    }
    RunActions(i);
  });
}

void SimWork::MarkDone(int i, const ShardRef& ref, const ShardDone& done) {
  Node& n = nodes_[i];
  auto s = n.scans.find(ref.scan);
  if (s == n.scans.end()) return;
  auto v = VantageIndex(s->second, ref.vantage);
  if (!v || ref.shard >= s->second.pools[*v].size()) return;
  ShardDone& d = s->second.pools[*v][ref.shard].done;
  d = JoinDone(d, done);
  ++stats_.marked_done;
  GossipShard(i, ref.scan, *v, ref.shard);
}

std::shared_ptr<const SimBundle>* SimWork::HeldSlot(int i, const ScanId& scan, size_t pool, uint32_t shard) {
  Node& n = nodes_[i];
  auto& pools = n.held[scan];
  if (pools.empty()) {
    auto s = n.scans.find(scan);
    if (s == n.scans.end()) return nullptr;
    pools.assign(s->second.pools.size(), std::vector<std::shared_ptr<const SimBundle>>(s->second.definition.spec.shard_count));
  }
  if (pool >= pools.size() || shard >= pools[pool].size()) return nullptr;
  return &pools[pool][shard];
}

void SimWork::FetchMissingBundles(int i) {
  Node& n = nodes_[i];
  const NodeId self = mesh_.node(i).self().id;
  for (const auto& [id, s] : n.scans) {
    if (!HeldSlot(i, id, 0, 0)) continue;
    auto& held = n.held[id];
    for (size_t v = 0; v < s.pools.size(); ++v) {
      const std::string& vantage = s.definition.vantages[v];
      for (uint32_t k = 0; k < s.pools[v].size(); ++k) {
        if (n.fetching.size() >= cfg_.max_bundle_fetches) return;
        const ShardDone& done = s.pools[v][k].done;
        if (!done.done || held[v][k]) continue;
        if (!n.fetching.empty() && n.fetching.count({id, v, k})) continue;
        // From a holder that is alive, else from any alive member (as
        // WorkService does): every node that fetched a bundle serves it too,
        // so a shard whose two holders are gone is still found.
        int from = -1;
        for (const NodeId& h : done.holders) {
          int j = mesh_.IndexOf(h);
          if (h != self && j >= 0 && AliveIn(i, j)) {
            from = j;
            break;
          }
        }
        if (from < 0) {
          int size = mesh_.size();
          uint64_t h = Mix(Mix(Mix(static_cast<uint64_t>(i), k), v), ++n.fetch_attempts);
          for (int step = 0; step < size && from < 0; ++step) {
            int j = static_cast<int>((h + static_cast<uint64_t>(step)) % static_cast<uint64_t>(size));
            if (j != i && AliveIn(i, j)) from = j;
          }
        }
        if (from < 0) continue;
        n.fetching.insert({id, v, k});
        Msg fetch = Base(i, WorkKind::kBundleFetch);
        fetch.ref = {id, vantage, k};
        Digest want = done.digest;
        ScanId scan = id;
        Request(i, from, std::move(fetch), [this, i, scan, v, k, want](Result<Msg> reply) {
          Node& n = nodes_[i];
          n.fetching.erase({scan, v, k});
          if (!reply.ok() || reply->kind != WorkKind::kBundleData || !reply->bundle) {
            ++stats_.fetch_failures;
            return;
          }
          if (reply->bundle->digest != want) return;
          auto* slot = HeldSlot(i, scan, v, k);
          if (!slot) return;
          *slot = reply->bundle;
          ++stats_.bundles_fetched;
          FetchMissingBundles(i);  // the next one at once, not at the next round
        });
      }
    }
  }
}

// ---- Control and measurements --------------------------------------------------

Result<ScanId> SimWork::Submit(int i, uint32_t shards) {
  Node& n = nodes_[i];
  ScanDefinition def;
  def.spec.arguments = {"ndo", "10.0.0.0/8", "-p", "80"};
  def.spec.targets.addresses.Add({IpAddress::FromV4(0x0a000000).value(), IpAddress::FromV4(0x0affffff).value()});
  def.spec.ports = {80};
  def.spec.seed = cfg_.seed;
  def.spec.shard_count = shards;
  for (int v = 0; v < std::max(1, cfg_.vantages); ++v) def.vantages.push_back(VantageName(v));
  std::sort(def.vantages.begin(), def.vantages.end());
  def.submitter = mesh_.node(i).self().id;
  def.created_ms = WallMs(i);
  auto state = NewScanState(std::move(def), n.hlc->Now(WallMs(i)));
  if (!state.ok()) return state.status();
  ScanId id = state->id;
  n.scans[id] = std::move(*state);
  Changed(i, id);
  RunActions(i);
  return id;
}

void SimWork::Crash(int i) {
  mesh_.Crash(i);
  Node& n = nodes_[i];
  if (!n.up) return;
  n.up = false;
  crashed_at_[i] = mesh_.now();
  for (const auto& [ref, job] : n.scanning) DropScanner(i, ref);
  // Everything in memory is gone; requests and jobs in flight find the node down.
  n.scans.clear();
  n.snaps.clear();
  n.fingerprints.clear();
  n.held.clear();
  n.fetching.clear();
  n.scanning.clear();
  n.done_seen.clear();
}

std::shared_ptr<const SimBundle> SimWork::Yield(const ScanState& s, const std::string& vantage, uint32_t shard) const {
  auto b = std::make_shared<SimBundle>();
  uint64_t rng = Mix(Mix(Mix(0x79696564ULL, s.definition.spec.seed), HashString(vantage)), shard);
  const uint64_t base = static_cast<uint64_t>(shard) * cfg_.shard_probes;
  const double p = std::clamp(cfg_.hit_rate, 0.0, 1.0);
  if (p >= 1) {
    for (uint64_t k = 0; k < cfg_.shard_probes; ++k) b->results.push_back(base + k);
  } else if (p > 0) {
    // Each probe a hit with probability p: geometric gaps between hits.
    const double log_miss = std::log1p(-p);
    uint64_t next = 0;
    for (;;) {
      double gap = std::floor(std::log(std::max(Unit(rng), 1e-300)) / log_miss);
      if (gap >= static_cast<double>(cfg_.shard_probes - next)) break;
      next += static_cast<uint64_t>(gap);
      b->results.push_back(base + next);
      if (++next >= cfg_.shard_probes) break;
    }
  }
  uint64_t h = Mix(0x62756e646c65ULL, b->results.size());
  for (uint64_t r : b->results) h = Mix(h, r);
  for (int w = 0; w < 4; ++w) {
    uint64_t word = Mix(h, static_cast<uint64_t>(w));
    for (int k = 0; k < 8; ++k) b->digest[w * 8 + k] = static_cast<uint8_t>(word >> (8 * k));
  }
  b->bytes = kBundleHeaderSize + kBundleRecordSize * b->results.size();
  return b;
}

SimWork::Progress SimWork::Check(const ScanId& scan) {
  Progress p;
  std::vector<uint8_t> done_anywhere;
  for (int i = 0; i < mesh_.size(); ++i) {
    Node& n = nodes_[i];
    if (!n.up) continue;
    ++p.survivors;
    auto it = n.scans.find(scan);
    if (it == n.scans.end()) continue;
    const ScanState& s = it->second;
    const size_t shards = s.definition.spec.shard_count;
    auto& seen = n.done_seen[scan];
    seen.resize(s.pools.size() * shards);
    done_anywhere.resize(seen.size());
    bool all_done = true, all_held = true;
    HeldSlot(i, scan, 0, 0);
    const auto& held = n.held[scan];
    for (size_t v = 0; v < s.pools.size(); ++v)
      for (uint32_t k = 0; k < shards; ++k) {
        const ShardDone& d = s.pools[v][k].done;
        const size_t x = v * shards + k;
        if (!d.done) {
          all_done = false;
          if (seen[x]) Fail("shard " + std::to_string(k) + " of " + s.definition.vantages[v] + " done, then not, on node " + std::to_string(i));
          continue;
        }
        seen[x] = 1;
        done_anywhere[x] = 1;
        if (!n.complete && all_held) {
          const SimBundle* b = held[v][k].get();
          if (!b || b->digest != d.digest) all_held = false;
        }
      }
    if (all_done) ++p.all_done;
    if (all_done && (n.complete || all_held)) {
      n.complete = true;  // done never goes back and bundles are never dropped
      ++p.complete;
    }
  }
  p.shards_done_somewhere = static_cast<uint32_t>(std::count(done_anywhere.begin(), done_anywhere.end(), 1));
  return p;
}

uint32_t SimWork::DoneIn(int i, const ScanId& scan) const {
  auto it = nodes_[i].scans.find(scan);
  if (it == nodes_[i].scans.end()) return 0;
  uint32_t n = 0;
  for (const auto& pool : it->second.pools)
    for (const auto& sh : pool) n += sh.done.done;
  return n;
}

uint64_t SimWork::MissingResults(const ScanId& scan, uint64_t* shards_lost) const {
  // The truth, from any copy of the definition.
  const ScanState* def = nullptr;
  for (const Node& n : nodes_)
    if (n.up && n.scans.count(scan)) def = &n.scans.at(scan);
  if (!def) return 0;
  const size_t shards = def->definition.spec.shard_count;
  std::vector<std::shared_ptr<const SimBundle>> truth;
  for (size_t v = 0; v < def->pools.size(); ++v)
    for (uint32_t k = 0; k < shards; ++k) truth.push_back(Yield(*def, def->definition.vantages[v], k));
  std::unordered_set<const SimBundle*> verified;
  std::vector<uint8_t> anyone(truth.size());
  uint64_t missing = 0;
  for (const Node& n : nodes_) {
    if (!n.up) continue;
    auto held = n.held.find(scan);
    for (size_t x = 0; x < truth.size(); ++x) {
      const SimBundle* b = nullptr;
      if (held != n.held.end() && x / shards < held->second.size()) b = held->second[x / shards][x % shards].get();
      bool ok = b && (verified.count(b) || (b->digest == truth[x]->digest && b->results == truth[x]->results));
      if (ok) {
        verified.insert(b);
        anyone[x] = 1;
      } else {
        ++missing;
      }
    }
  }
  if (shards_lost) *shards_lost = static_cast<uint64_t>(std::count(anyone.begin(), anyone.end(), 0));
  return missing;
}

uint64_t SimWork::ShardsScannedTwice(uint64_t* first_holder_crashed) const {
  uint64_t twice = 0, crashed = 0;
  for (const auto& [key, starts] : starts_) {
    if (starts.size() < 2) continue;
    ++twice;
    crashed += starts[1].second;
  }
  if (first_holder_crashed) *first_holder_crashed = crashed;
  return twice;
}

// ---- The scenario -----------------------------------------------------------

Figures DistributedScan(const ScenarioOptions& o, const WorkScenarioOptions& w) {
  Figures f;
  SimConfig mc;
  mc.nodes = o.nodes;
  mc.seed = o.seed;
  mc.loss = o.loss;
  mc.count_bytes = o.count_bytes;
  mc.membership = o.membership;
  SimMesh mesh(mc);
  mesh.Bootstrap();
  SimWorkConfig wc;
  wc.vantages = w.vantages;
  wc.shard_probes = w.shard_probes;
  wc.rate = w.rate;
  wc.hit_rate = w.hit_rate;
  wc.count_bytes = o.count_bytes;
  wc.seed = o.seed;
  SimWork work(mesh, wc);
  uint64_t rng = o.seed * 0x9e3779b97f4a7c15ULL + 17;
  auto pick = [&](uint64_t n) { return SplitMix64(rng) % n; };

  work.RunUntil(mesh.now() + 10s);  // one coordinator, known to all
  const Time settled = mesh.now();
  int submitter = static_cast<int>(pick(static_cast<uint64_t>(mesh.size())));
  auto id = work.Submit(submitter, w.shards_per_pool);
  if (!id.ok()) {
    f.Add("submit_failed", 1);
    return f;
  }
  const Time t0 = mesh.now();

  // Crashes at random times during the scan as expected without them: the
  // shards of a pool over its nodes, one shard after another.
  const int crashes = static_cast<int>(std::lround(w.crash_fraction * mesh.size()));
  const double shard_s = static_cast<double>(w.shard_probes) / w.rate;
  const int per_vantage = std::max(1, mesh.size() / std::max(1, w.vantages));
  const double expected_s = std::ceil(static_cast<double>(w.shards_per_pool) / per_vantage) * shard_s;
  const double window_s = std::max(5.0, 0.9 * expected_s);
  std::vector<double> at;
  for (int c = 0; c < crashes; ++c) at.push_back(1.0 + (window_s - 1.0) * Unit(rng));
  std::sort(at.begin(), at.end());
  std::set<int> of_coordinator;
  const int of_coord = std::min(w.coordinator_crashes, crashes);
  if (w.coordinator_crash_at_s >= 0 && of_coord > 0) {
    // The crash nearest the time asked for, and those after it.
    size_t first = 0;
    for (size_t c = 0; c < at.size(); ++c)
      if (std::abs(at[c] - w.coordinator_crash_at_s) < std::abs(at[first] - w.coordinator_crash_at_s)) first = c;
    at[first] = w.coordinator_crash_at_s;
    std::sort(at.begin(), at.end());
    first = static_cast<size_t>(std::lower_bound(at.begin(), at.end(), w.coordinator_crash_at_s) - at.begin());
    for (int k = 0; k < of_coord; ++k)
      of_coordinator.insert(static_cast<int>(std::min(first + static_cast<size_t>(k) * (at.size() - first) / of_coord, at.size() - 1)));
  } else {
    for (int k = 0; k < of_coord; ++k) of_coordinator.insert((k + 1) * crashes / (of_coord + 1));
  }

  std::optional<double> all_somewhere, all_everywhere, complete;
  int coordinator_crashes = 0, first_coordinator = -1;
  double first_coordinator_crash = std::nan("");
  uint32_t done_at_coordinator_crash = 0;
  size_t next_crash = 0;
  std::vector<uint64_t> scan_phase_sent;  // bytes sent per node until all is done everywhere
  const Time limit = t0 + FromSeconds(w.time_limit_s);
  const double shards_total = static_cast<double>(w.shards_per_pool) * w.vantages;
  SimWork::Progress p;
  while (mesh.now() < limit) {
    Time next = std::min(limit, mesh.now() + 1s);
    if (next_crash < at.size()) next = std::min(next, t0 + FromSeconds(at[next_crash]));
    work.RunUntil(next);
    while (next_crash < at.size() && t0 + FromSeconds(at[next_crash]) <= mesh.now()) {
      int victim = -1;
      if (of_coordinator.count(static_cast<int>(next_crash))) {
        victim = work.MajorityCoordinator();
        if (victim >= 0 && mesh.IsUp(victim)) {
          if (coordinator_crashes++ == 0) {
            first_coordinator = victim;
            first_coordinator_crash = Seconds(mesh.now() - t0);
            done_at_coordinator_crash = work.Check(*id).shards_done_somewhere;
          }
        } else {
          victim = -1;
        }
      }
      while (victim < 0 || !mesh.IsUp(victim)) victim = static_cast<int>(pick(static_cast<uint64_t>(mesh.size())));
      work.Crash(victim);
      ++next_crash;
    }
    p = work.Check(*id);
    double t = Seconds(mesh.now() - t0);
    f.curve.emplace_back("shards_done_somewhere", t, p.shards_done_somewhere / shards_total);
    f.curve.emplace_back("survivors_complete", t, static_cast<double>(p.complete) / std::max(1, p.survivors));
    if (!all_somewhere && p.shards_done_somewhere == shards_total) all_somewhere = t;
    if (!all_everywhere && p.all_done == p.survivors) {
      all_everywhere = t;
      scan_phase_sent = work.bytes_sent();
    }
    if (!complete && p.complete == p.survivors) complete = t;
    if (complete && next_crash == at.size()) break;
    if (w.progress && std::fmod(t + 1e-6, 30.0) < 1.0)
      std::fprintf(stderr, "  t=%.0f s: %u/%.0f shards done somewhere, %d/%d survivors all done, %d complete\n", t,
                   p.shards_done_somewhere, shards_total, p.all_done, p.survivors, p.complete);
  }
  const double elapsed = Seconds(mesh.now() - t0);
  const WorkStats& st = work.stats();
  uint64_t lost = 0, first_crashed = 0;
  uint64_t missing = work.MissingResults(*id, &lost);
  uint64_t twice = work.ShardsScannedTwice(&first_crashed);
  uint32_t done_min = UINT32_MAX;
  for (int i = 0; i < mesh.size(); ++i)
    if (mesh.IsUp(i)) done_min = std::min(done_min, work.DoneIn(i, *id));

  f.Add("nodes", o.nodes);
  f.Add("loss", o.loss);
  f.Add("vantages", w.vantages);
  f.Add("shards_per_pool", w.shards_per_pool);
  f.Add("shards_total", shards_total);
  f.Add("shard_scan_s", shard_s);
  f.Add("crashes", crashes);
  f.Add("coordinator_crashes", coordinator_crashes);
  f.Add("first_coordinator_crash_s", first_coordinator_crash);
  f.Add("shards_done_at_coordinator_crash", done_at_coordinator_crash);
  f.Add("last_crash_s", at.empty() ? std::nan("") : at.back());
  f.Add("survivors", p.survivors);
  f.Add("all_shards_done_somewhere_s", all_somewhere.value_or(std::nan("")));
  f.Add("all_shards_done_everywhere_s", all_everywhere.value_or(std::nan("")));
  f.Add("completion_s", complete.value_or(std::nan("")));  // every survivor: all done, every bundle held
  f.Add("shards_done_min_over_survivors", done_min == UINT32_MAX ? 0 : done_min);
  f.Add("survivors_complete", p.complete);
  f.Add("results_missing", static_cast<double>(missing));  // (survivor, shard) pairs
  f.Add("shards_lost", static_cast<double>(lost));          // held by no survivor
  f.Add("shards_scanned_twice", static_cast<double>(twice));
  f.Add("scanned_twice_first_holder_crashed", static_cast<double>(first_crashed));
  f.Add("rescans_previous_scanner_up", static_cast<double>(st.rescans_previous_up));
  f.Add("concurrent_scans", static_cast<double>(st.concurrent_scans));
  f.Add("invariant_violations", static_cast<double>(st.violations));
  f.Add("lease_grants", static_cast<double>(st.grants));
  f.Add("grant_refusals_no_work", static_cast<double>(st.grant_refusals));
  f.Add("lease_renewals", static_cast<double>(st.renewals));
  f.Add("renew_refusals", static_cast<double>(st.renew_refusals));
  f.Add("scans_started", static_cast<double>(st.scans_started));
  f.Add("scans_stopped", static_cast<double>(st.scans_stopped));
  f.Add("scans_finished", static_cast<double>(st.scans_finished));
  f.Add("replicas_stored", static_cast<double>(st.replicas_stored));
  f.Add("replicas_failed", static_cast<double>(st.replicas_failed));
  f.Add("marked_done", static_cast<double>(st.marked_done));
  f.Add("deltas_queued", static_cast<double>(st.deltas_queued));
  f.Add("deltas_merged", static_cast<double>(st.deltas_merged));
  f.Add("bundles_fetched", static_cast<double>(st.bundles_fetched));
  f.Add("bundle_fetch_failures", static_cast<double>(st.fetch_failures));
  f.Add("worker_past_wakeups", static_cast<double>(st.past_wakeups));
  uint64_t messages = 0, bytes = 0, failed = 0;
  for (const auto& [kind, t] : st.by_kind) {
    messages += t.messages;
    bytes += t.bytes;
    failed += t.failed;
    f.Add("work_" + kind + "_messages", static_cast<double>(t.messages));
    if (o.count_bytes) f.Add("work_" + kind + "_bytes", static_cast<double>(t.bytes));
  }
  const double secs = std::max(elapsed, 1e-9), n = static_cast<double>(o.nodes);
  f.Add("work_messages", static_cast<double>(messages));
  f.Add("work_failed_legs", static_cast<double>(failed));
  if (o.count_bytes) {
    f.Add("work_bytes", static_cast<double>(bytes));
    f.Add("work_bytes_per_s_per_node", static_cast<double>(bytes) / secs / n);
    const auto& sent = work.bytes_sent();
    f.Add("work_bytes_per_s_busiest_node", static_cast<double>(*std::max_element(sent.begin(), sent.end())) / secs);
    // Which nodes those are: the coordinators (first and last) against the rest.
    int last = work.MajorityCoordinator();
    f.Add("busiest_node_is_last_coordinator",
          last >= 0 && sent[last] == *std::max_element(sent.begin(), sent.end()));
    if (first_coordinator >= 0) f.Add("work_bytes_first_coordinator", static_cast<double>(sent[first_coordinator]));
    if (last >= 0) f.Add("work_bytes_last_coordinator", static_cast<double>(sent[last]));
    if (all_everywhere && !scan_phase_sent.empty()) {
      // While shards are leased and declared done: until every survivor's
      // copy is all done. (Grants and dones ride the gossip as deltas:
      // their bytes are the membership's below.)
      double scan_s = std::max(*all_everywhere, 1e-9), total = 0;
      for (uint64_t b : scan_phase_sent) total += static_cast<double>(b);
      f.Add("scan_phase_work_bytes_per_s_per_node", total / scan_s / n);
      f.Add("scan_phase_work_bytes_per_s_busiest_node",
            static_cast<double>(*std::max_element(scan_phase_sent.begin(), scan_phase_sent.end())) / scan_s);
    }
    double membership = 0;
    for (const auto& t : mesh.traffic()) membership += static_cast<double>(t.datagram_bytes + t.stream_bytes);
    f.Add("membership_bytes_per_s_per_node", membership / Seconds(mesh.now() - settled + 10s) / n);
    uint64_t busiest = 0;
    for (const auto& t : mesh.traffic()) busiest = std::max(busiest, t.datagram_bytes + t.stream_bytes);
    f.Add("membership_bytes_per_s_busiest_node", static_cast<double>(busiest) / Seconds(mesh.now() - settled + 10s));
  }
  f.Add("simulated_s", elapsed);
  f.Add("work_events", static_cast<double>(work.events_processed()));
  f.Add("mesh_events", static_cast<double>(mesh.events_processed()));
  return f;
}

}  // namespace ndo::mesh::sim
