// Distributed scans on top of SimMesh: every simulated node runs one
// production WorkCore (mesh/work/work_core.h), the very object the daemon's
// WorkService drives, and this file is only its driver, as WorkService is
// the daemon's: it holds no rule of the coordinator or the worker (no
// GrantLease, RenewLease, merge or Worker call). What it adds:
//
// * the network: the core's requests (TakeRequests) reach their member
//   after 3 one-way latencies (a stream's handshake and transfer), where
//   the member's core answers (OnMessage), and the reply comes back after
//   one (OnReply); a request or reply lost (the mesh's loss rate, drawn per
//   leg) or sent to a crashed or unreachable member fails after
//   `request_timeout`, as a stream would. The core's gossip payloads
//   (TakeBroadcasts) ride the node's own membership core (Broadcast), and
//   what the membership took in comes back through SimMesh::OnPayloads;
// * the membership's view (MeshViewOf), cached per node and rebuilt only
//   after that node's membership reported a change;
// * a fake scanner: a kStart takes shard_probes / rate simulated seconds
//   (each node's rate within +-rate_spread of the nominal one) and yields a
//   deterministic result set, a pseudo-random subset of the shard's probe
//   indices seeded by (scan seed, vantage, shard), encoded as a real result
//   bundle (EncodeResultBundle) so whoever scans a shard gets the same
//   bytes and digest; a kStop cancels it;
// * an in-memory BundleShelf per node, the bytes interned by digest across
//   nodes (a thousand nodes hold one copy of each bundle);
// * the measurements, taken from outside the cores: what their outputs and
//   messages say (grant replies decoded, scan commands, bundles delivered)
//   and what their states and shelves hold.
//
// A crashed node loses its core and everything in memory. Nodes here do not
// restart. Simulated time; the network's and the scanner's draws are
// SplitMix64 from the seed, the cores' are their own seeded generators: the
// same seed gives the same trace.
#pragma once

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
#include "mesh/work/work_core.h"
#include "mesh/work/work_messages.h"
#include "scenarios.h"
#include "sim_keys.h"
#include "sim_mesh.h"

