// Runs the shards this node leased: one ScanJob (scan/scan_job.h) per shard
// on a thread of its own (the engine blocks), results written to the pool's
// local results as they come (a kill -9 loses only what was in flight). When
// the spec asks for banners or TLS, the job follows up on every open port it
// finds; its evidence is written to the pool as it comes too. Once the shard
// is finished (the engine done, then every follow-up), the shard's result
// bundle, results and evidence, is sealed and stored. Completion is reported
// through `post`, which the agent points at its event loop, so the protocol
// logic stays single-threaded.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "mesh/work/pool_state.h"
#include "mesh/work/work_core.h"  // ShardOutcome
#include "mesh/work/worker.h"
#include "base/status.h"
#include "store/store.h"

namespace ndo::mesh {

class ScanHost {
 public:
  using Post = std::function<void(std::function<void()>)>;
  ScanHost(Store& store, Post post) : store_(store), post_(std::move(post)) {}
  ~ScanHost();  // stops and joins every shard
  ScanHost(const ScanHost&) = delete;
  ScanHost& operator=(const ScanHost&) = delete;

  // This node's scan policy (mesh/membership/scan_policy.h), enforced here
  // whatever the coordinator granted: a shard whose targets are not all
  // inside it is refused before anything is sent, and every engine runs
  // with the spec's scope cut down to the policy, the last gate before
  // connect(). nullopt (the default): no restriction, for tests; the agent
  // always sets one.
  void SetPolicy(std::optional<IntervalSet> policy) { policy_ = std::move(policy); }

  // Starts scanning `ref` of `state` (copied: the thread owns its spec):
  // the shard's own region of the targets (mesh/work/scan_regions.h).
  // OutOfScope when it reaches outside the policy.
  // `done` runs through post once the shard is finished or stopped.
  Status Start(const ScanState& state, const ShardRef& ref, std::function<void(ShardOutcome)> done);
  // Asks the shard's engine (and follow-ups) to stop; its outcome (stopped)
  // follows via post.
  void Stop(const ShardRef& ref);
  bool Running(const ShardRef& ref) const;
  size_t running() const;
  // Probes sent by this node's engines so far (finished shards included).
  uint64_t probes_sent() const;

 private:
  struct Job;
  void Reap();  // joins finished threads
  Store& store_;
  Post post_;
  std::optional<IntervalSet> policy_;
  mutable std::mutex mu_;
  std::map<ShardRef, std::shared_ptr<Job>> jobs_;
  std::atomic<uint64_t> probes_finished_{0};
};

}  // namespace ndo::mesh
