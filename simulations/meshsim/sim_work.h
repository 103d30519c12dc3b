// The work protocol of distributed scans (mesh/worker.h, mesh/pool_state.h)
// on top of SimMesh: every simulated node holds its own copy of the scan
// states and a Worker, its coordinator is its own membership core's
// Coordinator() and epoch(), and what WorkService (mesh/work_service.cc) does
// over streams travels here as simulated requests and replies with the
// mesh's latency and loss. The sans-IO code is the daemon's: Worker,
// GrantLease, RenewLease, MergeScanState, JoinLease, JoinDone, NewScanState.
// What this file does is WorkService's part, step for step (see the
// comments that name its functions), without a store or sockets:
//
// * a grant or a done shard rides the node's gossip as a delta (its own
//   membership core's Broadcast, the daemon's code), and a node that learns
//   something from one passes it on; a new scan is pushed whole;
// * a request (lease, renewal, push, sync, bundle put or fetch) reaches its
//   member after 3 one-way latencies (a stream's handshake and transfer) and
//   the reply comes back after one; a request or reply lost (the mesh's loss
//   rate, drawn per leg) or sent to a crashed or unreachable member fails
//   after `request_timeout`, as a stream would;
// * "scanning" a shard takes shard_probes / rate simulated seconds (each
//   node's rate within +-rate_spread of the nominal one) and yields a
//   deterministic result set: a pseudo-random subset of the shard's probe
//   indices, seeded by (scan seed, vantage, shard), so whoever scans a shard
//   gets the same results. The bundle is that set, its digest a SplitMix
//   hash of it, its size what store/result_bundle.h would encode;
// * a crashed node loses everything it held in memory (states, bundles,
//   worker, requests in flight). Nodes here do not restart.
//
// Simulated time, seeded randomness (SplitMix64, none of the mesh's draws):
// the same seed gives the same trace.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <string>
#include <vector>

#include "mesh/work/pool_state.h"
#include "mesh/work/worker.h"
#include "mesh/work/work_messages.h"
#include "mesh/agent/work_service.h"  // kMaxPushTargets, kMaxBundleFetches
#include "scenarios.h"
#include "sim_mesh.h"

namespace ndo::mesh::sim {

struct SimWorkConfig {
  int vantages = 2;              // node i is in vantage i % vantages
  WorkConfig work;               // the daemon's defaults unless changed
  Duration request_timeout = std::chrono::seconds(5);
  Duration sync_interval = std::chrono::seconds(1);  // work_service.cc kSyncInterval
  size_t max_push_targets = kMaxPushTargets;
  size_t max_bundle_fetches = kMaxBundleFetches;
  uint64_t shard_probes = 400'000;  // probes per shard
  double rate = 20'000;             // probes per second per node, nominal
  double rate_spread = 0.2;         // each node's rate is nominal x (1 +- this), fixed per node
  double hit_rate = 0.001;          // share of a shard's probes that yield a result
  bool count_bytes = true;          // encode states and message skeletons to count bytes
  uint64_t seed = 1;
};

// A shard's results as every scanner of it finds them.
struct SimBundle {
  std::vector<uint64_t> results;  // probe indices within the scan, ascending
  Digest digest{};
  uint64_t bytes = 0;             // EncodeResultBundle's size for this many results
};

struct WorkTraffic {
  uint64_t messages = 0, bytes = 0, failed = 0;  // failed: lost, timed out, unreachable
};

struct WorkStats {
  uint64_t grants = 0, grant_refusals = 0, renewals = 0, renew_refusals = 0;
  // Deltas queued on a node's gossip (its own changes and those it passed
  // on), and received deltas that were news to their receiver.
  uint64_t deltas_queued = 0, deltas_merged = 0;
  uint64_t scans_started = 0, scans_stopped = 0, scans_finished = 0;
  uint64_t replicas_stored = 0, replicas_failed = 0, marked_done = 0;
  uint64_t bundles_fetched = 0, fetch_failures = 0;
  std::map<std::string, WorkTraffic> by_kind;  // per request kind (WorkKindName), request and reply together
  // Two up nodes scanning one shard at the same time (a start while an
  // earlier scanner is up), and starts whose previous scanner was still up.
  uint64_t concurrent_scans = 0, rescans_previous_up = 0;
  // Invariant violations: two up scanners of one shard under leases of equal
  // (epoch, counter); a done shard that is no longer done in a node's copy.
  uint64_t violations = 0;
  std::string first_violation;
  // Worker wake-ups that were already due after its actions ran (each
  // would be an immediate timer in the daemon): a busy-loop sign.
  uint64_t past_wakeups = 0;
};

class SimWork {
 public:
  SimWork(SimMesh& mesh, SimWorkConfig cfg);
  SimWork(const SimWork&) = delete;
  SimWork& operator=(const SimWork&) = delete;

  const std::string& VantageOf(int i) const { return nodes_[i].vantage; }
  static std::string VantageName(int v) { return "v" + std::to_string(v); }

