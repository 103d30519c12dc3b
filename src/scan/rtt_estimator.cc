#include "scan/rtt_estimator.h"

#include <algorithm>

namespace ndo {

void RttEstimator::AddSample(Duration rtt) {
  if (rtt < Duration::zero()) return;
  if (samples_++ == 0) {
    srtt_ = rtt;
    rttvar_ = rtt / 2;
    return;
  }
  Duration delta = rtt > srtt_ ? rtt - srtt_ : srtt_ - rtt;
  rttvar_ = (rttvar_ * 3 + delta) / 4;
  srtt_ = (srtt_ * 7 + rtt) / 8;
}

RttEstimator::Duration RttEstimator::Timeout() const {
  if (cfg_.fixed > Duration::zero()) return cfg_.fixed;
  if (samples_ == 0) return std::clamp(cfg_.initial, cfg_.floor, cfg_.ceiling);
  return std::clamp(srtt_ + 4 * rttvar_, cfg_.floor, cfg_.ceiling);
}

}  // namespace ndo
