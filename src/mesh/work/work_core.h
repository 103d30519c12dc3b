// Distributed scans on one node, sans-IO: the replicated scan states, the
// work protocol's messages, this node's coordinator role (when the
// membership makes it one) and its worker (mesh/work/worker.h). Like the
// membership core it reads no clock, owns no thread, socket or store: every
// input carries `now_ms` (wall clock, as the leases' expiry), and what the
// node must do comes out as values the driver takes and carries out:
//
//   inputs                              outputs (Take...)
//   UpdateView(membership view, now)    TakeRequests: work messages to send,
//   Tick(now)                             each answered by OnReply(id, ...)
//   OnMessage(from, msg, now) -> reply  TakeBroadcasts: gossip payloads
//   OnReply(request id, result, now)    TakeScanCommands: start/stop a shard,
//   OnPayload(gossip payload, now)        each start answered by OnShardOutcome
//   OnShardOutcome(outcome, now)        TakeDirty: scan states to persist
//   Submit / SetControl (control)       NextWakeup: when to Tick again
//
// The daemon's driver is mesh/agent/work_service.h (Asio streams, RocksDB,
// ScanHost's engines); the simulator's is simulations/meshsim/sim_work.cc
// (a simulated network and a fake scanner). Both run this very code.
//
// * Scan states are shared: a new scan is pushed whole at once to up to
//   kMaxPushTargets alive members; a change to a known scan (pause, resume,
//   stop, a lease granted, a shard done) rides the gossip as a small delta
//   (pool_state.h ScanDelta), which every node that learns something from
//   it passes on; every second a digest exchange with one random alive
//   member fetches and hands over whatever differs (anti-entropy), so a
//   delta the gossip lost, a renewal (too frequent to gossip), or a node
//   back from a partition or a restart catches up.
// * Persistence is the driver's, debounced: TakeDirty names the states that
//   changed since the last take, and the driver saves them when it likes. A
//   crash loses at most the changes since its last save, and the peers hold
//   them all (docs/protocol.md, "Persistence").
// * The coordinator grants and renews leases (GrantLease/RenewLease, with
//   its epoch). A node that has just become coordinator adopts the leases
//   its predecessor granted before it grants any shard anew: until every
//   holder had the time to renew with it (renew_every + request_timeout),
//   a lease of an earlier epoch whose holder is alive is not free, even if
//   this node's copy says it expired (renewals do not ride the gossip, so
//   the copy's expiry is often old). Leases it never heard of (granted
//   just before its predecessor died) it learns from the workers: every
//   request carries the leases its sender holds, and within that window
//   nothing of a vantage is granted anew until every alive member of it
//   has reported (docs/protocol.md, "Leases the successor never heard of").
// * A shard is declared done only after its bundle is kept by a second node
//   (a random alive member); then every node fetches every done shard's
//   bundle it lacks, from a holder or, when none is alive, from any member,
//   kMaxBundleFetches at a time and the next as soon as one arrives, checks
//   its digest and keeps it (merged into its views by the shelf).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/log.h"
#include "mesh/membership/membership.h"
#include "mesh/work/pool_state.h"
#include "mesh/work/record_keys.h"
#include "mesh/work/work_messages.h"
#include "mesh/work/worker.h"
#include "base/status.h"

