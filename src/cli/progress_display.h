// The progress line on stderr while a scan runs (only on a terminal):
// a bar, percent, probes/s, open ports found so far, and the ETA.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace ndo {

struct ProgressSample {
  uint64_t positions_done = 0;
  uint64_t positions_total = 0;
  uint64_t probes_sent = 0;
  uint64_t open = 0;
};

class ProgressDisplay {
 public:
  explicit ProgressDisplay(std::chrono::steady_clock::time_point start) : start_(start), last_time_(start) {}
  // The line for this moment (no newline); probes/s is smoothed between calls.
  std::string Render(const ProgressSample& s, std::chrono::steady_clock::time_point now);

 private:
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_time_;
  uint64_t last_probes_ = 0;
  double rate_ = 0;
};

// "1:02:03" or "2:03".
std::string FormatDuration(double seconds);
// "12,345,678".
std::string FormatCount(uint64_t n);

}  // namespace ndo
