// The production driver of ProbeScheduler: Boost.Asio, non-blocking connect()
// probes, one io_context and one scheduler per worker thread, nothing shared
// on the per-probe path. Sockets close with SO_LINGER 0, so an open port is
// left with a RST and no TIME_WAIT piles up.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "scan/probe_scheduler.h"

namespace ndo {

// Receives what the engine found. Called from worker threads, one batch at a
// time per worker; implementations must be thread-safe. A non-OK status stops
// the scan (e.g. the disk is full) and is returned from Engine::Run.
class ResultSink {
 public:
  virtual ~ResultSink() = default;
  virtual Status Consume(ResultBatch&& batch) = 0;
};

struct EngineOptions {
  uint32_t threads = 1;
  uint32_t concurrency = 1024;  // total over all threads
  double rate = 0;              // total probes/s; 0 = unlimited
  int32_t max_retries = -1;
  RttEstimator::Config rtt;
  // When set, the last gate before connect(): a probe outside it is never sent
  // and stops the scan with OutOfScope.
  const IntervalSet* scope = nullptr;
};

struct EngineProgress {
  uint64_t positions_done = 0;
  uint64_t probes_sent = 0;
  uint64_t open = 0, closed = 0, filtered = 0, unreachable = 0;
};

class Engine {
 public:
  Engine(const ScanPlan& plan, EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Scans `work`, hands every result to `sink`, returns when all is done or
  // after Stop(). Call once.
  Status Run(std::vector<ShardWork> work, ResultSink& sink);
  // Thread-safe: ends the scan soon; in-flight probes are abandoned and their
  // positions left for a resume.
  void Stop();
  bool stopped() const { return stop_requested_.load(); }
  // Thread-safe snapshot for progress displays.
  EngineProgress Progress() const;

 private:
  class Worker;
  const ScanPlan& plan_;
  EngineOptions options_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> running_{false};
};

// The engine settings a spec asks for: its rate, retries, timeouts and
// scope; concurrency from the descriptor limit (raised first), the spec's cap
// and the positions to scan; `threads` (0: one per core, at most 4) fewer
// when there is little concurrency to share.
EngineOptions EngineOptionsForSpec(const ScanSpec& spec, uint64_t positions, uint32_t threads);

// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft limit.
uint64_t RaiseFileLimit();
// In-flight probes the descriptor limit allows, keeping a reserve for the
// store, output files and the process itself.
uint32_t AutoConcurrency(uint64_t file_limit);

}  // namespace ndo