namespace ndo::mesh {

inline constexpr size_t kMaxPushTargets = 32;
inline constexpr size_t kMaxBundleFetches = 8;
// Anti-entropy: one digest exchange with a random alive member this often.
inline constexpr int64_t kSyncIntervalMs = 1000;

// Gossip payloads carry a tag byte, then the body: room for other kinds.
inline constexpr char kScanDeltaPayload = 'D';
// A delta as a gossip payload, and its queue key: one key per scan and
// field (the control, or one shard), so that a newer delta of the same
// field replaces the one still queued.
Result<std::string> ScanDeltaPayload(const ScanDelta& delta);
std::string ScanDeltaKey(const ScanId& scan);  // the control register
std::string ScanDeltaKey(const ScanId& scan, uint32_t pool, uint32_t shard);

struct MeshPeer {
  NodeId id;
  std::string address, vantage;
  // Its scan policy, from its member record (MeshViewOf always sets it;
  // empty: it takes no work). nullopt: no restriction, for tests and
  // simulations that model no policies.
  std::optional<IntervalSet> allow{};
};

// What the membership says now.
struct MeshView {
  std::optional<NodeId> coordinator;
  std::string coordinator_address;  // empty when self or unknown
  uint64_t epoch = 0;
  std::vector<MeshPeer> alive;      // alive or suspect, without self
  size_t known = 0;                 // members known (any state), without self
  // For the dead man's switch: members alive and not even suspect, and
  // whether the coordinator (if not self) is one of them. A suspect is not
  // counted as in contact: cut off, a node suspects the others for many
  // seconds (longer as its own health drops) before it declares them dead.
  size_t unsuspected = 0;
  bool coordinator_unsuspected = false;
};

// The view of a membership core, leaving out members `excluded` says so of
// (revoked ones in a secured mesh). The daemon and the simulator build it
// alike.
MeshView MeshViewOf(const Membership& core, const std::function<bool(const NodeId&)>& excluded = {});

// Where a node keeps result bundles: immutable, content-addressed by their
// digest (store/result_bundle.h BundleDigest). The driver provides it (the
// daemon's store, which also merges a kept bundle into the pool's views; the
// simulator's memory). Keep must have kept the bundle when it returns Ok:
// the core then acknowledges it as a holder.
class BundleShelf {
 public:
  virtual ~BundleShelf() = default;
  virtual Result<std::string> Load(const ScanId& pool, uint32_t shard) = 0;
  virtual Status Keep(const ScanState& state, std::string_view vantage, uint32_t shard, std::string_view bundle,
                      const Digest& digest) = 0;
};

// The end of a shard's scan, as the driver's engine reports it.
struct ShardOutcome {
  ShardRef ref;
  Status status;         // an engine or store failure
  bool stopped = false;  // a stop was asked: not finished, no bundle
  uint64_t results = 0;
  uint64_t evidence = 0;  // ports with service evidence in the bundle
  Digest digest{};        // of the bundle the driver has put on the shelf
  uint64_t probes_sent = 0;
  double seconds = 0;
};

// A work message to a member; its answer (or the transport's failure) comes
// back through OnReply(id, ...). The driver must report every request once.
struct WorkRequest {
  uint64_t id = 0;
  NodeId to;
  std::string address;
  WorkMessage message;
};

struct ScanCommand {
  enum class Kind : uint8_t { kStart, kStop };
  Kind kind = Kind::kStart;
  ShardRef ref;
  ShardLease lease;    // kStart
  std::string reason;  // kStop
};

struct GossipPayload {
  std::string key, payload;  // for Membership::Broadcast
};

class WorkCore {
 public:
  // `keys`: this node's signing key and the certificates it knows (not
  // owned; must outlive the core); nullptr in an insecure mesh.
  WorkCore(NodeId self, std::string vantage, WorkConfig config, uint64_t seed, BundleShelf& shelf,
           RecordKeys* keys = nullptr);

  // This node's scan policy (mesh/membership/scan_policy.h): its worker asks
  // only for shards inside it, and as coordinator it grants itself no
  // others (other members: their policies from the view). nullopt, the
  // default: no restriction (tests and simulations).
  void SetPolicy(std::optional<IntervalSet> policy);

  // The states and bundle digests this node kept before a restart; leases
  // it held then and that are still unexpired are taken up again.
  void Load(WorkStates states, std::map<std::pair<ScanId, uint32_t>, Digest> held, int64_t now_ms);

  // The membership's view, shared: the driver hands in a new one when the
  // membership changed (or at every Tick, if building one is cheap).
  void UpdateView(std::shared_ptr<const MeshView> view, int64_t now_ms);
  void Tick(int64_t now_ms);
  // Wall-clock ms of the next Tick due.
  int64_t NextWakeup() const;

