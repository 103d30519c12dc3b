#include "scan/rtt_estimator.h"

#include <gtest/gtest.h>

namespace ndo {
namespace {

using namespace std::chrono_literals;

TEST(RttEstimator, StartsAtInitialThenFollowsSamplesWithinBounds) {
  RttEstimator e({500ms, 100ms, 1250ms, 0ms});
  EXPECT_EQ(e.Timeout(), 500ms);
  for (int i = 0; i < 50; ++i) e.AddSample(200us);
  EXPECT_EQ(e.Timeout(), 100ms);  // floor
  for (int i = 0; i < 50; ++i) e.AddSample(300ms);
  EXPECT_GT(e.Timeout(), 300ms);
  EXPECT_LE(e.Timeout(), 1250ms);
  for (int i = 0; i < 50; ++i) e.AddSample(5s);
  EXPECT_EQ(e.Timeout(), 1250ms);  // ceiling
}

TEST(RttEstimator, VarianceWidensTheTimeout) {
  RttEstimator steady({500ms, 1ms, 10s, 0ms}), jittery({500ms, 1ms, 10s, 0ms});
  for (int i = 0; i < 100; ++i) {
    steady.AddSample(100ms);
    jittery.AddSample(i % 2 ? 50ms : 150ms);
  }
  EXPECT_GT(jittery.Timeout(), steady.Timeout());
}

TEST(RttEstimator, FixedTimeoutIgnoresSamples) {
  RttEstimator e({500ms, 100ms, 1250ms, 42ms});
  e.AddSample(1s);
  EXPECT_EQ(e.Timeout(), 42ms);
}

}  // namespace
}  // namespace ndo