namespace ndo::mesh::sim {

struct SimWorkConfig {
  int vantages = 2;              // node i is in vantage i % vantages
  WorkConfig work;               // the daemon's defaults unless changed
  Duration request_timeout = std::chrono::seconds(5);  // of the simulated streams
  uint64_t shard_probes = 400'000;  // probes per shard
  double rate = 20'000;             // probes per second per node, nominal
  double rate_spread = 0.2;         // each node's rate is nominal x (1 +- this), fixed per node
  double hit_rate = 0.001;          // share of a shard's probes that yield a result
  bool count_bytes = true;          // encode message skeletons to count bytes
  // Scan policies (mesh/membership/scan_policy.h): node i's is
  // policies[i % size]; none given: every node may scan the simulated
  // targets (10.0.0.0/8), as before policies existed. A scan submitted is
  // cut into regions by them, as `ndo scan` does.
  std::vector<IntervalSet> policies;
  // Signed records (sim_keys.h): a key and certificate per node, handed to
  // its core; nodes in `operators` get the operator role (the submitter).
  bool signatures = false;
  std::set<int> operators;
  uint64_t seed = 1;
};

// A shard's results as every scanner of it finds them: the encoded bundle.
struct SimBundle {
  std::shared_ptr<const std::string> bytes;  // EncodeResultBundle, interned
  Digest digest{};                           // BundleDigest
  uint64_t results = 0;
};

struct WorkTraffic {
  uint64_t messages = 0, bytes = 0, failed = 0;  // failed: lost, timed out, unreachable
};

// Everything here is observed from outside the cores: replies as the
// network carries them, scan commands, bundles delivered. A coordinator's
// answers to itself (its own lease, renewals, when it scans too) never
// leave its core and are not counted in grants/renewals: self_grants counts
// the starts of a node that coordinated at the time instead.
struct WorkStats {
  uint64_t grants = 0, grant_refusals = 0, renewals = 0, renew_refusals = 0;  // replies sent
  // Of the refusals: asked of a member that is not (or not yet) the
  // coordinator, and lease requests held back by a coordinator taking office.
  uint64_t renew_refusals_not_coordinator = 0, grant_refusals_taking_office = 0;
  uint64_t self_grants = 0;
  // Gossip payloads the cores queued (their own changes and those they
  // passed on), and received ones that were news (the core passed them on).
  uint64_t deltas_queued = 0, deltas_merged = 0;
  uint64_t scans_started = 0, scans_stopped = 0, scans_finished = 0;
  uint64_t replicas_stored = 0, replicas_failed = 0;  // bundle puts answered (ack / not), as the sender got them
  uint64_t bundles_fetched = 0, fetch_failures = 0;   // likewise for fetches
  std::map<std::string, WorkTraffic> by_kind;  // per request kind, request and reply together
  // Two up nodes scanning one shard at the same time (a start while an
  // earlier scanner is up), and starts whose previous scanner was still up.
  uint64_t concurrent_scans = 0, rescans_previous_up = 0;
  // Invariant violations: two up scanners of one shard under leases of equal
  // (epoch, counter); a done shard that is no longer done in a node's copy.
  uint64_t violations = 0;
  std::string first_violation;
  // Core wake-ups earlier than the node's wall clock after its outputs were
  // carried out, or due at once right after a Tick (each an immediate timer
  // in the daemon that changes nothing): a busy-loop sign. Not counted: due
  // this very ms after another input (a timer that falls due in the ms of a
  // reply or payload handled first; the Tick follows).
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
  // (WorkCore::Submit). The spec is nominal (10.0.0.0/8, port 80): the
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
  // At the end: (survivor, shard) pairs whose shelf lacks the shard's bundle
  // or holds other bytes than the shard yields; shards no survivor holds.
  uint64_t MissingResults(const ScanId& scan, uint64_t* shards_lost = nullptr);
  // Shards started more than once, and of those, the ones whose first
  // scanner had crashed by the time of the second start.
  uint64_t ShardsScannedTwice(uint64_t* first_holder_crashed = nullptr) const;
  // The coordinator most up nodes follow (-1 if none).
  int MajorityCoordinator() const;
  // Every up node's cached view (the one its core has) equals one built
  // afresh from its membership core.
  bool ViewsConsistent();
  // Whose state says so: done shards of a pool in node i's copy.
  uint32_t DoneIn(int i, const ScanId& scan) const;
  // Node i's core (null once crashed).
  const WorkCore* core(int i) const { return nodes_[i].core.get(); }
  // Node i's keys (null without signatures), and what all of them did.
  CountingKeys* keys(int i) const { return i < static_cast<int>(keys_.size()) ? keys_[i].get() : nullptr; }
  const KeyStats& key_stats() const { return key_stats_; }

  const WorkStats& stats() const { return stats_; }
  // Work-protocol bytes each node sent so far (requests and replies), when counted.
  const std::vector<uint64_t>& bytes_sent() const { return sent_; }
  uint64_t events_processed() const { return processed_; }
  // What a shard yields (the ground truth), computed once.
  std::shared_ptr<const SimBundle> Yield(const ScanState& s, const std::string& vantage, uint32_t shard);

 private:
  // The node's shelf: bundles by (pool, shard), their bytes shared.
  class Shelf : public BundleShelf {
   public:
    explicit Shelf(SimWork& work) : work_(work) {}
    Result<std::string> Load(const ScanId& pool, uint32_t shard) override;
    Status Keep(const ScanState& state, std::string_view vantage, uint32_t shard, std::string_view bundle,
                const Digest& digest) override;
    const std::shared_ptr<const std::string>* Find(const ScanId& pool, uint32_t shard) const;

   private:
    SimWork& work_;
    std::map<std::pair<ScanId, uint32_t>, std::shared_ptr<const std::string>> held_;
  };

