// The sans-IO heart of a scan: decides which (address, port) to probe next,
// when a probe has timed out, whether to retry it, and what each finished
// probe means. It owns no socket and reads no clock: the driver (the Asio
// engine in production, a simulated network in tests) passes `now` into every
// call, starts the probes it is told to start, and reports their outcomes.
//
// One scheduler runs on one thread; several share a WorkSource of shards.
// Within a shard positions are issued in cycle order, and the scheduler keeps
// a watermark below which every position is finished, so a stopped scan can
// be resumed exactly (ShardProgress).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <queue>
#include <vector>

#include "scan/probe_result.h"
#include "scan/rtt_estimator.h"
#include "scan/scan_spec.h"
#include "scan/token_bucket.h"

namespace ndo {

using SteadyTime = std::chrono::steady_clock::time_point;

// A run of positions of one shard to scan; begin may be a resume checkpoint.
struct ShardWork {
  uint32_t shard = 0;
  uint64_t begin = 0;
  uint64_t end = 0;
};

// Shards waiting to be scanned, shared by the schedulers of one engine.
// Locked once per shard taken, never per probe.
class WorkSource {
 public:
  explicit WorkSource(std::vector<ShardWork> work) : work_(work.begin(), work.end()) {}
  std::optional<ShardWork> Next();
  // Total positions of all work given at construction.
  static uint64_t Positions(const std::vector<ShardWork>& work);

 private:
  std::mutex mu_;
  std::deque<ShardWork> work_;
};

struct SchedulerConfig {
  uint32_t concurrency = 1024;   // in-flight probes for this scheduler
  double rate = 0;               // probes/s for this scheduler; 0 = unlimited
  int32_t max_retries = -1;      // -1: adaptive (see AllowedTries)
  RttEstimator::Config rtt;
  size_t batch_size = 2048;      // results per batch handed to the sink
  // Most probes one Poll starts. The driver reads answers between batches, so
  // a burst of thousands of starts does not sit on answers already waiting
  // (which would inflate measured round trips and provoke false timeouts).
  uint32_t max_starts_per_poll = 1024;
};

enum class ProbeOutcome { kConnected, kRefused, kUnreachable };

struct ProbeRequest {
  uint32_t slot = 0;
  ProbeTarget target;
  uint8_t attempt = 0;  // 0 for the first try
};

// Counters the progress display reads from another thread (relaxed atomics,
// written only by the owning thread).
struct SchedulerCounters {
  std::atomic<uint64_t> positions_done{0};
  std::atomic<uint64_t> probes_sent{0};
  std::atomic<uint64_t> open{0};
  std::atomic<uint64_t> closed{0};
  std::atomic<uint64_t> filtered{0};
  std::atomic<uint64_t> unreachable{0};
};

class ProbeScheduler {
 public:
  // `plan` and `work` must outlive the scheduler. wall_us_at_now is the Unix
  // time in microseconds at `now`; result timestamps are derived from it.
  ProbeScheduler(const ScanPlan& plan, SchedulerConfig cfg, WorkSource* work, SteadyTime now, int64_t wall_us_at_now);

  // Slots whose deadline passed go to `expired`: the driver takes a last look
  // at each (an answer may be waiting, unread, behind a busy event loop) and
  // reports OnOutcome or OnTimeout for every one of them. Probes to start now
  // go to `start`. After Stop(), `expired` holds every probe still in flight,
  // and the driver only closes them.
  void Poll(SteadyTime now, std::vector<ProbeRequest>& start, std::vector<uint32_t>& expired);
  // The probe in `slot` got an answer.
  void OnOutcome(uint32_t slot, ProbeOutcome outcome, SteadyTime now);
  // The expired probe in `slot` had no answer: retry it or call it filtered.
  void OnTimeout(uint32_t slot, SteadyTime now);
  // The driver could not send the probe in `slot` for a local reason (out of
  // descriptors or ports): it is queued again without counting an attempt,
  // and the concurrency limit backs off.
  void OnLocalFailure(uint32_t slot, SteadyTime now);

  // When Poll next has something to do (a timeout or a rate token).
  SteadyTime NextWakeup(SteadyTime now);
  // Poll stopped at max_starts_per_poll with slots free and probes waiting:
  // call it again soon, after reading what has arrived.
  bool MoreToStart() const { return more_to_start_; }
  // All work issued and answered (or stopped and drained).
  bool Finished() const;
  // Stop issuing; the next Poll aborts everything in flight. Unfinished
  // positions stay below no watermark, so a resume redoes exactly them.
  void Stop() { stopping_ = true; }
  bool stopping() const { return stopping_; }

  bool BatchReady() const { return batch_.results.size() >= cfg_.batch_size; }
  // Results and progress since the last call.
  ResultBatch TakeBatch();

  const SchedulerCounters& counters() const { return counters_; }
  uint32_t in_flight() const { return in_flight_; }
  // Tries (first probe plus retries) a probe gets before it is called filtered.
  int AllowedTries() const;
  RttEstimator::Duration CurrentTimeout() const { return rtt_.Timeout(); }

 private:
  struct ActiveShard {
    uint32_t shard;
    uint64_t next;       // next position to issue
    uint64_t end;
    uint64_t element;    // permutation element at `next`
    uint64_t base;       // watermark: every position below is finished
    std::deque<uint8_t> finished;  // flags for positions [base, next)
    uint64_t reported = UINT64_MAX;  // watermark last put in a batch
  };
  struct Pending {
    uint32_t shard;
    uint64_t position;
    ProbeTarget target;
    uint8_t attempt;
  };
  struct Slot {
    bool active = false;
    Pending probe{};
    SteadyTime sent{};
    uint32_t seq = 0;
  };
  struct Deadline {
    SteadyTime at;
    uint32_t slot;
    uint32_t seq;
    bool operator>(const Deadline& o) const { return at > o.at; }
  };

  std::optional<Pending> NextProbe();
  bool FetchWork();
  void Launch(const Pending& p, SteadyTime now, std::vector<ProbeRequest>& start);
  void Finish(const Pending& p, PortState state, uint32_t rtt_us, SteadyTime now);
  void MarkFinished(uint32_t shard, uint64_t position);
  void Release(uint32_t slot);

  const ScanPlan& plan_;
  SchedulerConfig cfg_;
  WorkSource* work_;
  SteadyTime steady_base_;
  int64_t wall_base_us_;
  TokenBucket bucket_;
  RttEstimator rtt_;

  std::map<uint32_t, ActiveShard> shards_;
  std::deque<Pending> retries_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> deadlines_;
  uint32_t in_flight_ = 0;
  uint32_t limit_;             // current concurrency limit (backs off on local failures)
  int max_answered_attempt_ = 0;
  bool stopping_ = false;
  bool more_to_start_ = false;
  bool work_exhausted_ = false;

  ResultBatch batch_;
  std::vector<ShardProgress> done_shards_;
  SchedulerCounters counters_;
};

}  // namespace ndo
