#include "scan/scan_job.h"

namespace ndo {

// Hands each batch to the sink, then its open ports to the follow-ups. The
// open ports are noted first because the sink takes the batch.
class ScanJob::Results : public ResultSink {
 public:
  Results(ScanJobSink& sink, ServiceProber* prober) : sink_(sink), prober_(prober) {}
  Status Consume(ResultBatch&& batch) override {
    std::vector<std::pair<IpAddress, uint16_t>> open;
    if (prober_)
      for (const auto& r : batch.results)
        if (r.state == PortState::kOpen) open.emplace_back(r.address, r.port);
    if (Status s = sink_.OnResults(std::move(batch)); !s.ok()) return s;
    for (const auto& [address, port] : open) prober_->Enqueue(address, port);
    return Status::Ok();
  }

 private:
  ScanJobSink& sink_;
  ServiceProber* prober_;
};

class ScanJob::Evidence : public EvidenceSink {
 public:
  explicit Evidence(ScanJobSink& sink) : sink_(sink) {}
  Status Consume(std::vector<ServiceEvidence>&& batch) override { return sink_.OnEvidence(std::move(batch)); }

 private:
  ScanJobSink& sink_;
};

Result<std::unique_ptr<ScanJob>> ScanJob::Create(const ScanPlan& plan, EngineOptions options, ScanJobSink& sink) {
  std::unique_ptr<ScanJob> job(new ScanJob(plan, options, sink));
  const ScanSpec& spec = plan.spec();
  if (spec.service.banners || spec.service.tls) {
    // Checked against the scan's scope again before every connect.
    auto prober = ServiceProber::Create(spec.service, spec.targets, options.scope, *job->evidence_);
    if (!prober.ok()) return prober.status();
    job->prober_ = std::move(*prober);
  }
  job->results_ = std::make_unique<Results>(sink, job->prober_.get());
  return job;
}

ScanJob::ScanJob(const ScanPlan& plan, EngineOptions options, ScanJobSink& sink)
    : evidence_(std::make_unique<Evidence>(sink)), engine_(plan, options) {}

ScanJob::~ScanJob() = default;

void ScanJob::FollowUp(IpAddress address, uint16_t port) {
  if (prober_) prober_->Enqueue(address, port);
}

Status ScanJob::Scan(std::vector<ShardWork> work) { return engine_.Run(std::move(work), *results_); }

Status ScanJob::Drain() { return prober_ ? prober_->Drain() : Status::Ok(); }

void ScanJob::Stop() {
  engine_.Stop();
  if (prober_) prober_->Stop();
}

const ServiceProbeCounters* ScanJob::follow_up_counters() const { return prober_ ? &prober_->counters() : nullptr; }

}  // namespace ndo
