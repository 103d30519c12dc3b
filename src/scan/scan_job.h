// One scan job: the engine over some shard work, the follow-ups (banners, TLS
// certificates, service names) on every open port it finds, and one sink
// that receives both. The local runner (cli/scan_runner.cc) plugs in a store
// sink, a mesh node (mesh/agent/scan_host.cc) a bundle sink; the pipeline between
// engine and follow-ups exists once, here.
//
// No Asio here: the engine and the prober keep it in their own translation
// units, so including this header stays cheap.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "scan/engine.h"
#include "scan/service/service_prober.h"

namespace ndo {

// Where a ScanJob puts what it finds. Results come from the engine's worker
// threads, evidence from the follow-up thread, so implementations must be
// thread-safe. A non-OK status from OnResults stops the scan and is returned
// by ScanJob::Scan; one from OnEvidence ends the follow-ups and is returned
// by ScanJob::Drain.
class ScanJobSink {
 public:
  virtual ~ScanJobSink() = default;
  // The open ports of `batch` are followed up once this returns OK, so a
  // follow-up never refers to a result the sink failed to keep.
  virtual Status OnResults(ResultBatch&& batch) = 0;
  virtual Status OnEvidence(std::vector<ServiceEvidence>&& batch) = 0;
};

class ScanJob {
 public:
  // `plan` (and the spec it refers to, whose targets name hosts for SNI and
  // HTTP Host) and `sink` must outlive the job. Follow-ups run when the spec
  // asks for banners or TLS; they start their thread here.
  static Result<std::unique_ptr<ScanJob>> Create(const ScanPlan& plan, EngineOptions options, ScanJobSink& sink);
  ~ScanJob();
  ScanJob(const ScanJob&) = delete;
  ScanJob& operator=(const ScanJob&) = delete;

  bool follows_up() const { return prober_ != nullptr; }
  // Thread-safe: follow up on an open port found earlier (a resumed scan's
  // ports whose follow-ups an interrupted run did not get to). No-op when
  // the job has no follow-ups.
  void FollowUp(IpAddress address, uint16_t port);

  // Scans `work` (blocks), handing results to the sink and their open ports
  // to the follow-ups. Call once. The follow-ups may still run when it returns.
  Status Scan(std::vector<ShardWork> work);
  // Waits until every follow-up is done (or abandoned after Stop). Call after
  // Scan; OK at once when the job has no follow-ups.
  Status Drain();
  // Thread-safe, any time: ends the scan soon and abandons the follow-ups;
  // in-flight probes' positions are left for a resume.
  void Stop();

  // Thread-safe snapshots for progress displays.
  EngineProgress Progress() const { return engine_.Progress(); }
  // Null when the job has no follow-ups.
  const ServiceProbeCounters* follow_up_counters() const;

 private:
  class Results;  // the engine's ResultSink: to the sink, then to the prober
  class Evidence;  // the prober's EvidenceSink: to the sink
  ScanJob(const ScanPlan& plan, EngineOptions options, ScanJobSink& sink);

  std::unique_ptr<Evidence> evidence_;  // before prober_: the prober's thread calls it until joined
  std::unique_ptr<ServiceProber> prober_;  // before engine_: its sink enqueues here
  std::unique_ptr<Results> results_;
  Engine engine_;
};

}  // namespace ndo
