#include "mesh/work/worker.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "mesh/work/scan_regions.h"
#include "scan/permutation.h"
#include "store/scan_record.h"

namespace ndo::mesh {
namespace {

// Within one epoch the counter orders a shard's leases; across epochs the
// epoch does. JoinLease agrees (and breaks ties between equal pairs).
bool Newer(const ShardLease& a, const ShardLease& b) {
  return std::tie(a.epoch, a.counter) > std::tie(b.epoch, b.counter);
}

uint64_t NextCounter(const ShardLease& old, uint64_t epoch) { return old.epoch == epoch ? old.counter + 1 : 1; }

// The pool of `vantage` in `s`, or null when the scan does not include it.
template <typename State>
auto* PoolOf(State& s, std::string_view vantage) {
  auto v = VantageIndex(s, vantage);
  return v && *v < s.pools.size() ? &s.pools[*v] : nullptr;
}

// Scans in creation order: the oldest gets its shards first, so scans
// finish one after another instead of all late together.
std::vector<ScanState*> InCreationOrder(WorkStates& states) {
  std::vector<ScanState*> order;
  order.reserve(states.size());
  for (auto& [id, s] : states) order.push_back(&s);
  std::sort(order.begin(), order.end(), [](const ScanState* a, const ScanState* b) {
    return std::tie(a->definition.created_ms, a->id) < std::tie(b->definition.created_ms, b->id);
  });
  return order;
}

// Whether each shard of a scan lies in a region `policy` holds.
std::vector<bool> ShardsCovered(const ScanState& s, const std::optional<IntervalSet>& policy) {
  std::vector<bool> regions = CoveredRegions(s.definition, policy);
  std::vector<uint32_t> starts = RegionStarts(s.definition);
  std::vector<bool> out(s.definition.spec.shard_count, false);
  for (size_t i = 0; i < regions.size(); ++i)
    if (regions[i])
      for (uint32_t k = starts[i]; k < starts[i + 1] && k < out.size(); ++k) out[k] = true;
  return out;
}

uint64_t RefHash(const ShardRef& ref) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
  auto mix = [&h](uint8_t b) { h = (h ^ b) * 0x100000001b3ULL; };
  for (uint8_t b : ref.scan) mix(b);
  for (char c : ref.vantage) mix(static_cast<uint8_t>(c));
  for (int i = 0; i < 4; ++i) mix(static_cast<uint8_t>(ref.shard >> (8 * i)));
  return h;
}

}  // namespace

bool LeaseFree(const ShardLease& lease, int64_t now_ms, const IsAlive& is_alive) {
  return lease.holder.empty() || lease.expires_ms <= now_ms || !is_alive(lease.holder);
}

std::optional<LeaseGrant> GrantLease(WorkStates& states, const NodeId& worker, const std::string& vantage,
                                     uint64_t epoch, int64_t now_ms, const IsAlive& is_alive,
                                     const WorkConfig& cfg, int64_t adopt_until_ms,
                                     const std::optional<IntervalSet>& policy) {
  // The cap counts what the worker is still entitled to: unexpired leases
  // of shards not done, whatever the pool.
  uint32_t held = 0;
  for (const auto& [id, s] : states)
    for (const auto& pool : s.pools)
      for (const auto& sh : pool)
        if (!sh.done.done && sh.lease.holder == worker && sh.lease.expires_ms > now_ms) ++held;
  if (held >= cfg.max_leases_per_worker) return std::nullopt;

  ScanState* fallback_scan = nullptr;
  uint32_t fallback_shard = 0;
  auto grant = [&](ScanState& s, uint32_t k) {
    ShardLease& lease = (*PoolOf(s, vantage))[k].lease;
    lease = ShardLease{worker, epoch, NextCounter(lease, epoch), now_ms + cfg.lease_duration.count()};
    return LeaseGrant{ShardRef{s.id, vantage, k}, lease};
  };
  for (ScanState* s : InCreationOrder(states)) {
    if (s->control.value != ScanControl::kRunning) continue;
    auto* pool = PoolOf(*s, vantage);
    if (!pool) continue;
    std::vector<bool> covered = ShardsCovered(*s, policy);
    for (uint32_t k = 0; k < pool->size(); ++k) {
      const ShardState& sh = (*pool)[k];
      if (k >= covered.size() || !covered[k]) continue;  // outside the worker's policy
      if (sh.done.done || sh.lease.epoch > epoch || !LeaseFree(sh.lease, now_ms, is_alive)) continue;
      if (now_ms < adopt_until_ms && sh.lease.epoch < epoch && !sh.lease.holder.empty() &&
          is_alive(sh.lease.holder))
        continue;  // the predecessor's, being adopted
      if (sh.lease.holder == worker) {  // its own expired lease: only if nothing else is free
        if (!fallback_scan) fallback_scan = s, fallback_shard = k;
        continue;
      }
      return grant(*s, k);
    }
  }
  if (fallback_scan) return grant(*fallback_scan, fallback_shard);
  return std::nullopt;
}

