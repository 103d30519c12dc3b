#include "mesh/membership/rejoin_policy.h"

#include <algorithm>
#include <utility>

namespace ndo::mesh {

RejoinPolicy::RejoinPolicy(RejoinConfig config, uint64_t seed) : config_(config), rng_(seed) {}

void RejoinPolicy::Start(std::vector<std::string> addresses, size_t seed_count, Time now) {
  addresses_ = std::move(addresses);
  seed_count_ = std::min(seed_count, addresses_.size());
  if (addresses_.empty()) return;
  pending_ = true;
  backoff_ = config_.retry_first;
  next_join_ = now;  // at once, from the first tick
}

bool RejoinPolicy::Observe(bool joined, size_t alive_count, Time now) {
  bool completed = false;
  // The core counts itself joined from the first join on: a rejoin after
  // being alone is done only when someone is alive again.
  if (pending_ && joined && (!rejoining_ || alive_count > 1)) {
    pending_ = false;
    events_.push_back({rejoining_ ? RejoinEvent::Kind::kRejoined : RejoinEvent::Kind::kJoined, attempts_, alive_count, 0});
    rejoining_ = false;
    completed = true;
  }
  if (alive_count > 1) {
    alone_since_.reset();
  } else if (!alone_since_) {
    alone_since_ = now;
  }
  if (joined && alive_count > 1) {
    if (!together_since_) together_since_ = now;
  } else {
    together_since_.reset();
  }
  return completed;
}

bool RejoinPolicy::RejoinDue(Time now) const {
  return !pending_ && !leaving_ && alone_since_ && now - *alone_since_ >= config_.alone_after;
}

bool RejoinPolicy::Rejoin(std::vector<std::string> addresses, size_t seed_count, Time now) {
  addresses_ = std::move(addresses);
  seed_count_ = std::min(seed_count, addresses_.size());
  alone_since_ = now;  // with nothing to try, look again in a while
  if (addresses_.empty() || leaving_) return false;
  events_.push_back({RejoinEvent::Kind::kRejoining, 0, 0, addresses_.size()});
  pending_ = true;
  rejoining_ = true;
  attempts_ = 0;
  backoff_ = config_.retry_first;
  next_join_ = now;
  return true;
}

std::optional<JoinAttempt> RejoinPolicy::Tick(Time now) {
  if (!pending_ || leaving_ || now < next_join_) return std::nullopt;
  ++attempts_;
  next_join_ = now + backoff_;
  backoff_ = std::min(backoff_ * 2, config_.retry_max);
  return JoinAttempt{Sample(), attempts_, rejoining_, addresses_.size()};
}

void RejoinPolicy::Leave() {
  leaving_ = true;
  // No more joining: a schedule left in the past would wake the driver
  // every millisecond for the whole grace.
  pending_ = false;
  rejoining_ = false;
}

bool RejoinPolicy::KeepAbsentMembers(Time now) const {
  return !together_since_ || now - *together_since_ < config_.reap_after;
}

Time RejoinPolicy::NextWakeup() const {
  Time wake = Time::max();
  if (pending_) wake = std::min(wake, next_join_);
  if (!pending_ && !leaving_ && alone_since_) wake = std::min(wake, *alone_since_ + config_.alone_after);
  return wake;
}

std::vector<RejoinEvent> RejoinPolicy::TakeEvents() { return std::exchange(events_, {}); }

std::vector<std::string> RejoinPolicy::Sample() {
  std::vector<std::string> out(addresses_.begin(), addresses_.begin() + seed_count_);
  std::vector<std::string> known(addresses_.begin() + seed_count_, addresses_.end());
  std::shuffle(known.begin(), known.end(), rng_);
  if (known.size() > kMaxRejoinContacts) known.resize(kMaxRejoinContacts);
  out.insert(out.end(), known.begin(), known.end());
  return out;
}

}  // namespace ndo::mesh
