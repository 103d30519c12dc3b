// Distributed scans on one agent: the replicated scan states, the work
// protocol's messages, this node's worker (mesh/work_core.h) and its scanning
// (mesh/scan_host.h). No Asio here: the agent (mesh_node.cc) hands in
// inbound work frames, the membership view and the time, and carries the
// requests this service makes through the `WorkEnv` it provides.
//
// * Scan states are kept in the store (mesh/pool_store.h) and shared:
//   a new scan is pushed whole at once to up to kMaxPushTargets alive
//   members; a change to a known scan (pause/resume/stop, a lease granted,
//   a shard done) rides the gossip as a small delta (pool_state.h
//   ScanDelta), which every node that learns something from it passes on;
//   every second a digest exchange with one random alive member fetches
//   and hands over whatever differs (anti-entropy), so a delta that the
//   gossip lost, a renewal (too frequent to gossip), or a node back from a
//   partition or a restart catches up.
// * The coordinator (the membership's derived one) grants and renews leases
//   (GrantLease/RenewLease on the replicated state, with its epoch).
// * A shard is declared done only after its bundle is stored by a second
//   node (a random alive member); then every node fetches every done
//   shard's bundle it lacks, from a holder or, when none is alive, from any
//   member (all of them serve what they fetched), kMaxBundleFetches at a
//   time and the next as soon as one arrives, checks its digest and merges
//   it into its views.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "mesh/log.h"
#include "mesh/membership.h"
#include "mesh/pool_state.h"
#include "mesh/scan_host.h"
#include "mesh/work_core.h"
#include "mesh/work_messages.h"
#include "scan/status.h"
#include "store/store.h"

namespace ndo::mesh {

inline constexpr size_t kMaxPushTargets = 32;
inline constexpr size_t kMaxBundleFetches = 8;

struct WorkEnv {
  using ReplyHandler = std::function<void(Result<WorkMessage> reply)>;
  // One work message to the member at `address`, one reply back (decoded).
  std::function<void(const std::string& address, const WorkMessage& message, ReplyHandler on_reply)> request;
  // Runs fn on the agent's event loop (from any thread).
  std::function<void(std::function<void()>)> post;
  std::function<int64_t()> wall_ms;
  // Queues a payload on the membership's gossip (Membership::Broadcast): a
  // queued payload of the same key is replaced by a newer one.
  std::function<void(std::string key, std::string payload)> broadcast;
};

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

struct WorkStatus {
  size_t scans = 0;
  size_t running_shards = 0;
  uint64_t probes_sent = 0;
  bool dead_man_engaged = false;
};

class WorkService {
 public:
  WorkService(Store& store, NodeId self, std::string vantage, WorkConfig config, WorkEnv env, uint64_t seed);
  ~WorkService();

  // Loads the scan states kept in the store.
  Status Load();

  void Tick(Time now, const MeshView& view);
  Time NextWakeup() const;

  // An inbound work message from `peer` (authenticated in a secured
  // cluster), whose vantage is `peer_vantage` ("" if unknown); `reply`
  // carries the answer.
  void OnMessage(const WorkMessage& message, const std::string& peer_vantage,
                 const std::function<void(WorkMessage)>& reply);
  // A payload that rode the gossip (any kind; those not ours are ignored).
  void OnPayload(std::string_view payload);

  // Control: a new scan (its id), pause/resume/stop of one (by id or unique
  // hex prefix).
  Result<ScanId> Submit(ScanDefinition definition);
  Result<ScanId> SetControl(std::string_view scan, ScanControl control);

  const std::map<ScanId, ScanState>& scans() const { return scans_; }
  WorkStatus status() const;

 private:
  int64_t WallMs() const { return env_.wall_ms(); }
  // Merges a state from a peer (or a local change); saves and returns
  // whether anything changed.
  bool Absorb(const ScanState& state);
  void Save(const ScanState& state);
  void Changed(const ScanState& state);  // a new scan: saved, pushed whole to members
  // A change to a known scan: saved, and its control register or one shard
  // gossiped as a delta.
  void GossipControl(const ScanState& state);
  void GossipShard(const ScanState& state, size_t pool, uint32_t shard);
  void Gossip(const ScanDelta& delta, std::string key);
  void Push(const std::vector<ScanId>& ids);
  void SyncWithRandomPeer();
  WorkMessage SyncReply(const WorkMessage& sync);
  WorkMessage Grant(const WorkMessage& request, const std::string& peer_vantage);
  WorkMessage Renew(const WorkMessage& request);
  WorkMessage PutBundle(const WorkMessage& request);
  WorkMessage FetchBundle(const WorkMessage& request);
  WorkMessage Refusal(std::string reason) const;
  WorkMessage Base(WorkKind kind) const;
  void RunActions();
  void Execute(const WorkAction& action);
  void RequestLease();
  void RenewShard(const ShardRef& ref);
  void StartShard(const ShardRef& ref);
  void Replicate(const ShardRef& ref, const NodeId& to);
  void MarkDone(const ShardRef& ref, const ShardDone& done);
  void FetchMissingBundles();
  std::string AddressOf(const NodeId& id) const;
  ScanState* Find(const ScanId& id);
  Result<ScanState*> FindByPrefix(std::string_view prefix);

  Store& store_;
  NodeId self_;
  std::string vantage_;
  WorkConfig cfg_;
  WorkEnv env_;
  std::mt19937_64 rng_;
  HybridClock hlc_;
  std::map<ScanId, ScanState> scans_;
  Worker worker_;
  Reachability reachability_;  // of this node's syncs, for the dead man's switch
  // Refused deltas come from members (sealed datagrams), but a broken one
  // could send many a second: at most 10 lines per 10 s.
  LogLimiter delta_log_{10, std::chrono::seconds(10)};
  std::unique_ptr<ScanHost> host_;
  MeshView view_;
  bool is_coordinator_ = false;
  bool dead_man_logged_ = false;
  Time now_{};
  Time next_sync_{};
  // The bundle this node holds of each (pool, shard), by its digest, and
  // fetches in flight. A shard scanned twice (its first holder looked dead)
  // has two bundles of different digests, and its done record names one:
  // a node holding the other still fetches that one, or it could never
  // serve those who ask it as a holder of the record's.
  std::map<std::pair<ScanId, uint32_t>, Digest> held_;
  std::set<std::pair<ScanId, uint32_t>> fetching_;
  std::set<ShardRef> replicating_;
  // Set in the destructor: replies and completions arriving after it are
  // dropped (the agent's event loop may still run them).
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ndo::mesh
