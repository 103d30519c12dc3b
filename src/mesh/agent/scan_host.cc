#include "mesh/agent/scan_host.h"

#include <algorithm>
#include <chrono>

#include "mesh/agent/pool_store.h"
#include "scan/engine.h"
#include "scan/service/service_prober.h"
#include "store/result_bundle.h"

namespace ndo::mesh {

struct ScanHost::Job {
  ShardRef ref;
  ScanSpec spec;
  ScanState state;  // for the pool record and the bundle
  std::function<void(ShardOutcome)> done;
  std::mutex mu;
  Engine* engine = nullptr;  // while it runs
  ServiceProber* prober = nullptr;  // while it runs, with banners or TLS
  bool stop = false;
  std::atomic<bool> finished{false};
  std::atomic<uint64_t> probes{0};
  std::thread thread;
};

namespace {

// Writes each batch to the pool's results at once, keeps what it stored for
// the bundle, and hands the open ports to the follow-up prober, if any.
class BundleSink : public ResultSink {
 public:
  BundleSink(Store& store, const ScanId& pool, bool store_all, ServiceProber* prober)
      : store_(store), pool_(pool), store_all_(store_all), prober_(prober) {}
  Status Consume(ResultBatch&& batch) override {
    // Progress is not kept per pool: a shard that is not finished is
    // scanned again whole, by whoever gets its lease next.
    batch.progress.clear();
    if (Status s = store_.WriteBatch(pool_, batch, store_all_); !s.ok()) return s;
    if (prober_)
      for (const auto& r : batch.results)
        if (r.state == PortState::kOpen) prober_->Enqueue(r.address, r.port);
    std::lock_guard lock(mu_);
    for (const auto& r : batch.results)
      if (store_all_ || r.state == PortState::kOpen) kept_.push_back(r);
    return Status::Ok();
  }
  std::vector<ProbeResult> Take() {
    std::lock_guard lock(mu_);
    return std::move(kept_);
  }

 private:
  Store& store_;
  ScanId pool_;
  bool store_all_;
  ServiceProber* prober_;
  std::mutex mu_;
  std::vector<ProbeResult> kept_;
};

// Writes the follow-ups' evidence to the pool at once and keeps it for the
// bundle: chains as fingerprints, each certificate once.
class BundleEvidenceSink : public EvidenceSink {
 public:
  BundleEvidenceSink(Store& store, const ScanId& pool) : store_(store), pool_(pool) {}
  Status Consume(std::vector<ServiceEvidence>&& batch) override {
    if (Status s = store_.WriteEvidence(pool_, batch); !s.ok()) return s;
    std::lock_guard lock(mu_);
    for (auto& ev : batch) {
      // What a bundle cannot carry (nothing the prober should produce) stays
      // local rather than failing the shard.
      if (!CheckBundleEvidence(ev).ok()) continue;
      if (ev.tls)
        for (auto& cert : ev.tls->chain) {
          auto fp = cert.sha256;
          if (!certificates_.count(fp)) certificates_.emplace(fp, std::move(cert));
          cert = CertificateInfo();
          cert.sha256 = fp;
        }
      kept_.push_back(std::move(ev));
    }
    return Status::Ok();
  }
  // Moves the kept evidence and certificates into `bundle`.
  void TakeInto(ResultBundle& bundle) {
    std::lock_guard lock(mu_);
    bundle.evidence = std::move(kept_);
    for (auto& [fp, cert] : certificates_) bundle.certificates.push_back(std::move(cert));
    certificates_.clear();
  }

