#include "scan/probe_scheduler.h"

#include <algorithm>

namespace ndo {
namespace {

// Without an explicit --max-retries a probe gets one more try than the latest
// try that ever got an answer, and at least two (Nmap's rule: answers that
// only arrive on retries show that the path drops packets, so every probe
// then deserves more tries; on a clean path one retry is enough).
constexpr int kMinAdaptiveTries = 2;

template <typename T>
void Bump(std::atomic<T>& c, T by = 1) {
  c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

}  // namespace

std::optional<ShardWork> WorkSource::Next() {
  std::lock_guard lock(mu_);
  if (work_.empty()) return std::nullopt;
  ShardWork w = work_.front();
  work_.pop_front();
  return w;
}

uint64_t WorkSource::Positions(const std::vector<ShardWork>& work) {
  uint64_t total = 0;
  for (const auto& w : work) total += w.end - w.begin;
  return total;
}

ProbeScheduler::ProbeScheduler(const ScanPlan& plan, SchedulerConfig cfg, WorkSource* work, SteadyTime now,
                               int64_t wall_us_at_now)
    : plan_(plan),
      cfg_(cfg),
      work_(work),
      steady_base_(now),
      wall_base_us_(wall_us_at_now),
      // A burst of a few milliseconds' worth keeps the pacing smooth at any rate.
      bucket_(cfg.rate, std::max(1.0, cfg.rate / 500.0), now),
      rtt_(cfg.rtt),
      limit_(std::max<uint32_t>(1, cfg.concurrency)) {
  slots_.resize(limit_);
  free_slots_.reserve(limit_);
  for (uint32_t i = limit_; i > 0; --i) free_slots_.push_back(i - 1);
}

int ProbeScheduler::AllowedTries() const {
  if (cfg_.max_retries >= 0) return cfg_.max_retries + 1;
  return std::clamp(max_answered_attempt_ + 2, kMinAdaptiveTries, kDefaultRetryCap + 1);
}

bool ProbeScheduler::FetchWork() {
  if (!work_) work_exhausted_ = true;
  if (work_exhausted_) return false;
  auto w = work_->Next();
  if (!w) {
    work_exhausted_ = true;
    return false;
  }
  ActiveShard s{};
  s.shard = w->shard;
  s.next = w->begin;
  s.end = w->end;
  s.base = w->begin;
  s.element = w->begin < w->end ? plan_.permutation().ElementAt(w->begin) : 0;
  shards_.emplace(w->shard, std::move(s));
  return true;
}

std::optional<ProbeScheduler::Pending> ProbeScheduler::NextProbe() {
  if (!retries_.empty()) {
    Pending p = retries_.front();
    retries_.pop_front();
    return p;
  }
  for (;;) {
    for (auto& [id, s] : shards_) {
      while (s.next < s.end) {
        uint64_t position = s.next++;
        uint64_t index = 0;
        bool valid = plan_.permutation().IndexOf(s.element, index);
        s.element = plan_.permutation().Next(s.element);
        s.finished.push_back(0);
        if (valid) return Pending{s.shard, position, plan_.TargetAt(index), 0};
        MarkFinished(s.shard, position);  // elements beyond the index space are skipped
      }
    }
    // Every active shard is fully issued; drop the finished ones and take more.
    for (auto it = shards_.begin(); it != shards_.end();) {
      if (it->second.next == it->second.end && it->second.finished.empty()) {
        done_shards_.push_back({it->second.shard, it->second.end, true});
        it = shards_.erase(it);
      } else {
        ++it;
      }
    }
    if (!FetchWork()) return std::nullopt;
  }
}

void ProbeScheduler::Launch(const Pending& p, SteadyTime now, std::vector<ProbeRequest>& start) {
  uint32_t slot = free_slots_.back();
  free_slots_.pop_back();
  Slot& s = slots_[slot];
  s.active = true;
  s.probe = p;
  s.sent = now;
  ++s.seq;
  deadlines_.push({now + rtt_.Timeout(), slot, s.seq});
  ++in_flight_;
  Bump(counters_.probes_sent);
  start.push_back({slot, p.target, p.attempt});
}

void ProbeScheduler::Release(uint32_t slot) {
  slots_[slot].active = false;
  free_slots_.push_back(slot);
  --in_flight_;
}

void ProbeScheduler::Poll(SteadyTime now, std::vector<ProbeRequest>& start, std::vector<uint32_t>& expired) {
  if (stopping_) {
    for (uint32_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].active) {
        expired.push_back(i);
        Release(i);
      }
    }
    retries_.clear();
    return;
  }
  // Deadlines first: their verdicts free slots and may queue retries.
  while (!deadlines_.empty() && deadlines_.top().at <= now) {
    Deadline d = deadlines_.top();
    deadlines_.pop();
    Slot& s = slots_[d.slot];
    if (!s.active || s.seq != d.seq) continue;  // answered already
    expired.push_back(d.slot);
  }
  more_to_start_ = false;
  uint32_t started = 0;
  while (in_flight_ < limit_ && !free_slots_.empty()) {
    if (!bucket_.unlimited() && bucket_.TimeUntilToken(now) > SteadyTime::duration::zero()) break;
    if (started == cfg_.max_starts_per_poll) {
      more_to_start_ = true;
      break;
    }
    auto p = NextProbe();
    if (!p) break;
    bucket_.TryTake(now);
    Launch(*p, now, start);
    ++started;
  }
}