Result<ShardLease> RenewLease(WorkStates& states, const NodeId& worker, const ScanId& scan,
                              const std::string& vantage, uint32_t shard, uint64_t epoch, int64_t now_ms,
                              const WorkConfig& cfg) {
  auto it = states.find(scan);
  if (it == states.end()) return Status::NotFound("unknown scan " + ScanIdToHex(scan));
  ScanState& s = it->second;
  auto* pool = PoolOf(s, vantage);
  if (!pool || shard >= pool->size())
    return Status::NotFound("scan " + ScanIdToHex(scan) + " has no shard " + std::to_string(shard) +
                            " for vantage '" + vantage + "'");
  if (s.control.value == ScanControl::kStopped) return Status::Unavailable("scan stopped");
  if (s.control.value == ScanControl::kPaused) return Status::Unavailable("scan paused");
  ShardState& sh = (*pool)[shard];
  if (sh.done.done) return Status::Unavailable("shard done");
  if (sh.lease.holder != worker) return Status::Unavailable("leased to another node");
  // We are superseded: a stamp of ours would lose the join anyway.
  if (sh.lease.epoch > epoch) return Status::Unavailable("leased by a newer coordinator");
  // An expired lease nobody took since is still the holder's to renew: its
  // scan went on, and re-leasing it would only repeat the work.
  sh.lease = ShardLease{worker, epoch, NextCounter(sh.lease, epoch), now_ms + cfg.lease_duration.count()};
  return sh.lease;
}

std::string_view WorkActionKindName(WorkAction::Kind k) {
  switch (k) {
    case WorkAction::Kind::kRequestLease: return "request-lease";
    case WorkAction::Kind::kRenew: return "renew";
    case WorkAction::Kind::kStartScan: return "start-scan";
    case WorkAction::Kind::kStopScan: return "stop-scan";
    case WorkAction::Kind::kReplicate: return "replicate";
    case WorkAction::Kind::kMarkDone: return "mark-done";
  }
  return "?";
}

// ---- Worker -----------------------------------------------------------------

Worker::Worker(NodeId self, std::string vantage, WorkConfig cfg, uint64_t seed)
    : self_(self), vantage_(std::move(vantage)), cfg_(cfg), seed_(seed) {}

size_t Worker::scanning_count() const {
  return static_cast<size_t>(std::count_if(held_.begin(), held_.end(), [](const auto& e) { return !e.second.scanned; }));
}

std::vector<ShardRef> Worker::Scanning() const {
  std::vector<ShardRef> out;
  for (const auto& [ref, h] : held_)
    if (!h.scanned) out.push_back(ref);
  return out;
}

std::vector<std::pair<ShardRef, ShardLease>> Worker::HeldLeases() const {
  std::vector<std::pair<ShardRef, ShardLease>> out;
  for (const auto& [ref, h] : held_)
    if (h.renewing) out.emplace_back(ref, h.lease);
  return out;
}

std::vector<WorkAction> Worker::TakeActions() { return std::exchange(actions_, {}); }