  // Node `i` submits a scan of every vantage with `shards` shards per pool
  // (WorkService::Submit). The spec is nominal (10.0.0.0/8, port 80): the
  // simulated scanning uses shard_probes, not the spec's probe count.
  Result<ScanId> Submit(int i, uint32_t shards);
  // The mesh crashes node i, which loses everything it held.
  void Crash(int i);
  // Runs the mesh and the work layer until `until`; `step` runs after each
  // instant that had work events.
  void RunUntil(Time until, const std::function<void()>& step = {});

  struct Progress {
    int survivors = 0;
    int all_done = 0;  // survivors whose copy has every shard of every pool done
    int complete = 0;  // ... and which hold every done shard's bundle
    uint32_t shards_done_somewhere = 0;  // done in at least one survivor's copy
  };
  // Also checks that no done shard went back in any survivor's copy.
  Progress Check(const ScanId& scan);
  // At the end: (survivor, shard) pairs whose bundle the survivor lacks or
  // whose results differ from what the shard yields; shards no survivor holds.
  uint64_t MissingResults(const ScanId& scan, uint64_t* shards_lost = nullptr) const;
  // Shards started more than once, and of those, the ones whose first
  // scanner had crashed by the time of the second start.
  uint64_t ShardsScannedTwice(uint64_t* first_holder_crashed = nullptr) const;
  // The coordinator most up nodes follow (-1 if none).
  int MajorityCoordinator() const;
  // Every up node's view, as kept up to date from the membership's events,
  // equals one built afresh from its member table.
  bool ViewsConsistent();
  // Whose state says so: done shards of a pool in node i's copy.
  uint32_t DoneIn(int i, const ScanId& scan) const;

  const WorkStats& stats() const { return stats_; }
  // Work-protocol bytes each node sent so far (requests and replies), when counted.
  const std::vector<uint64_t>& bytes_sent() const { return sent_; }
  uint64_t events_processed() const { return processed_; }
  // What a shard yields (the ground truth).
  std::shared_ptr<const SimBundle> Yield(const ScanState& s, const std::string& vantage, uint32_t shard) const;

 private:
  // A message of the work protocol: WorkMessage's fields, with states and
  // bundles shared instead of encoded.
  struct Snapshot {
    std::shared_ptr<const ScanState> state;
    uint64_t fingerprint = 0;
    uint64_t bytes = 0;  // EncodeScanState's size (count_bytes)
  };
  struct Msg {
    WorkKind kind = WorkKind::kAck;
    int from = -1;
    std::string error;
    std::vector<std::pair<ScanId, uint64_t>> digests;   // kSync: fingerprints
    std::vector<std::shared_ptr<const Snapshot>> states;  // kPush, kSyncReply
    std::vector<ScanId> wanted;
    ShardRef ref;
    ShardLease lease;
    uint64_t epoch = 0;
    std::shared_ptr<const SimBundle> bundle;
  };
  using Reply = std::function<void(Result<Msg>)>;

  struct Node {
    bool up = true;
    std::string vantage;
    int64_t skew_ms = 0;
    double rate = 0;
    uint64_t rng = 0;
    WorkStates scans;
    std::unique_ptr<Worker> worker;
    Reachability reachability;  // of its syncs (WorkService::reachability_)
    std::unique_ptr<HybridClock> hlc;
    std::map<ScanId, std::shared_ptr<const Snapshot>> snaps;  // of the current copies; erased on change
    std::map<ScanId, uint64_t> fingerprints;                   // likewise
    // Bundles held, per scan, pool and shard (WorkService::held_).
    std::map<ScanId, std::vector<std::vector<std::shared_ptr<const SimBundle>>>> held;
    std::set<std::tuple<ScanId, size_t, uint32_t>> fetching;
    uint64_t fetch_attempts = 0;
    size_t unsuspected = 0;  // members alive and not suspect (RefreshView)  // varies the member asked when no holder is alive
    std::map<ShardRef, uint64_t> scanning;  // the engine's jobs
    Time next_sync{};
    Time scheduled = Time::max();
    // The membership's view, cached until the core reports a change.
    bool view_dirty = true;
    std::vector<int> alive;           // alive or suspect, without self, ascending
    std::vector<NodeId> alive_ids;    // with self, sorted
    // Completion and the done-never-flips-back check.
    bool complete = false;
    std::map<ScanId, std::vector<uint8_t>> done_seen;
  };
  struct View {
    std::optional<NodeId> coordinator;
    int coordinator_index = -1;  // alive in this node's view, not self
    bool is_coordinator = false;
    uint64_t epoch = 0;
  };
  enum class Ev : uint8_t { kRequest = 0, kReply = 1, kFail = 2, kPost = 3, kScanned = 4, kWake = 5 };
  struct Event {
    Time at;
    Ev kind;
    uint64_t seq;
    int node;
    uint64_t id;  // request, job or post
    bool operator>(const Event& o) const {
      if (at != o.at) return at > o.at;
      if (kind != o.kind) return kind > o.kind;
      return seq > o.seq;
    }
  };
  struct Pending {
    int from = -1, to = -1;
    Time sent{};
    Msg request;
    Result<Msg> reply = Status::Unavailable("no reply");
    Reply on_reply;
  };
  struct Job {
    int node;
    ShardRef ref;
  };
  struct Scanner {
    int node;
    ShardLease lease;
  };

