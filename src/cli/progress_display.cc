#include "cli/progress_display.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace ndo {

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  auto s = static_cast<uint64_t>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%llu:%02llu:%02llu", (unsigned long long)(s / 3600),
                               (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
  else std::snprintf(buf, sizeof buf, "%llu:%02llu", (unsigned long long)(s / 60), (unsigned long long)(s % 60));
  return buf;
}

std::string FormatCount(uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string ProgressDisplay::Render(const ProgressSample& s, std::chrono::steady_clock::time_point now) {
  double dt = std::chrono::duration<double>(now - last_time_).count();
  if (dt > 0.2) {
    double instant = static_cast<double>(s.probes_sent - last_probes_) / dt;
    rate_ = rate_ == 0 ? instant : 0.7 * rate_ + 0.3 * instant;
    last_probes_ = s.probes_sent;
    last_time_ = now;
  }
  double fraction = s.positions_total ? static_cast<double>(s.positions_done) / static_cast<double>(s.positions_total) : 1.0;
  fraction = std::clamp(fraction, 0.0, 1.0);
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double eta = fraction > 0 ? elapsed * (1 - fraction) / fraction : NAN;
  constexpr int kWidth = 24;
  int filled = static_cast<int>(fraction * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.append(static_cast<size_t>(kWidth - filled), '.');
  char buf[256];
  std::snprintf(buf, sizeof buf, "[%s] %5.1f%%  %s probes/s  %s open  ETA %s", bar.c_str(), fraction * 100,
                FormatCount(static_cast<uint64_t>(rate_)).c_str(), FormatCount(s.open).c_str(),
                FormatDuration(eta).c_str());
  return buf;
}

}  // namespace ndo