void Worker::StopScanning(const ShardRef& ref, const std::string& reason) {
  auto it = held_.find(ref);
  if (it == held_.end()) return;
  WorkAction a;
  a.kind = WorkAction::Kind::kStopScan;
  a.ref = ref;
  a.lease = it->second.lease;
  a.reason = reason;
  actions_.push_back(std::move(a));
  held_.erase(it);
}

void Reachability::Record(int64_t now_ms, const NodeId& member, bool reached) {
  samples_.push_back({now_ms, member, reached});
  while (samples_.size() > kMaxSamples) samples_.pop_front();
}

std::optional<bool> Reachability::ReachesHalf(int64_t now_ms, const NodeId& self, const std::vector<NodeId>& alive,
                                              size_t known_with_self) const {
  size_t counted = 0, reached = 0;
  for (auto it = samples_.rbegin(); it != samples_.rend() && now_ms - it->at_ms <= kWindowMs; ++it) {
    if (!std::binary_search(alive.begin(), alive.end(), it->member)) continue;
    ++counted;
    reached += it->reached;
  }
  if (counted < kMinSamples) return std::nullopt;
  size_t others = alive.size() - (std::binary_search(alive.begin(), alive.end(), self) ? 1 : 0);
  // 2 * (1 + others * reached / counted) >= known, in integers.
  return 2 * (counted + others * reached) >= known_with_self * counted;
}

bool Reachability::Verdict(int64_t now_ms, const NodeId& self, const std::vector<NodeId>& alive,
                           size_t known_with_self) {
  bool nobody_else = alive.empty() || (alive.size() == 1 && alive.front() == self);
  if (nobody_else) return verdict_ = true;
  if (auto answer = ReachesHalf(now_ms, self, alive, known_with_self)) verdict_ = *answer;
  return verdict_;
}

void Worker::Tick(int64_t now_ms, const WorkerView& view) {
  last_now_ms_ = std::max(last_now_ms_, now_ms);
  std::vector<NodeId> alive = view.alive_members;
  std::sort(alive.begin(), alive.end());
  UpdateContact(now_ms, view);
  if (view.states) CheckAgainstState(view);
  Renew(now_ms, view);
  Replicate(now_ms, view, alive);
  MaybeRequest(now_ms, view, alive);
}

void Worker::UpdateContact(int64_t now_ms, const WorkerView& view) {
  if (view.in_contact) {
    if (!contact_since_ms_) contact_since_ms_ = now_ms;
    // Not over until it has held contact_settle (see WorkConfig); until
    // then the count neither restarts nor goes on to engage the switch.
    if (contact_lost_ms_ && now_ms - *contact_since_ms_ < cfg_.contact_settle.count()) return;
    contact_lost_ms_.reset();
    dead_man_ = false;
    return;
  }
  contact_since_ms_.reset();
  if (!contact_lost_ms_) contact_lost_ms_ = now_ms;
  if (dead_man_ || now_ms - *contact_lost_ms_ < cfg_.dead_man_after.count()) return;
  // Cut off this long, our leases are as good as gone and our results may
  // never reach anyone in time: stop rather than scan on in a minority.
  // Finished bundles stay held: they are complete, and go on to done once
  // a replica can be stored.
  dead_man_ = true;
  request_sent_ms_.reset();
  for (const ShardRef& ref : Scanning()) StopScanning(ref, "dead man's switch");
}

