#include "scan/token_bucket.h"

#include <gtest/gtest.h>

namespace ndo {
namespace {

using namespace std::chrono_literals;

TEST(TokenBucket, PacesEvenlyWithAFakeClock) {
  auto t0 = std::chrono::steady_clock::time_point{};
  TokenBucket b(1000, 1, t0);  // 1000/s, no burst
  int taken = 0;
  // Step 100 us at a time through one second: exactly ~1000 tokens, never two in one millisecond.
  int last_ms = -1, per_ms_max = 0, in_ms = 0;
  for (int step = 0; step <= 10000; ++step) {
    auto now = t0 + step * 100us;
    int ms = step / 10;
    if (ms != last_ms) {
      in_ms = 0;
      last_ms = ms;
    }
    while (b.TryTake(now)) {
      ++taken;
      per_ms_max = std::max(per_ms_max, ++in_ms);
    }
  }
  EXPECT_GE(taken, 1000);
  EXPECT_LE(taken, 1001);
  EXPECT_EQ(per_ms_max, 1);
}

TEST(TokenBucket, BurstIsBoundedAfterIdle) {
  auto t0 = std::chrono::steady_clock::time_point{};
  TokenBucket b(100, 5, t0);
  int taken = 0;
  while (b.TryTake(t0 + 10s)) ++taken;
  EXPECT_EQ(taken, 5);
}

TEST(TokenBucket, TimeUntilToken) {
  auto t0 = std::chrono::steady_clock::time_point{};
  TokenBucket b(10, 1, t0);
  EXPECT_TRUE(b.TryTake(t0));
  auto wait = b.TimeUntilToken(t0);
  EXPECT_GT(wait, 99ms);
  EXPECT_LT(wait, 101ms);
  EXPECT_FALSE(b.TryTake(t0 + 50ms));
  EXPECT_TRUE(b.TryTake(t0 + 100ms + 1us));
}

TEST(TokenBucket, UnlimitedNeverWaits) {
  auto t0 = std::chrono::steady_clock::time_point{};
  TokenBucket b(0, 1, t0);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(b.TryTake(t0));
  EXPECT_EQ(b.TimeUntilToken(t0), TokenBucket::Duration::zero());
}

}  // namespace
}  // namespace ndo