  std::map<NodeId, size_t> index_;  // node ids to their index, for the policies in views
  struct Node {
    bool up = true;
    bool started = false;  // had its first Tick
    std::string vantage;
    IntervalSet policy;
    int64_t skew_ms = 0;
    double rate = 0;
    std::unique_ptr<Shelf> shelf;
    std::unique_ptr<WorkCore> core;
    // The membership's view as the core has it, rebuilt after the
    // membership reported a change of this node's view.
    std::shared_ptr<const MeshView> view;
    bool view_dirty = true;
    std::map<ShardRef, uint64_t> scanning;  // the fake engine's jobs
    Time scheduled = Time::max();
    // Completion and the done-never-flips-back check.
    bool complete = false;
    std::map<ScanId, std::vector<uint8_t>> done_seen;
  };
  enum class Ev : uint8_t { kRequest = 0, kReply = 1, kFail = 2, kScanned = 3, kStopped = 4, kWake = 5 };
  struct Event {
    Time at;
    Ev kind;
    uint64_t seq;
    int node;
    uint64_t id;  // request or job
    bool operator>(const Event& o) const {
      if (at != o.at) return at > o.at;
      if (kind != o.kind) return kind > o.kind;
      return seq > o.seq;
    }
  };
  struct Pending {
    int from = -1, to = -1;
    Time sent{};
    uint64_t core_id = 0;  // the sender core's request id
    WorkKind kind = WorkKind::kAck;
    ShardRef ref;  // renewals: whose lease the invariant follows
    WorkMessage request;
    Result<WorkMessage> reply = Status::Unavailable("no reply");
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
  void Handle(const Event& e);
  // Hands node i's core the current view if its membership changed.
  void Feed(int i);
  // Takes what node i's core asks for and carries it out (WorkService::Carry);
  // `ticked`: right after the core's Tick (for the past wake-ups' count).
  void Carry(int i, bool ticked = false);
  void Broadcast(int i, std::vector<GossipPayload> payloads);
  void Send(int i, WorkRequest request);
  void Start(int i, const ScanCommand& c);
  void Stop(int i, const ScanCommand& c);
  void Reschedule(int i, bool ticked);
  void OnPayloads(int i, const std::vector<std::string>& payloads);
  void Fail(const std::string& what);
  void Count(const WorkMessage& m, int from, WorkKind request_kind);
  void DropScanner(int i, const ShardRef& ref);
  void ExplainRescan(int i, const ShardRef& ref, const ShardLease& lease, int prev,
                     const std::vector<Scanner>& now_scanning);
  // The lease a scanner holds now: what it was granted or renewed remotely,
  // or its own copy's when it coordinates (renewals to itself stay inside).
  ShardLease LeaseOf(const Scanner& s, const ShardRef& ref) const;
  std::shared_ptr<const std::string> Intern(const Digest& digest, std::string_view bytes);

  SimMesh& mesh_;
  SimWorkConfig cfg_;
  uint64_t net_rng_;
  std::vector<Node> nodes_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  uint64_t seq_ = 0, next_id_ = 1, processed_ = 0;
  std::map<uint64_t, Pending> pending_;
  std::map<uint64_t, Job> jobs_;
  // Bundle bytes by digest, shared by every shelf; the truth per shard.
  std::map<Digest, std::shared_ptr<const std::string>> bundles_;
  std::map<std::tuple<ScanId, std::string, uint32_t>, std::shared_ptr<const SimBundle>> truth_;
  // Per shard: the up nodes scanning it, and every start in order.
  std::map<std::tuple<ScanId, std::string, uint32_t>, std::vector<Scanner>> scanners_;
  std::map<std::tuple<ScanId, std::string, uint32_t>, std::vector<std::pair<int, bool>>> starts_;  // (node, first crashed at this start)
  std::vector<uint64_t> sent_;
  WorkStats stats_;
  KeyStats key_stats_;
  std::vector<std::unique_ptr<CountingKeys>> keys_;  // by node; empty without signatures
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
  bool signatures = false;      // SimWorkConfig::signatures, the submitter an operator
  bool progress = false;        // a line on stderr every 30 simulated seconds
};

// Bootstraps the mesh, submits a scan of every vantage from a random node,
// crashes crash_fraction of the nodes at random times during the expected
// scan (the coordinator among them) and runs until every survivor's copy
// has every shard done and every survivor holds every done shard's bundle,
// or until the time limit.
Figures DistributedScan(const ScenarioOptions& o, const WorkScenarioOptions& w);

}  // namespace ndo::mesh::sim
