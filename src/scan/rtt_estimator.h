// Per-probe timeout that follows measured round-trip times, as Nmap's does
// (RFC 6298 smoothing: timeout = srtt + 4 * rttvar, clamped to [floor, ceiling]).
// A fixed timeout (--timeout) disables adaptation.
#pragma once

#include <chrono>

namespace ndo {

class RttEstimator {
 public:
  using Duration = std::chrono::microseconds;

  struct Config {
    Duration initial{500'000};  // Nmap -T4 initial-rtt-timeout
    Duration floor{100'000};    // Nmap -T4 min-rtt-timeout
    Duration ceiling{1'250'000};  // Nmap -T4 max-rtt-timeout
    Duration fixed{0};          // non-zero: always this timeout
  };

  explicit RttEstimator(Config cfg) : cfg_(cfg) {}

  void AddSample(Duration rtt);
  Duration Timeout() const;
  Duration smoothed() const { return srtt_; }
  Duration variance() const { return rttvar_; }
  bool has_samples() const { return samples_ > 0; }

 private:
  Config cfg_;
  Duration srtt_{0};
  Duration rttvar_{0};
  long samples_ = 0;
};

}  // namespace ndo
