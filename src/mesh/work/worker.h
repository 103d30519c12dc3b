// Who scans which shard: pull-based work over the replicated scan state
// (mesh/work/pool_state.h), sans-IO like the membership core. No socket, no clock:
// every input carries `now_ms` (wall clock, as the leases' expiry), and the
// driver carries out what comes back (docs/protocol.md, "Work: leases and
// workers").
//
// * The coordinator side is a pair of functions over the states map: an idle
//   worker asks, GrantLease picks a free shard of the worker's vantage pool
//   and writes the lease into the state; RenewLease extends a lease its
//   holder still scans. Leases carry the coordinator's epoch, and the state's
//   join prefers the higher (epoch, counter), so a successor coordinator just
//   continues from the replicated state: it adopts running leases when their
//   holders renew, and its grants win over a superseded coordinator's.
// * The worker side is a state machine per node (Worker): it asks for work
//   only when there is some to get, renews while it scans, stops when the
//   state says the shard is no longer its own, has the finished bundle stored
//   on a second node and then declares the shard done.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mesh/membership/messages.h"
#include "mesh/work/pool_state.h"
#include "scan/interval_set.h"
#include "scan/ip_address.h"
#include "base/status.h"

namespace ndo::mesh {

using WorkStates = std::map<ScanId, ScanState>;
using IsAlive = std::function<bool(const NodeId&)>;

struct WorkConfig {
  // Long enough that a renewal every lease/3 survives two lost ones; short
  // enough that a lost shard waits at most this long when nobody notices
  // that its holder died (a dead holder frees it at once).
  std::chrono::milliseconds lease_duration{std::chrono::seconds(30)};
  std::chrono::milliseconds renew_every{0};  // 0: lease_duration / 3
  std::chrono::milliseconds idle_poll{std::chrono::seconds(1)};  // after "no work" and between looks at the state
  std::chrono::milliseconds request_timeout{std::chrono::seconds(5)};  // an unanswered request is given up
  std::chrono::milliseconds replicate_backoff{std::chrono::seconds(2)};  // after a replica failed
  // A worker cut off from the coordinator or from most of the mesh stops
  // scanning after this long: its leases have expired or soon will, and
  // the shards are someone else's by now.
  std::chrono::milliseconds dead_man_after{std::chrono::seconds(30)};
  // Contact must hold this long before a cut-off (or an engaged switch)
  // counts as over: a minority's view flickers back into contact now and
  // then (a coordinator of its own, a member it has not suspected yet),
  // which must not restart the count.
  std::chrono::milliseconds contact_settle{std::chrono::seconds(5)};
  uint32_t max_leases_per_worker = 2;  // scanning + finished but not yet replicated
  uint32_t parallel_shards = 1;        // shards one worker scans at once

