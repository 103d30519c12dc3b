#include "mesh/agent/scan_host.h"

#include <algorithm>
#include <chrono>

#include "mesh/agent/pool_store.h"
#include "mesh/membership/scan_policy.h"
#include "mesh/work/scan_regions.h"
#include "scan/engine.h"
#include "scan/service/service_prober.h"
#include "scan/scan_job.h"
#include "store/result_bundle.h"

namespace ndo::mesh {

struct ScanHost::Job {
  ShardRef ref;
  ScanSpec spec;         // the shard's region's (ShardSpec), scope cut to the policy
  uint32_t local_shard = 0;  // the shard's index in that spec
  ScanState state;  // for the pool record and the bundle
  std::function<void(ShardOutcome)> done;
  std::mutex mu;
  ScanJob* scan = nullptr;  // from its start to its last follow-up
  bool scanning = false;    // while its engine runs
  bool stop = false;
  std::atomic<bool> finished{false};
  std::atomic<uint64_t> probes{0};
  std::thread thread;
};

namespace {

// Writes results and follow-up evidence to the pool's local results at once
// and keeps what it stored for the shard's bundle: the results as stored,
// the evidence with chains as fingerprints, each certificate once.
class BundleSink : public ScanJobSink {
 public:
  BundleSink(Store& store, const ScanId& pool, bool store_all) : store_(store), pool_(pool), store_all_(store_all) {}

  Status OnResults(ResultBatch&& batch) override {
    // Progress is not kept per pool: a shard that is not finished is
    // scanned again whole, by whoever gets its lease next.
    batch.progress.clear();
    if (Status s = store_.WriteBatch(pool_, batch, store_all_); !s.ok()) return s;
    std::lock_guard lock(results_mu_);
    for (const auto& r : batch.results)
      if (store_all_ || r.state == PortState::kOpen) results_.push_back(r);
    return Status::Ok();
  }

  Status OnEvidence(std::vector<ServiceEvidence>&& batch) override {
    if (Status s = store_.WriteEvidence(pool_, batch); !s.ok()) return s;
    std::lock_guard lock(evidence_mu_);
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
      evidence_.push_back(std::move(ev));
    }
    return Status::Ok();
  }

  // Moves everything kept into a bundle's contents.
  ResultBundle Take() {
    ResultBundle bundle;
    {
      std::lock_guard lock(results_mu_);
      bundle.results = std::move(results_);
    }
    std::lock_guard lock(evidence_mu_);
    bundle.evidence = std::move(evidence_);
    for (auto& [fp, cert] : certificates_) bundle.certificates.push_back(std::move(cert));
    certificates_.clear();
    return bundle;
  }

 private:
  Store& store_;
  ScanId pool_;
  bool store_all_;
  // Results come from the engine's threads, evidence from the follow-ups':
  // a lock each, so neither waits for the other.
  std::mutex results_mu_;
  std::vector<ProbeResult> results_;
  std::mutex evidence_mu_;
  std::vector<ServiceEvidence> evidence_;
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
    if (job->scan) job->scan->Stop();
  }
  for (auto& [ref, job] : jobs)
    if (job->thread.joinable()) job->thread.join();
}

Status ScanHost::Start(const ScanState& state, const ShardRef& ref, std::function<void(ShardOutcome)> done) {
  Reap();
  auto vi = VantageIndex(state, ref.vantage);
  if (!vi) return Status::InvalidArgument("scan " + ScanIdToHex(state.id) + " has no pool for vantage " + ref.vantage);
  if (ref.shard >= state.definition.spec.shard_count) return Status::InvalidArgument("no such shard");
  uint32_t local = 0;
  ScanSpec spec = ShardSpec(state.definition, ref.shard, &local);
  if (policy_) {
    // Whoever granted it, nothing outside the policy leaves this node.
    IntervalSet outside = spec.targets.addresses.Minus(*policy_);
    if (!outside.empty())
      return Status::OutOfScope("shard " + std::to_string(ref.shard) + " of scan " + ScanIdToHex(state.id) +
                                " reaches outside this node's scan policy (" + FormatAddressSet(outside, 4) +
                                "); nothing was sent");
    IntervalSet scope = *policy_;
    if (spec.has_scope) scope = scope.Minus(scope.Minus(spec.scope));
    spec.has_scope = true;
    spec.scope = std::move(scope);
  }
  if (Status s = EnsurePoolRecord(store_, state, ref.vantage); !s.ok()) return s;
  auto job = std::make_shared<Job>();
  job->ref = ref;
  job->spec = std::move(spec);
  job->local_shard = local;
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
      PositionRange r = plan->Shard(job->local_shard);
      EngineOptions eo = EngineOptionsForSpec(job->spec, r.end - r.begin, 0);
      // The engine hands whole work items to its threads and gives each
      // thread its share of the rate: one item would leave all but one
      // thread idle and the shard at rate / threads. So the shard's range is
      // cut into one run per thread.
      std::vector<ShardWork> work;
      uint64_t len = r.end - r.begin, parts = std::max<uint64_t>(1, std::min<uint64_t>(eo.threads, len));
      for (uint64_t i = 0; i < parts; ++i)
        work.push_back({job->local_shard, r.begin + len * i / parts, r.begin + len * (i + 1) / parts});
      ScanId pool = PoolId(job->state.id, job->ref.vantage);
      // Banners and TLS handshakes on the open ports run beside the engine,
      // as in a local scan (cli/scan_runner.cc).
      BundleSink sink(store_, pool, job->spec.store_all);
      auto created = ScanJob::Create(*plan, eo, sink);
      if (!created.ok()) {
        out.status = created.status();
        std::lock_guard lock(job->mu);
        out.stopped = job->stop;
      } else {
        ScanJob& scan = **created;
        bool stop_early;
        {
          std::lock_guard lock(job->mu);
          stop_early = job->stop;
          if (!stop_early) {
            job->scan = &scan;
            job->scanning = true;
          }
        }
        if (!stop_early) out.status = scan.Scan(std::move(work));
        {
          std::lock_guard lock(job->mu);
          job->scanning = false;
          // A stopped or failed scan abandons its follow-ups.
          if (job->stop || !out.status.ok()) scan.Stop();
        }
        out.probes_sent = scan.Progress().probes_sent;
        Status follow_ups = scan.Drain();
        {
          std::lock_guard lock(job->mu);
          job->scan = nullptr;
          // Stopped while the follow-ups ran: their evidence is incomplete.
          out.stopped = job->stop || stop_early;
        }
        created->reset();
        if (out.status.ok()) out.status = follow_ups;
      }
      if (out.status.ok() && !out.stopped) {
        auto bundle = EncodeResultBundle(sink.Take());
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
  if (job->scan) job->scan->Stop();
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
    if (job->scanning) n += job->scan->Progress().probes_sent;
  }
  return n;
}

}  // namespace ndo::mesh