void ProbeScheduler::OnTimeout(uint32_t slot, SteadyTime now) {
  if (slot >= slots_.size() || !slots_[slot].active) return;
  Pending p = slots_[slot].probe;
  Release(slot);
  if (p.attempt + 1 < AllowedTries()) {
    ++p.attempt;
    retries_.push_back(p);
  } else {
    Finish(p, PortState::kFiltered, 0, now);
  }
}

void ProbeScheduler::OnOutcome(uint32_t slot, ProbeOutcome outcome, SteadyTime now) {
  if (slot >= slots_.size() || !slots_[slot].active) return;
  Slot& s = slots_[slot];
  Pending p = s.probe;
  auto rtt = std::chrono::duration_cast<std::chrono::microseconds>(now - s.sent);
  Release(slot);
  rtt_.AddSample(rtt);
  max_answered_attempt_ = std::max<int>(max_answered_attempt_, p.attempt);
  if (limit_ < cfg_.concurrency) ++limit_;  // recover slowly after a local failure
  PortState state = outcome == ProbeOutcome::kConnected ? PortState::kOpen
                    : outcome == ProbeOutcome::kRefused ? PortState::kClosed
                                                        : PortState::kUnreachable;
  Finish(p, state, static_cast<uint32_t>(std::max<int64_t>(0, rtt.count())), now);
}

void ProbeScheduler::OnLocalFailure(uint32_t slot, SteadyTime now) {
  if (slot >= slots_.size() || !slots_[slot].active) return;
  Pending p = slots_[slot].probe;
  Release(slot);
  retries_.push_front(p);
  limit_ = std::max<uint32_t>(1, std::min(limit_, in_flight_ + 1) * 9 / 10);
}

void ProbeScheduler::Finish(const Pending& p, PortState state, uint32_t rtt_us, SteadyTime now) {
  ProbeResult r;
  r.address = p.target.address;
  r.port = p.target.port;
  r.state = state;
  r.attempts = static_cast<uint8_t>(p.attempt + 1);
  r.rtt_us = rtt_us;
  r.time_us = wall_base_us_ + std::chrono::duration_cast<std::chrono::microseconds>(now - steady_base_).count();
  batch_.results.push_back(r);
  switch (state) {
    case PortState::kOpen: Bump(counters_.open); break;
    case PortState::kClosed: Bump(counters_.closed); break;
    case PortState::kFiltered: Bump(counters_.filtered); break;
    case PortState::kUnreachable: Bump(counters_.unreachable); break;
  }
  MarkFinished(p.shard, p.position);
}

void ProbeScheduler::MarkFinished(uint32_t shard, uint64_t position) {
  auto it = shards_.find(shard);
  if (it == shards_.end()) return;
  ActiveShard& s = it->second;
  s.finished[position - s.base] = 1;
  while (!s.finished.empty() && s.finished.front()) {
    s.finished.pop_front();
    ++s.base;
  }
  Bump(counters_.positions_done);
}

SteadyTime ProbeScheduler::NextWakeup(SteadyTime now) {
  if (more_to_start_) return now;
  SteadyTime wake = now + std::chrono::milliseconds(50);
  // Stale heap entries (answered probes) only cause an early, harmless wakeup.
  if (!deadlines_.empty()) wake = std::min(wake, deadlines_.top().at);
  if (!bucket_.unlimited() && in_flight_ < limit_ && !Finished()) wake = std::min(wake, now + bucket_.TimeUntilToken(now));
  return wake;
}

bool ProbeScheduler::Finished() const {
  if (stopping_) return in_flight_ == 0;
  if (in_flight_ > 0 || !retries_.empty() || !work_exhausted_) return false;
  return std::all_of(shards_.begin(), shards_.end(), [](const auto& kv) {
    return kv.second.next == kv.second.end && kv.second.finished.empty();
  });
}

ResultBatch ProbeScheduler::TakeBatch() {
  // Shards that finished since the last call leave the active set here too.
  for (auto it = shards_.begin(); it != shards_.end();) {
    ActiveShard& s = it->second;
    if (s.next == s.end && s.finished.empty()) {
      done_shards_.push_back({s.shard, s.end, true});
      it = shards_.erase(it);
      continue;
    }
    if (s.base != s.reported) {
      batch_.progress.push_back({s.shard, s.base, false});
      s.reported = s.base;
    }
    ++it;
  }
  for (const auto& d : done_shards_) batch_.progress.push_back(d);
  done_shards_.clear();
  ResultBatch out = std::move(batch_);
  batch_ = ResultBatch();
  batch_.results.reserve(cfg_.batch_size);
  return out;
}

}  // namespace ndo