  std::chrono::milliseconds RenewEvery() const {
    return renew_every.count() > 0 ? renew_every : lease_duration / 3;
  }
};

// One shard of one pool.
struct ShardRef {
  ScanId scan{};
  std::string vantage;
  uint32_t shard = 0;
  friend auto operator<=>(const ShardRef&, const ShardRef&) = default;
};

struct LeaseGrant {
  ShardRef ref;
  ShardLease lease;
};

// ---- Coordinator side -------------------------------------------------------

// A shard's lease is free when it was never granted, has expired at now_ms,
// or its holder is no longer alive.
bool LeaseFree(const ShardLease& lease, int64_t now_ms, const IsAlive& is_alive);

// Leases a shard to `worker` (of `vantage`) and writes the lease into
// `states`; nullopt when there is nothing to grant or the worker already
// holds cfg.max_leases_per_worker unexpired leases. Scans are taken in
// creation order (created_ms, then id), running ones that include the
// vantage; in each the lowest free shard that is not done, except that a
// shard whose expired lease was this worker's own comes last (whatever made
// it fail there may do so again). A shard leased under a higher epoch than
// ours is never free: our grant would lose the join. The lease's counter
// continues the shard's counter within one epoch and restarts at 1 in a new
// one, so every grant outranks the lease it replaces. Before
// `adopt_until_ms` (a coordinator that has just taken office), a lease of an
// earlier epoch whose holder is alive is not free even when expired: its
// holder renewed it with the predecessor, whose renewals this copy may not
// have heard of, and renews it with us soon.
// Only shards whose whole region (scan_regions.h) the worker's `policy`
// holds are granted; nullopt: no restriction (tests and simulations that
// model no policies; the daemon always knows one, maybe empty).
std::optional<LeaseGrant> GrantLease(WorkStates& states, const NodeId& worker, const std::string& vantage,
                                     uint64_t epoch, int64_t now_ms, const IsAlive& is_alive,
                                     const WorkConfig& cfg, int64_t adopt_until_ms = 0,
                                     const std::optional<IntervalSet>& policy = std::nullopt);

// Extends the holder's lease: counter up (restarting at 1 under a new
// epoch), expiry now + lease_duration, stamped with our epoch (how a new
// coordinator adopts the running leases). Unavailable with the reason when
// the scan is stopped or paused, the shard is done, or the lease is someone
// else's ("scan stopped", "scan paused", "shard done", "leased to another
// node", "leased by a newer coordinator"); NotFound for an unknown shard.
Result<ShardLease> RenewLease(WorkStates& states, const NodeId& worker, const ScanId& scan,
                              const std::string& vantage, uint32_t shard, uint64_t epoch, int64_t now_ms,
                              const WorkConfig& cfg);

// ---- Worker side ------------------------------------------------------------

// The dead man's switch's notion of contact: a coordinator, alive and not
// suspect (or this node itself), and at least half of the known members
// (self included) alive and not suspect. Suspects do not count: a node cut
// off suspects the others for many seconds before it declares them dead.
// The driver also requires that its recent syncs mostly got an answer
// (Reachability), which a cut-off node learns much sooner.
inline bool InContact(bool has_coordinator, bool coordinator_unsuspected, size_t unsuspected_with_self,
                      size_t known_with_self) {
  return has_coordinator && coordinator_unsuspected && 2 * unsuspected_with_self >= known_with_self;
}

// How much of the mesh this node can actually reach, from the outcomes of
// its anti-entropy syncs: each goes to a member drawn at random among those
// it believes alive, so the share of them that answered, applied to the
// members it believes alive, estimates how many are on its side of any
// partition, at any mesh size, for the price of traffic sent anyway. The
// membership alone is too slow to say so: a node cut off raises its local
// health multiplier (Lifeguard) and probes ever more slowly, so in a 40 s
// partition of five nodes a minority node may never even suspect one of
// the others (seen in the partition test: the switch then never engaged).
class Reachability {
 public:
  // How far back outcomes count: a sync that finds nobody fails after a
  // stream's 5 s deadline, so this holds a few of either kind.
  static constexpr int64_t kWindowMs = 10'000;
  // Fewer outcomes than this in the window say nothing.
  static constexpr size_t kMinSamples = 3;
  static constexpr size_t kMaxSamples = 64;

  void Record(int64_t now_ms, const NodeId& member, bool reached);
  // Whether this node (`self`) and the share of the others in `alive` (the
  // members it believes alive or suspect, sorted, itself among them or not)
  // that its recent syncs reached make at least half of `known_with_self`.
  // Outcomes within kWindowMs count, those of members no longer in `alive`
  // do not (the view has already taken them out); nullopt with fewer than
  // kMinSamples that count.
  std::optional<bool> ReachesHalf(int64_t now_ms, const NodeId& self, const std::vector<NodeId>& alive,
                                  size_t known_with_self) const;
  // ReachesHalf, holding its last answer while it has none (too few
  // outcomes: a cut-off node's view drops the members it cannot reach, and
  // their failures with them, so its evidence thins out just when it
  // matters). True from the start, and whenever there is nobody else
  // alive to reach (the membership view alone then decides).
  bool Verdict(int64_t now_ms, const NodeId& self, const std::vector<NodeId>& alive, size_t known_with_self);

 private:
  struct Outcome {
    int64_t at_ms;
    NodeId member;
    bool reached;
  };
  std::deque<Outcome> samples_;  // oldest first
  bool verdict_ = true;
};

// What the driver tells the worker at each Tick. Valid only during the call.
struct WorkerView {
  std::optional<NodeId> coordinator;
  std::string coordinator_address;
  // Coordinator alive and at least half of the known members alive.
  bool in_contact = false;
  const WorkStates* states = nullptr;
  std::vector<NodeId> alive_members;  // any order; self may be in it
  // This node knows no other member at all (a mesh of one): a finished
  // shard is then done with this node's copy alone.
  bool sole_member = false;
};

struct WorkAction {
  enum class Kind : uint8_t { kRequestLease, kRenew, kStartScan, kStopScan, kReplicate, kMarkDone };
  Kind kind = Kind::kRequestLease;
  ShardRef ref;            // all but kRequestLease
  NodeId to;               // kRequestLease, kRenew: the coordinator; kReplicate: the target
  std::string to_address;  // kRequestLease, kRenew: the coordinator's address
  ShardLease lease;        // kStartScan, kRenew, kReplicate, kMarkDone: the lease held
  std::string reason;      // kStopScan
  ShardDone done;          // kMarkDone: to merge into the state; kReplicate: the claim (no holders)
};
std::string_view WorkActionKindName(WorkAction::Kind k);

// One per node. The driver feeds the inputs, calls Tick(now, view) after
// them and at the latest at NextWakeup(), and carries out TakeActions():
// requests and renewals to the coordinator (their answers come back as
// OnGrant/OnGrantRefused and OnRenewed/OnRenewRefused), the engine's start
// and stop, the bundle's replication (answered by OnReplicaStored or
// OnReplicaFailed: the driver must report one of them), and MarkDone into
// the local copy of the state, which then spreads as every state change.
class Worker {
 public:
  Worker(NodeId self, std::string vantage, WorkConfig cfg, uint64_t seed = 0);