void Worker::CheckAgainstState(const WorkerView& view) {
  std::vector<std::pair<ShardRef, std::string>> stops;
  for (auto it = held_.begin(); it != held_.end();) {
    const auto& [ref, h] = *it;
    auto s = view.states->find(ref.scan);
    // The grant may arrive before the state that records it: no news is no stop.
    const auto* pool = s == view.states->end() ? nullptr : PoolOf(s->second, ref.vantage);
    if (!pool || ref.shard >= pool->size()) {
      ++it;
      continue;
    }
    const ShardState& sh = (*pool)[ref.shard];
    if (h.scanned) {
      // Our bundle is complete; if someone else declared the shard done
      // first there is nothing left to do with it.
      it = sh.done.done ? held_.erase(it) : std::next(it);
      continue;
    }
    ShardLease won = JoinLease(h.lease, sh.lease);
    if (sh.done.done) stops.emplace_back(ref, "shard done");
    else if (s->second.control.value == ScanControl::kStopped) stops.emplace_back(ref, "scan stopped");
    else if (s->second.control.value == ScanControl::kPaused) stops.emplace_back(ref, "scan paused");
    else if (won.holder != self_) stops.emplace_back(ref, "leased to another node");
    else it->second.lease = won;  // a renewal may show in the state before its answer
    ++it;
  }
  for (const auto& [ref, reason] : stops) StopScanning(ref, reason);
}

void Worker::Renew(int64_t now_ms, const WorkerView& view) {
  // Due renewals go out once there is a coordinator; until then they are
  // no reason to wake (NextWakeup), or a node without one (restarted with
  // its seeds silent, or while an election stabilises) would wake at once
  // again and again: the idle poll looks for one soon enough.
  renewals_wait_ = !view.coordinator;
  if (renewals_wait_) return;
  // A new coordinator hears of our leases at once: until every member of
  // our vantage has reported what it holds, it grants nothing new (its
  // predecessor may have granted what it never heard of).
  if (renewed_with_ != view.coordinator) {
    renewed_with_ = view.coordinator;
    for (auto& [ref, h] : held_) h.next_renew_ms = std::min(h.next_renew_ms, now_ms);
  }
  for (auto& [ref, h] : held_) {
    if (!h.renewing || now_ms < h.next_renew_ms) continue;
    WorkAction a;
    a.kind = WorkAction::Kind::kRenew;
    a.ref = ref;
    a.to = *view.coordinator;
    a.to_address = view.coordinator_address;
    a.lease = h.lease;
    actions_.push_back(std::move(a));
    h.next_renew_ms = now_ms + cfg_.RenewEvery().count();
  }
}

void Worker::Replicate(int64_t now_ms, const WorkerView& view, const std::vector<NodeId>& alive) {
  for (auto& entry : held_) {
    const ShardRef& ref = entry.first;  // not a structured binding: the lambda below uses h (clang)
    Held& h = entry.second;
    if (!h.scanned || h.replica_outstanding || now_ms < h.replicate_at_ms) continue;
    auto candidates = [&] {
      std::vector<NodeId> c;
      for (const NodeId& id : alive)
        if (id != self_ && !h.failed_targets.count(id)) c.push_back(id);
      return c;
    };
    std::vector<NodeId> c = candidates();
    if (c.empty() && !h.failed_targets.empty()) {  // every one failed once: start over
      h.failed_targets.clear();
      c = candidates();
    }
    if (c.empty() && view.sole_member) {
      // A mesh of one: no second copy can be had, and waiting for one would
      // never finish the scan. Done with this node's copy alone; a node
      // that joins later fetches it like any other.
      WorkAction a;
      a.kind = WorkAction::Kind::kMarkDone;
      a.ref = ref;
      a.lease = h.lease;
      a.done.done = true;
      a.done.results = h.results;
      a.done.digest = h.digest;
      a.done.holders = {self_};
      actions_.push_back(std::move(a));
      h.scanned = false;  // erased below, outside the loop
      h.replica_outstanding = true;
      alone_done_.push_back(ref);
      continue;
    }
    if (c.empty()) {  // alone for now
      h.replicate_at_ms = now_ms + cfg_.replicate_backoff.count();
      continue;
    }
    // A member picked by a seeded hash (so that tests replay), spread over
    // the mesh: always choosing the coordinator made it the second holder of
    // every shard, and the coordinator's death followed by a scanner's lost
    // results nobody had fetched yet (found by meshsim work at N=1000).
    uint64_t state = seed_ ^ RefHash(ref) ^ (uint64_t{h.replica_attempts} * 0x9e3779b97f4a7c15ULL);
    NodeId to = c[SplitMix64(state) % c.size()];
    WorkAction a;
    a.kind = WorkAction::Kind::kReplicate;
    a.ref = ref;
    a.to = to;
    // What the replica's done claim says (signed in a secured mesh).
    a.lease = h.lease;
    a.done.done = true;
    a.done.results = h.results;
    a.done.digest = h.digest;
    actions_.push_back(std::move(a));
    h.replica_outstanding = true;
    ++h.replica_attempts;
  }
  for (const ShardRef& ref : alone_done_) held_.erase(ref);
  alone_done_.clear();
}

