#include "scan/token_bucket.h"

#include <algorithm>

namespace ndo {

TokenBucket::TokenBucket(double rate_per_second, double burst, TimePoint now) : rate_(rate_per_second), tat_(now) {
  if (unlimited()) return;
  interval_ = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(1.0 / rate_));
  if (interval_ <= Duration::zero()) interval_ = Duration(1);
  double extra = std::max(1.0, burst) - 1.0;
  tolerance_ = std::chrono::duration_cast<Duration>(interval_ * extra);
}

bool TokenBucket::TryTake(TimePoint now) {
  if (unlimited()) return true;
  if (now < tat_ - tolerance_) return false;
  tat_ = std::max(tat_, now) + interval_;
  return true;
}

TokenBucket::Duration TokenBucket::TimeUntilToken(TimePoint now) {
  if (unlimited()) return Duration::zero();
  TimePoint ready = tat_ - tolerance_;
  return ready > now ? ready - now : Duration::zero();
}

}  // namespace ndo