  // This node's scan policy: it asks for work only when a free shard lies
  // in a region the policy holds (so an empty policy never asks). nullopt
  // (the default): no restriction, for tests and simulations.
  void SetPolicy(std::optional<IntervalSet> policy) { policy_ = std::move(policy); }

  void Tick(int64_t now_ms, const WorkerView& view);
  void OnGrant(const LeaseGrant& grant, int64_t now_ms);
  // No work, or the request failed: ask again after idle_poll.
  void OnGrantRefused(const std::string& reason, int64_t now_ms);
  void OnRenewed(const ShardRef& ref, const ShardLease& lease, int64_t now_ms);
  // A scanning shard stops (its results so far stay local; whoever gets the
  // shard next scans it again). A shard already scanned keeps on towards
  // done: its bundle is complete whoever holds the lease.
  void OnRenewRefused(const ShardRef& ref, const std::string& reason, int64_t now_ms);
  // The renewal did not reach a coordinator (no answer, or the node asked
  // is not, or not yet, the coordinator): the lease runs on, and the
  // renewal is tried again after idle_poll rather than a whole renew_every,
  // so that a coordinator taking office learns of the lease soon.
  void OnRenewDeferred(const ShardRef& ref, int64_t now_ms);
  // The engine finished the shard and stored its bundle locally.
  void OnShardScanned(const ShardRef& ref, uint64_t results, const Digest& digest, int64_t now_ms);
  void OnReplicaStored(const ShardRef& ref, const NodeId& holder, int64_t now_ms);
  // Tried again on another node after replicate_backoff.
  void OnReplicaFailed(const ShardRef& ref, const NodeId& holder, int64_t now_ms);

  std::vector<WorkAction> TakeActions();
  int64_t NextWakeup() const;

  bool dead_man_engaged() const { return dead_man_; }
  bool request_outstanding() const { return request_sent_ms_.has_value(); }
  size_t scanning_count() const;
  size_t held_count() const { return held_.size(); }
  std::vector<ShardRef> Scanning() const;
  // The leases this node holds and still renews (scanning, or scanned and
  // waiting for a replica): what it reports with every request to the
  // coordinator.
  std::vector<std::pair<ShardRef, ShardLease>> HeldLeases() const;

 private:
  struct Held {
    ShardLease lease;
    bool scanned = false;         // the engine is done; the bundle waits for a replica
    bool renewing = true;
    int64_t next_renew_ms = 0;
    uint64_t results = 0;
    Digest digest{};
    bool replica_outstanding = false;
    int64_t replicate_at_ms = 0;
    uint32_t replica_attempts = 0;
    std::set<NodeId> failed_targets;
  };

  void UpdateContact(int64_t now_ms, const WorkerView& view);
  void StopScanning(const ShardRef& ref, const std::string& reason);
  void CheckAgainstState(const WorkerView& view);
  void Renew(int64_t now_ms, const WorkerView& view);
  void Replicate(int64_t now_ms, const WorkerView& view, const std::vector<NodeId>& alive);
  void MaybeRequest(int64_t now_ms, const WorkerView& view, const std::vector<NodeId>& alive);
  bool WorkAvailable(int64_t now_ms, const WorkerView& view, const std::vector<NodeId>& alive) const;

  NodeId self_;
  std::string vantage_;
  WorkConfig cfg_;
  uint64_t seed_;
  std::optional<IntervalSet> policy_;
  std::map<ShardRef, Held> held_;
  std::optional<int64_t> request_sent_ms_;
  std::optional<NodeId> renewed_with_;  // the coordinator the last renewals went to
  int64_t retry_at_ms_ = 0;  // no request before (after a refusal)
  bool renewals_wait_ = false;  // for a coordinator: the last Tick had none
  std::optional<int64_t> contact_lost_ms_;
  std::optional<int64_t> contact_since_ms_;  // in contact without a break since
  bool dead_man_ = false;
  int64_t last_now_ms_ = 0;
  std::vector<WorkAction> actions_;
  std::vector<ShardRef> alone_done_;  // done with our copy alone (a mesh of one), to forget
};

}  // namespace ndo::mesh