bool Worker::WorkAvailable(int64_t now_ms, const WorkerView& view, const std::vector<NodeId>& alive) const {
  IsAlive is_alive = [&](const NodeId& id) { return id == self_ || std::binary_search(alive.begin(), alive.end(), id); };
  for (const auto& [id, s] : *view.states) {
    if (s.control.value != ScanControl::kRunning) continue;
    const auto* pool = PoolOf(s, vantage_);
    if (!pool) continue;
    std::vector<bool> covered = ShardsCovered(s, policy_);
    ShardRef ref{id, vantage_, 0};
    for (uint32_t k = 0; k < pool->size(); ++k) {
      const ShardState& sh = (*pool)[k];
      if (k >= covered.size() || !covered[k]) continue;  // not ours to scan: never asked for
      if (sh.done.done || !LeaseFree(sh.lease, now_ms, is_alive)) continue;
      ref.shard = k;
      if (!held_.count(ref)) return true;
    }
  }
  return false;
}

void Worker::MaybeRequest(int64_t now_ms, const WorkerView& view, const std::vector<NodeId>& alive) {
  if (request_sent_ms_ && now_ms - *request_sent_ms_ >= cfg_.request_timeout.count()) request_sent_ms_.reset();
  if (request_sent_ms_ || dead_man_ || !view.in_contact || !view.coordinator || !view.states) return;
  if (now_ms < retry_at_ms_) return;
  if (scanning_count() >= cfg_.parallel_shards || held_.size() >= cfg_.max_leases_per_worker) return;
  // Asking when the state shows nothing free would only load the
  // coordinator with refusals; new work shows up in the state first.
  if (!WorkAvailable(now_ms, view, alive)) return;
  WorkAction a;
  a.kind = WorkAction::Kind::kRequestLease;
  a.to = *view.coordinator;
  a.to_address = view.coordinator_address;
  actions_.push_back(std::move(a));
  request_sent_ms_ = now_ms;
}

void Worker::OnGrant(const LeaseGrant& grant, int64_t now_ms) {
  last_now_ms_ = std::max(last_now_ms_, now_ms);
  request_sent_ms_.reset();
  if (grant.ref.vantage != vantage_ || grant.lease.holder != self_) return;
  auto it = held_.find(grant.ref);
  if (it != held_.end()) {  // a shard we still scan, whose lease had lapsed
    if (Newer(grant.lease, it->second.lease)) it->second.lease = grant.lease;
    it->second.renewing = true;
    return;
  }
  // Unwanted (a late answer, or cut off meanwhile): the lease just expires.
  if (dead_man_ || scanning_count() >= cfg_.parallel_shards || held_.size() >= cfg_.max_leases_per_worker) return;
  Held h;
  h.lease = grant.lease;
  h.next_renew_ms = now_ms + cfg_.RenewEvery().count();
  held_.emplace(grant.ref, std::move(h));
  WorkAction a;
  a.kind = WorkAction::Kind::kStartScan;
  a.ref = grant.ref;
  a.lease = grant.lease;
  actions_.push_back(std::move(a));
}

void Worker::OnGrantRefused(const std::string& /*reason*/, int64_t now_ms) {
  last_now_ms_ = std::max(last_now_ms_, now_ms);
  request_sent_ms_.reset();
  retry_at_ms_ = now_ms + cfg_.idle_poll.count();
}

