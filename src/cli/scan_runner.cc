#include "cli/scan_runner.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include "cli/progress_display.h"
#include "scan/scan_job.h"

namespace ndo {
namespace {

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Writes results and follow-up evidence to the scan's store.
class StoreSink : public ScanJobSink {
 public:
  StoreSink(Store& store, const ScanId& id, bool store_all) : store_(store), id_(id), store_all_(store_all) {}
  Status OnResults(ResultBatch&& batch) override { return store_.WriteBatch(id_, batch, store_all_); }
  Status OnEvidence(std::vector<ServiceEvidence>&& batch) override { return store_.WriteEvidence(id_, batch); }

 private:
  Store& store_;
  ScanId id_;
  bool store_all_;
};

// A resumed scan follows up on the open ports an earlier run found but did
// not get to (it was interrupted before their banners or handshakes).
Status EnqueueMissingFollowUps(Store& store, const ScanId& id, ScanJob& job) {
  return store.ForEachResult(id, [&](const ProbeResult& r) {
    if (r.state == PortState::kOpen && store.GetEvidence(id, r.address, r.port).status().code() == Status::Code::kNotFound)
      job.FollowUp(r.address, r.port);
    return true;
  });
}

// The shards still to scan, each from its stored checkpoint.
Result<std::vector<ShardWork>> PendingWork(Store& store, const ScanRecord& rec, const ScanPlan& plan) {
  auto progress = store.LoadProgress(rec.id);
  if (!progress.ok()) return progress.status();
  std::map<uint32_t, ShardProgress> by_shard;
  for (const auto& p : *progress) by_shard[p.shard] = p;
  std::vector<ShardWork> work;
  for (uint32_t k = 0; k < plan.shard_count(); ++k) {
    PositionRange r = plan.Shard(k);
    uint64_t begin = r.begin;
    if (auto it = by_shard.find(k); it != by_shard.end()) {
      if (it->second.done) continue;
      begin = std::clamp(it->second.next_position, r.begin, r.end);
    }
    work.push_back({k, begin, r.end});
  }
  return work;
}

// SIGINT and SIGTERM are taken synchronously by the watcher thread (sigtimedwait)
// so that stopping is ordinary code, not an async-signal handler.
class SignalWatch {
 public:
  SignalWatch() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SignalWatch() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  // Waits up to `ms` for a signal; true if one arrived.
  bool Wait(int ms) {
    timespec ts{ms / 1000, (ms % 1000) * 1000000L};
    return sigtimedwait(&set_, nullptr, &ts) > 0;
  }

 private:
  sigset_t set_{}, old_{};
};

}  // namespace

RunOutcome RunScan(Store& store, ScanRecord& rec, const RunSettings& settings) {
  RunOutcome out;
  auto plan = ScanPlan::Create(rec.spec);
  if (!plan.ok()) {
    out.status = plan.status();
    return out;
  }
  auto work = PendingWork(store, rec, *plan);
  if (!work.ok()) {
    out.status = work.status();
    return out;
  }
  uint64_t positions_total = WorkSource::Positions(*work);

  out.file_limit = RaiseFileLimit();
  EngineOptions eo = EngineOptionsForSpec(rec.spec, positions_total, settings.threads);
  out.concurrency = eo.concurrency;

  rec.state = ScanState::kRunning;
  rec.updated_us = NowMicros();
  if (Status s = store.PutScan(rec); !s.ok()) {
    out.status = s;
    return out;
  }

  // Blocks SIGINT and SIGTERM in this thread and in every thread the job
  // starts (the engine's and the follow-ups', which ScanJob::Create starts),
  // so that a signal is taken only by Wait below.
  SignalWatch signals;
  StoreSink sink(store, rec.id, rec.spec.store_all);
  auto job = ScanJob::Create(*plan, eo, sink);
  if (!job.ok()) {
    out.status = job.status();
    return out;
  }
  ScanJob& scan = **job;
  if (scan.follows_up())
    if (Status s = EnqueueMissingFollowUps(store, rec.id, scan); !s.ok()) {
      out.status = s;
      return out;
    }

  const ScanCounters before = rec.counters;
  auto start = std::chrono::steady_clock::now();
  std::atomic<bool> finished{false};
  std::atomic<bool> interrupted{false};
  Status engine_status;
  std::thread runner([&] {
    engine_status = scan.Scan(std::move(*work));
    finished = true;
  });

  auto snapshot = [&] {
    EngineProgress p = scan.Progress();
    rec.counters.probes_sent = before.probes_sent + p.probes_sent;
    rec.counters.positions_done = before.positions_done + p.positions_done;
    rec.counters.open = before.open + p.open;
    rec.counters.closed = before.closed + p.closed;
    rec.counters.filtered = before.filtered + p.filtered;
    rec.counters.unreachable = before.unreachable + p.unreachable;
    return p;
  };

  ProgressDisplay display(start);
  auto last_save = start;
  bool drew = false;
  while (!finished) {
    if (signals.Wait(100) && !interrupted.exchange(true)) scan.Stop();
    auto now = std::chrono::steady_clock::now();
    EngineProgress p = snapshot();
    if (settings.show_progress) {
      std::string line = display.Render({p.positions_done, positions_total, p.probes_sent, p.open}, now);
      std::fprintf(stderr, "\r%s\033[K", line.c_str());
      drew = true;
    }
    if (now - last_save > std::chrono::seconds(2)) {
      // Counters survive a kill -9 roughly; results and checkpoints are exact.
      rec.updated_us = NowMicros();
      store.PutScan(rec);
      last_save = now;
    }
  }
  runner.join();
  // The follow-ups of the last open ports may still run: wait for them, unless
  // the scan was interrupted; a signal while waiting abandons them (a resume
  // redoes the unfinished ones).
  Status follow_ups;
  if (const ServiceProbeCounters* c = scan.follow_up_counters()) {
    if (interrupted) scan.Stop();
    std::atomic<bool> drained{false};
    std::thread drainer([&] {
      follow_ups = scan.Drain();
      drained = true;
    });
    while (!drained) {
      if (signals.Wait(100) && !interrupted.exchange(true)) scan.Stop();
      if (settings.show_progress) {
        std::fprintf(stderr, "\r[follow-ups] %s of %s done\033[K",
                     FormatCount(c->done.load(std::memory_order_relaxed)).c_str(),
                     FormatCount(c->queued.load(std::memory_order_relaxed)).c_str());
        drew = true;
      }
    }
    drainer.join();
    out.tls_handshakes = c->tls_handshakes.load();
    out.banners = c->banners.load();
  }
  if (drew) std::fprintf(stderr, "\r\033[K");

  snapshot();
  auto end = std::chrono::steady_clock::now();
  out.seconds = std::chrono::duration<double>(end - start).count();
  out.interrupted = interrupted;
  rec.elapsed_us += std::chrono::duration_cast<std::chrono::microseconds>(end - start).count();
  rec.updated_us = NowMicros();
  if (!engine_status.ok()) {
    rec.state = ScanState::kFailed;
    rec.error = engine_status.message();
  } else if (interrupted) {
    rec.state = ScanState::kInterrupted;
  } else {
    rec.state = ScanState::kDone;
    rec.finished_us = rec.updated_us;
  }
  Status saved = store.PutScan(rec);
  out.status = !engine_status.ok() ? engine_status : !follow_ups.ok() ? follow_ups : saved;
  return out;
}

}  // namespace ndo
