// The daemon's driver of the work core (mesh/work/work_core.h): it carries the
// core's requests over the agent's streams (WorkEnv), its gossip payloads
// into the membership's Broadcast, its scan commands to ScanHost's engines,
// and saves the states it names into the store, debounced (kSaveEveryMs).
// Bundles are kept in the store too (the core's BundleShelf), merged into
// the pool's views as they arrive. No protocol rule lives here: the
// simulator (simulations/meshsim) drives the same core with a simulated
// network and a fake scanner.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "mesh/membership/membership.h"
#include "mesh/agent/scan_host.h"
#include "mesh/work/work_core.h"
#include "base/status.h"
#include "store/store.h"

namespace ndo::mesh {

// Scan states changed by the protocol are saved at most this often: at a
// thousand nodes a save per merged delta is too many, and what a crash
// loses the peers give back (docs/protocol.md, "Persistence"). A scan
// submitted or controlled here is saved at once.
inline constexpr int64_t kSaveEveryMs = 1000;

struct WorkEnv {
  using ReplyHandler = std::function<void(Result<WorkMessage> reply)>;
  // One work message to the member at `address`, one reply back (decoded).
  // The handler runs on the agent's event loop, exactly once.
  std::function<void(const std::string& address, const WorkMessage& message, ReplyHandler on_reply)> request;
  // Runs fn on the agent's event loop (from any thread).
  std::function<void(std::function<void()>)> post;
  std::function<int64_t()> wall_ms;
  // Queues a payload on the membership's gossip (Membership::Broadcast): a
  // queued payload of the same key is replaced by a newer one.
  std::function<void(std::string key, std::string payload)> broadcast;
};

struct WorkStatus {
  size_t scans = 0;
  size_t running_shards = 0;
  uint64_t probes_sent = 0;
  bool dead_man_engaged = false;
};

class WorkService {
 public:
  // `keys`: the mesh's keys for the core (mesh/work/record_keys.h; a
  // secured mesh; not owned, must outlive this); nullptr in an insecure one.
  WorkService(Store& store, NodeId self, std::string vantage, WorkConfig config, WorkEnv env, uint64_t seed,
              RecordKeys* keys = nullptr);
  ~WorkService();  // saves what is unsaved, stops and joins the engines

  // This node's scan policy, for its worker, its coordinator's grants to
  // itself, and its engines (ScanHost::SetPolicy). Set before Load.
  void SetPolicy(const IntervalSet& policy);

  // Loads the scan states and bundles kept in the store.
  Status Load();

  void Tick(Time now, const MeshView& view);
  Time NextWakeup() const;

  // An inbound work message from `peer` (authenticated in a secured
  // cluster), whose vantage is `peer_vantage` ("" if unknown); `reply`
  // carries the answer.
  void OnMessage(const WorkMessage& message, const std::string& peer_vantage,
                 const std::function<void(WorkMessage)>& reply) {
    OnMessage(message, SignerInfo{false, peer_vantage}, reply);
  }
  // The same, with what the peer's certificate says of it (role and
  // vantage; an unsecured mesh: scanner, and the vantage of its record).
  void OnMessage(const WorkMessage& message, const SignerInfo& peer, const std::function<void(WorkMessage)>& reply);
  // A payload that rode the gossip (any kind; those not ours are ignored).
  void OnPayload(std::string_view payload);

  Result<ScanId> Submit(ScanDefinition definition);
  Result<ScanId> SetControl(std::string_view scan, ScanControl control);

  const WorkStates& scans() const { return core_.scans(); }
  WorkStatus status() const;

 private:
  class StoreShelf : public BundleShelf {
   public:
    explicit StoreShelf(Store& store) : store_(store) {}
    Result<std::string> Load(const ScanId& pool, uint32_t shard) override;
    Status Keep(const ScanState& state, std::string_view vantage, uint32_t shard, std::string_view bundle,
                const Digest& digest) override;

   private:
    Store& store_;
  };

  int64_t WallMs() const { return env_.wall_ms(); }
  // Takes what the core asks for and carries it out.
  void Carry();
  void Start(const ScanCommand& command);
  void Save(bool now);

  Store& store_;
  WorkEnv env_;
  StoreShelf shelf_;
  WorkCore core_;
  std::unique_ptr<ScanHost> host_;
  std::set<ScanId> unsaved_;
  int64_t last_save_ms_ = 0;
  // Set in the destructor: replies and completions arriving after it are
  // dropped (the agent's event loop may still run them).
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace ndo::mesh