  // An inbound work message (its sender authenticated in a secured mesh),
  // of a member whose vantage is `peer_vantage` (the one its certificate
  // binds in a secured mesh; "" if unknown, and then the request's claim is
  // taken); returns the reply. A lease request or renewal for a pool of
  // another vantage is refused, logged, and changes nothing.
  WorkMessage OnMessage(const WorkMessage& message, const std::string& peer_vantage, int64_t now_ms);
  void OnReply(uint64_t request, Result<WorkMessage> reply, int64_t now_ms);
  // A payload that rode the gossip (any kind; those not ours are ignored).
  void OnPayload(std::string_view payload, int64_t now_ms);
  void OnShardOutcome(const ShardOutcome& outcome, int64_t now_ms);

  // Control: a new scan (its id), pause/resume/stop of one (by id or unique
  // hex prefix).
  Result<ScanId> Submit(ScanDefinition definition, int64_t now_ms);
  Result<ScanId> SetControl(std::string_view scan, ScanControl control, int64_t now_ms);

  std::vector<WorkRequest> TakeRequests();
  std::vector<GossipPayload> TakeBroadcasts();
  std::vector<ScanCommand> TakeScanCommands();
  std::vector<ScanId> TakeDirty();

  const WorkStates& scans() const { return scans_; }
  const ScanState* Find(const ScanId& id) const;
  bool dead_man_engaged() const { return worker_.dead_man_engaged(); }
  const Worker& worker() const { return worker_; }
  // The bundle digest this node holds of each (pool, shard).
  const std::map<std::pair<ScanId, uint32_t>, Digest>& held() const { return held_; }

 private:
  enum class Purpose : uint8_t { kPush, kSync, kLease, kRenew, kReplica, kFetch };
  struct Pending {
    explicit Pending(Purpose p = Purpose::kPush) : purpose(p) {}
    Purpose purpose;
    NodeId to;
    std::string address;
    ShardRef ref;  // kRenew, kReplica, kFetch
    Digest want{};  // kFetch
  };

  ScanState* FindMutable(const ScanId& id);
  Result<ScanState*> FindByPrefix(std::string_view prefix);
  // Every change to a state goes through here: cached encodings dropped,
  // the state marked for the driver to save.
  void Changed(const ScanId& id);
  bool Absorb(const ScanState& state, int64_t now_ms);
  const std::string* Encoded(const ScanId& id);  // cached EncodeScanState; null if it fails
  std::optional<Digest> DigestOf(const ScanId& id);
  void GossipControl(const ScanState& state);
  void GossipShard(const ScanState& state, size_t pool, uint32_t shard);
  void Gossip(const ScanDelta& delta, std::string key);
  uint64_t Send(const MeshPeer& to, WorkMessage message, Pending pending);
  void Push(const std::vector<ScanId>& ids);
  void SyncWithRandomPeer();
  WorkMessage SyncReply(const WorkMessage& sync);
  WorkMessage Grant(const WorkMessage& request, const std::string& peer_vantage);
  WorkMessage Renew(const WorkMessage& request, const std::string& peer_vantage);
  std::optional<WorkMessage> OtherVantage(const WorkMessage& request, const std::string& peer_vantage);
  // The leases a worker reports with its request (WorkMessage::held), taken
  // into our copy; the sender counts as having reported.
  void AdoptHeld(const WorkMessage& request);
  // Every alive member of `vantage` (self included) has reported its leases
  // since this node took office.
  bool VantageReported(const std::string& vantage) const;
  std::vector<HeldLease> HeldByWorker() const;
  WorkMessage PutBundle(const WorkMessage& request);
  WorkMessage FetchBundle(const WorkMessage& request);
  WorkMessage Refusal(std::string reason) const;
  WorkMessage Base(WorkKind kind) const;
  void RunActions();
  void Execute(const WorkAction& action);
  void RequestLease();
  void RenewShard(const ShardRef& ref);
  void Replicate(const ShardRef& ref, const NodeId& to);
  void MarkDone(const ShardRef& ref, const ShardDone& done);
  // Keep missing_ true of one shard, of every shard of a state, or of all
  // states: called wherever a done record or held_ changes.
  void Track(const ScanState& s, size_t pool, uint32_t shard);
  void Track(const ScanState& s, size_t pool, uint32_t shard, const ScanId& pool_id);
  void TrackScan(const ScanState& s);
  void TrackAll();
  void Hold(const ScanState& s, size_t pool, uint32_t shard, const Digest& digest);
  void FetchMissingBundles();
  void HandleReply(const Pending& p, Result<WorkMessage> reply);
  // A request of this node to itself (it coordinates) or one that cannot
  // leave: answered after the worker's actions, never from inside them.
  void AnswerLocally(Pending p, Result<WorkMessage> reply);
  void DrainLocal();
  const MeshPeer* PeerOf(const NodeId& id) const;
  bool AliveOrSelf(const NodeId& id) const;