  int64_t WallMs(int i) const;
  void Push(Time at, Ev kind, int node, uint64_t id);
  void Post(int i, std::function<void()> fn);
  void Handle(const Event& e);
  void Reschedule(int i);
  void RefreshView(int i);
  View ViewOf(int i);
  bool AliveIn(int i, int j);
  uint64_t Draw(int i) { return SplitMix64(nodes_[i].rng); }
  void Fail(const std::string& what);
  void Count(const Msg& m, bool reply_leg, const std::string& kind);

  // WorkService's pieces, for node i.
  void Tick(int i);
  void RunActions(int i);
  void Execute(int i, const WorkAction& a);
  void Request(int from, int to, Msg m, Reply on_reply);
  Msg OnMessage(int i, const Msg& m);
  Msg Base(int i, WorkKind kind) const;
  Msg Refusal(int i, std::string reason) const;
  bool Absorb(int i, const ScanState& state);
  void Changed(int i, const ScanId& id);  // a new scan: pushed whole
  // WorkService::GossipShard / OnPayload: a change to a known scan rides
  // node i's gossip (its own membership core) as a delta; a node that
  // learns something from one passes it on.
  void GossipShard(int i, const ScanId& id, size_t pool, uint32_t shard);
  void OnPayload(int i, std::string_view payload);
  // Every change to a node's copy goes through here (the caches above).
  void Dirty(int i, const ScanId& id) {
    nodes_[i].snaps.erase(id);
    nodes_[i].fingerprints.erase(id);
  }
  uint64_t FingerprintOf(int i, const ScanId& id);
  std::shared_ptr<const Snapshot> SnapshotOf(int i, const ScanId& id);
  void PushStates(int i, const std::vector<ScanId>& ids);
  void Sync(int i);
  Msg SyncReply(int i, const Msg& sync);
  Msg Grant(int i, const Msg& request);
  Msg Renew(int i, const Msg& request);
  void RequestLease(int i);
  void RenewShard(int i, const ShardRef& ref);
  void StartShard(int i, const ShardRef& ref, const ShardLease& lease);
  void StopShard(int i, const ShardRef& ref);
  void Replicate(int i, const ShardRef& ref, const NodeId& to);
  void MarkDone(int i, const ShardRef& ref, const ShardDone& done);
  void FetchMissingBundles(int i);
  std::shared_ptr<const SimBundle>* HeldSlot(int i, const ScanId& scan, size_t pool, uint32_t shard);
  void DropScanner(int i, const ShardRef& ref);

  SimMesh& mesh_;
  SimWorkConfig cfg_;
  uint64_t net_rng_;
  std::vector<Node> nodes_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  uint64_t seq_ = 0, next_id_ = 1, processed_ = 0;
  std::map<uint64_t, Pending> pending_;
  std::map<uint64_t, Job> jobs_;
  std::map<uint64_t, std::pair<int, std::function<void()>>> posts_;
  // Per shard: the up nodes scanning it, and every start in order.
  std::map<std::tuple<ScanId, std::string, uint32_t>, std::vector<Scanner>> scanners_;
  std::map<std::tuple<ScanId, std::string, uint32_t>, std::vector<std::pair<int, bool>>> starts_;  // (node, first crashed at this start)
  std::vector<Time> crashed_at_;
  std::vector<uint64_t> sent_;
  WorkStats stats_;
};

// ---- The scenario -----------------------------------------------------------

struct WorkScenarioOptions {
  int vantages = 2;
  uint32_t shards_per_pool = 1000;
  double crash_fraction = 0.1;
  int coordinator_crashes = 1;  // of the crashes, this many take the coordinator of the moment
  // When the first of them happens, in seconds after the submission (the
  // crash nearest this time takes the coordinator); < 0: the middle crash.
  double coordinator_crash_at_s = -1;
  uint64_t shard_probes = 400'000;
  double rate = 20'000;
  double hit_rate = 0.001;
  double time_limit_s = 3600;   // simulated, from the submission
  bool progress = false;        // a line on stderr every 30 simulated seconds
};

// Bootstraps the mesh, submits a scan of every vantage from a random node,
// crashes crash_fraction of the nodes at random times during the expected
// scan (the coordinator among them) and runs until every survivor's copy
// has every shard done and every survivor holds every done shard's bundle,
// or until the time limit.
Figures DistributedScan(const ScenarioOptions& o, const WorkScenarioOptions& w);

}  // namespace ndo::mesh::sim
