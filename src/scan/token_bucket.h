// A smooth token bucket for --rate: tokens accrue continuously at `rate` per
// second up to `burst`, so probes leave evenly spaced instead of in bursts at
// each timer tick. Sans-IO: the caller passes the time; tests move a fake clock.
//
// Implemented as the equivalent GCRA (a theoretical arrival time advanced by
// 1/rate per token): unlike a clipped float counter it loses no fractional
// credit, so the long-run rate is exact however coarsely it is polled.
#pragma once

#include <chrono>

namespace ndo {

class TokenBucket {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::steady_clock::duration;

  // rate <= 0 means unlimited. burst is the most tokens that can pile up while idle.
  TokenBucket(double rate_per_second, double burst, TimePoint now);

  bool unlimited() const { return rate_ <= 0; }
  // Takes one token if available at `now`.
  bool TryTake(TimePoint now);
  // How long from `now` until one token is available (zero if one is).
  Duration TimeUntilToken(TimePoint now);
  double rate() const { return rate_; }

 private:
  double rate_;
  Duration interval_{};   // time per token
  Duration tolerance_{};  // how far ahead of the schedule a burst may run
  TimePoint tat_;         // theoretical arrival time of the next token
};

}  // namespace ndo