  NodeId self_;
  std::string vantage_;
  std::optional<IntervalSet> policy_;
  WorkConfig cfg_;
  BundleShelf& shelf_;
  RecordKeys* keys_;  // null: an insecure mesh
  std::mt19937_64 rng_;
  HybridClock hlc_;
  WorkStates scans_;
  Worker worker_;
  Reachability reachability_;  // of this node's syncs, for the dead man's switch
  // Refused deltas come from members (sealed datagrams), but a broken one
  // could send many a second: at most 10 lines per 10 s.
  LogLimiter delta_log_{10, std::chrono::seconds(10)};
  std::shared_ptr<const MeshView> view_ = std::make_shared<MeshView>();
  std::vector<NodeId> alive_ids_;  // self and view_->alive, sorted
  bool is_coordinator_ = false;
  uint64_t coordinator_epoch_ = 0;  // the epoch this node took office in
  int64_t adopt_until_ms_ = 0;      // leases of earlier epochs held by alive members are not free before
  std::set<NodeId> reported_;       // members that reported their leases since this node took office
  bool dead_man_logged_ = false;
  int64_t now_ms_ = 0;
  int64_t next_sync_ms_ = 0;
  // Encoded states and their digests, computed once per change.
  struct Cached {
    std::string bytes;
    Digest digest{};
  };
  std::map<ScanId, Cached> cache_;
  std::set<ScanId> dirty_;
  // The bundle this node holds of each (pool, shard), by its digest, and
  // fetches in flight. A shard scanned twice (its first holder looked dead)
  // has two bundles of different digests, and its done record names one:
  // a node holding the other still fetches that one, or it could never
  // serve those who ask it as a holder of the record's.
  std::map<std::pair<ScanId, uint32_t>, Digest> held_;
  std::set<std::pair<ScanId, uint32_t>> fetching_;
  // The done shards whose bundle held_ lacks (none, or another than the
  // record names), each with its pool's id (the key of held_ and
  // fetching_), in the order scans_ walks them: FetchMissingBundles starts
  // from the first and stops at kMaxBundleFetches in flight, so it costs
  // what it finds, not every shard of every scan (it runs after every
  // bundle that arrives: walking them all made a node's fetching quadratic
  // in the shards, most of meshsim's time at N=1000).
  struct MissingKey {
    ScanId scan{};
    uint32_t pool = 0, shard = 0;
    friend auto operator<=>(const MissingKey&, const MissingKey&) = default;
  };
  std::map<MissingKey, ScanId> missing_;
  uint64_t next_request_ = 1;
  std::map<uint64_t, Pending> pending_;
  std::deque<std::pair<Pending, Result<WorkMessage>>> local_;
  bool draining_ = false;
  std::vector<WorkRequest> requests_;
  std::vector<GossipPayload> broadcasts_;
  std::vector<ScanCommand> commands_;
};

}  // namespace ndo::mesh
