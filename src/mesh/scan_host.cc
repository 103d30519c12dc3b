#include "mesh/scan_host.h"

#include <algorithm>
#include <chrono>

#include "mesh/pool_store.h"
#include "scan/engine.h"
#include "store/result_bundle.h"

namespace ndo::mesh {

struct ScanHost::Job {
  ShardRef ref;
  ScanSpec spec;
  ScanState state;  // for the pool record and the bundle
  std::function<void(ShardOutcome)> done;
  std::mutex mu;
  Engine* engine = nullptr;  // while it runs
  bool stop = false;
  std::atomic<bool> finished{false};
  std::atomic<uint64_t> probes{0};
  std::thread thread;
};

namespace {

// Writes each batch to the pool's results at once and keeps what it stored
// for the bundle.
class BundleSink : public ResultSink {
 public:
  BundleSink(Store& store, const ScanId& pool, bool store_all) : store_(store), pool_(pool), store_all_(store_all) {}
  Status Consume(ResultBatch&& batch) override {
    // Progress is not kept per pool: a shard that is not finished is
    // scanned again whole, by whoever gets its lease next.
    batch.progress.clear();
    if (Status s = store_.WriteBatch(pool_, batch, store_all_); !s.ok()) return s;
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
  std::mutex mu_;
  std::vector<ProbeResult> kept_;
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
      std::vector<ShardWork> work{{job->ref.shard, r.begin, r.end}};
      EngineOptions eo = EngineOptionsForSpec(job->spec, WorkSource::Positions(work), 0);
      Engine engine(*plan, eo);
      ScanId pool = PoolId(job->state.id, job->ref.vantage);
      BundleSink sink(store_, pool, job->spec.store_all);
      bool stop_early;
      {
        std::lock_guard lock(job->mu);
        stop_early = job->stop;
        if (!stop_early) job->engine = &engine;
      }
      if (!stop_early) out.status = engine.Run(std::move(work), sink);
      {
        std::lock_guard lock(job->mu);
        job->engine = nullptr;
        out.stopped = job->stop || stop_early;
      }
      out.probes_sent = engine.Progress().probes_sent;
      if (out.status.ok() && !out.stopped) {
        auto bundle = EncodeResultBundle(sink.Take());
        if (!bundle.ok()) {
          out.status = bundle.status();
        } else {
          out.digest = BundleDigest(*bundle);
          auto decoded = DecodeResultBundle(*bundle);
          out.results = decoded.ok() ? decoded->size() : 0;
          out.status = store_.PutMeta(BundleKey(pool, job->ref.shard), *bundle, /*sync=*/true);
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