 private:
  Store& store_;
  ScanId pool_;
  std::mutex mu_;
  std::vector<ServiceEvidence> kept_;
  std::map<std::array<uint8_t, 32>, CertificateInfo> certificates_;
};

}  // namespace

ScanHost::~ScanHost() {
  std::map<ShardRef, std::shared_ptr<Job>> jobs;
  {
    std::lock_guard lock(mu_);
    jobs = jobs_;
  }
  for (auto& [ref, job] : jobs) {
    std::lock_guard lock(job->mu);
    job->stop = true;
    if (job->engine) job->engine->Stop();
    if (job->prober) job->prober->Stop();
  }
  for (auto& [ref, job] : jobs)
    if (job->thread.joinable()) job->thread.join();
}

Status ScanHost::Start(const ScanState& state, const ShardRef& ref, std::function<void(ShardOutcome)> done) {
  Reap();
  auto vi = VantageIndex(state, ref.vantage);
  if (!vi) return Status::InvalidArgument("scan " + ScanIdToHex(state.id) + " has no pool for vantage " + ref.vantage);
  if (ref.shard >= state.definition.spec.shard_count) return Status::InvalidArgument("no such shard");
  if (Status s = EnsurePoolRecord(store_, state, ref.vantage); !s.ok()) return s;
  auto job = std::make_shared<Job>();
  job->ref = ref;
  job->spec = state.definition.spec;
  job->state = state;
  job->done = std::move(done);
  {
    std::lock_guard lock(mu_);
    if (jobs_.count(ref)) return Status::Unavailable("shard already running");
    jobs_[ref] = job;
  }
  job->thread = std::thread([this, job] {
    ShardOutcome out;
    out.ref = job->ref;
    auto start = std::chrono::steady_clock::now();
    auto plan = ScanPlan::Create(job->spec);
    if (!plan.ok()) {
      out.status = plan.status();
    } else {
      PositionRange r = plan->Shard(job->ref.shard);
      EngineOptions eo = EngineOptionsForSpec(job->spec, r.end - r.begin, 0);
      // The engine hands whole work items to its threads and gives each
      // thread its share of the rate: one item would leave all but one
      // thread idle and the shard at rate / threads. So the shard's range is
      // cut into one run per thread.
      std::vector<ShardWork> work;
      uint64_t len = r.end - r.begin, parts = std::max<uint64_t>(1, std::min<uint64_t>(eo.threads, len));
      for (uint64_t i = 0; i < parts; ++i)
        work.push_back({job->ref.shard, r.begin + len * i / parts, r.begin + len * (i + 1) / parts});
      ScanId pool = PoolId(job->state.id, job->ref.vantage);
      // Banners and TLS handshakes on the open ports, beside the engine
      // (as a local scan runs them, cli/scan_runner.cc), checked against
      // the spec's scope again before they connect.
      BundleEvidenceSink evidence_sink(store_, pool);
      std::unique_ptr<ServiceProber> prober;
      if (job->spec.service.banners || job->spec.service.tls) {
        auto created = ServiceProber::Create(job->spec.service, job->spec.targets, eo.scope, evidence_sink);
        if (created.ok())
          prober = std::move(*created);
        else
          out.status = created.status();
      }
      Engine engine(*plan, eo);
      BundleSink sink(store_, pool, job->spec.store_all, prober.get());
      bool stop_early;
      {
        std::lock_guard lock(job->mu);
        stop_early = job->stop;
        if (!stop_early && out.status.ok()) job->engine = &engine;
        job->prober = prober.get();
      }
      if (!stop_early && out.status.ok()) out.status = engine.Run(std::move(work), sink);
      {
        std::lock_guard lock(job->mu);
        job->engine = nullptr;
        // A stopped or failed scan abandons its follow-ups.
        if (prober && (job->stop || !out.status.ok())) prober->Stop();
      }
      out.probes_sent = engine.Progress().probes_sent;
      Status follow_ups;
      if (prober) follow_ups = prober->Drain();
      {
        std::lock_guard lock(job->mu);
        job->prober = nullptr;
        // Stopped while the follow-ups ran: their evidence is incomplete.
        out.stopped = job->stop || stop_early;
      }
      prober.reset();
      if (out.status.ok()) out.status = follow_ups;
      if (out.status.ok() && !out.stopped) {
        ResultBundle contents;
        contents.results = sink.Take();
        evidence_sink.TakeInto(contents);
        auto bundle = EncodeResultBundle(std::move(contents));
        if (!bundle.ok()) {
          out.status = bundle.status();
        } else {
          out.digest = BundleDigest(*bundle);
          auto decoded = DecodeResultBundle(*bundle);
          if (!decoded.ok()) {
            out.status = Status::Corruption("sealed bundle does not decode: " + decoded.status().message());
          } else {
            out.results = decoded->results.size();
            out.evidence = decoded->evidence.size();
            out.status = store_.PutMeta(BundleKey(pool, job->ref.shard), *bundle, /*sync=*/true);
          }
        }
      }
    }
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    probes_finished_ += out.probes_sent;
    job->finished = true;
    post_([job, out] { job->done(out); });
  });
  return Status::Ok();
}

void ScanHost::Stop(const ShardRef& ref) {
  std::shared_ptr<Job> job;
  {
    std::lock_guard lock(mu_);
    auto it = jobs_.find(ref);
    if (it == jobs_.end()) return;
    job = it->second;
  }
  std::lock_guard lock(job->mu);
  job->stop = true;
  if (job->engine) job->engine->Stop();
  if (job->prober) job->prober->Stop();
}

void ScanHost::Reap() {
  std::vector<std::shared_ptr<Job>> finished;
  {
    std::lock_guard lock(mu_);
    for (auto it = jobs_.begin(); it != jobs_.end();) {
      if (it->second->finished) {
        finished.push_back(it->second);
        it = jobs_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& job : finished)
    if (job->thread.joinable()) job->thread.join();
}

bool ScanHost::Running(const ShardRef& ref) const {
  std::lock_guard lock(mu_);
  auto it = jobs_.find(ref);
  return it != jobs_.end() && !it->second->finished;
}

size_t ScanHost::running() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [ref, job] : jobs_) n += !job->finished;
  return n;
}

uint64_t ScanHost::probes_sent() const {
  uint64_t n = probes_finished_;
  std::lock_guard lock(mu_);
  for (const auto& [ref, job] : jobs_) {
    std::lock_guard jl(job->mu);
    if (job->engine) n += job->engine->Progress().probes_sent;
  }
  return n;
}

}  // namespace ndo::mesh