void Worker::OnRenewed(const ShardRef& ref, const ShardLease& lease, int64_t now_ms) {
  last_now_ms_ = std::max(last_now_ms_, now_ms);
  auto it = held_.find(ref);
  if (it != held_.end() && lease.holder == self_ && Newer(lease, it->second.lease)) it->second.lease = lease;
}

void Worker::OnRenewRefused(const ShardRef& ref, const std::string& reason, int64_t now_ms) {
  last_now_ms_ = std::max(last_now_ms_, now_ms);
  auto it = held_.find(ref);
  if (it == held_.end()) return;
  if (it->second.scanned) {
    it->second.renewing = false;
    return;
  }
  StopScanning(ref, reason);
}

void Worker::OnRenewDeferred(const ShardRef& ref, int64_t now_ms) {
  last_now_ms_ = std::max(last_now_ms_, now_ms);
  auto it = held_.find(ref);
  if (it == held_.end() || !it->second.renewing) return;
  it->second.next_renew_ms = std::min(it->second.next_renew_ms, now_ms + cfg_.idle_poll.count());
}

void Worker::OnShardScanned(const ShardRef& ref, uint64_t results, const Digest& digest, int64_t now_ms) {
  last_now_ms_ = std::max(last_now_ms_, now_ms);
  auto it = held_.find(ref);
  if (it == held_.end() || it->second.scanned) return;  // stopped meanwhile: its results stay local only
  Held& h = it->second;
  h.scanned = true;
  h.results = results;
  h.digest = digest;
  h.replicate_at_ms = now_ms;
}

void Worker::OnReplicaStored(const ShardRef& ref, const NodeId& holder, int64_t now_ms) {
  last_now_ms_ = std::max(last_now_ms_, now_ms);
  auto it = held_.find(ref);
  if (it == held_.end() || !it->second.scanned || holder == self_) return;
  WorkAction a;
  a.kind = WorkAction::Kind::kMarkDone;
  a.ref = ref;
  a.lease = it->second.lease;
  a.done.done = true;
  a.done.results = it->second.results;
  a.done.digest = it->second.digest;
  a.done.holders = {self_, holder};
  std::sort(a.done.holders.begin(), a.done.holders.end());
  actions_.push_back(std::move(a));
  held_.erase(it);
}

void Worker::OnReplicaFailed(const ShardRef& ref, const NodeId& holder, int64_t now_ms) {
  last_now_ms_ = std::max(last_now_ms_, now_ms);
  auto it = held_.find(ref);
  if (it == held_.end() || !it->second.scanned) return;
  Held& h = it->second;
  h.failed_targets.insert(holder);
  h.replica_outstanding = false;
  h.replicate_at_ms = now_ms + cfg_.replicate_backoff.count();
}

int64_t Worker::NextWakeup() const {
  // At least every idle_poll: freed shards (expired leases, dead holders)
  // show only by looking at the state again.
  int64_t t = last_now_ms_ + cfg_.idle_poll.count();
  for (const auto& [ref, h] : held_) {
    if (h.renewing && !renewals_wait_) t = std::min(t, h.next_renew_ms);
    if (h.scanned && !h.replica_outstanding) t = std::min(t, h.replicate_at_ms);
  }
  if (request_sent_ms_) t = std::min(t, *request_sent_ms_ + cfg_.request_timeout.count());
  else if (retry_at_ms_ > last_now_ms_) t = std::min(t, retry_at_ms_);
  // The switch engages only out of contact: while contact settles the
  // count neither restarts nor engages (UpdateContact), and its end may be
  // past already (contact back shortly before it), which made a wake-up in
  // the past at every Tick until contact had held.
  if (contact_lost_ms_ && !dead_man_ && !contact_since_ms_)
    t = std::min(t, *contact_lost_ms_ + cfg_.dead_man_after.count());
  if (contact_lost_ms_ && contact_since_ms_) t = std::min(t, *contact_since_ms_ + cfg_.contact_settle.count());
  return t;
}

}  // namespace ndo::mesh
