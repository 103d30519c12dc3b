#include "base/log.h"

#include <gtest/gtest.h>

namespace ndo::mesh {
namespace {

TEST(Log, FormatsLogfmtWithUtcMilliseconds) {
  auto ts = std::chrono::system_clock::time_point(std::chrono::milliseconds(1795607025123LL));  // 2026-11-25
  std::string line = FormatLogLine(ts, LogLevel::kInfo, "member dead",
                                   {{"id", "3f2a"}, {"name", "node b"}, {"n", uint64_t{42}}, {"ok", true}});
  EXPECT_EQ(line, "ts=2026-11-25T11:43:45.123Z level=info msg=\"member dead\" id=3f2a name=\"node b\" n=42 ok=true");
}

TEST(Log, QuotesAndEscapesWhatPeersControl) {
  auto ts = std::chrono::system_clock::time_point{};
  std::string line = FormatLogLine(ts, LogLevel::kWarn, "x",
                                   {{"a", ""}, {"b", "k=v"}, {"c", "say \"hi\"\nnext"}, {"d", std::string("\x01\\", 2)}});
  EXPECT_EQ(line, "ts=1970-01-01T00:00:00.000Z level=warn msg=x a=\"\" b=\"k=v\" c=\"say \\\"hi\\\"\\nnext\" d=\"\\x01\\\\\"");
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(Log, LevelsParseAndFilter) {
  EXPECT_EQ(*ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("warning"), LogLevel::kWarn);
  EXPECT_EQ(*ParseLogLevel("error"), LogLevel::kError);
  EXPECT_FALSE(ParseLogLevel("loud").ok());
  SetLogLevel(LogLevel::kWarn);
  EXPECT_FALSE(LogEnabled(LogLevel::kInfo));
  EXPECT_TRUE(LogEnabled(LogLevel::kError));
  SetLogLevel(LogLevel::kInfo);
}

TEST(Log, LimiterLetsABurstThroughPerWindowAndCountsTheRest) {
  LogLimiter limiter(3, std::chrono::seconds(10));
  auto t = std::chrono::steady_clock::time_point(std::chrono::hours(1));
  uint64_t suppressed = 99;
  int allowed = 0;
  for (int i = 0; i < 1000; ++i) allowed += limiter.Allow(t + std::chrono::milliseconds(i), suppressed);
  EXPECT_EQ(allowed, 3);
  EXPECT_EQ(suppressed, 0u);
  ASSERT_TRUE(limiter.Allow(t + std::chrono::seconds(11), suppressed));
  EXPECT_EQ(suppressed, 997u);  // said once, then reset
  ASSERT_TRUE(limiter.Allow(t + std::chrono::seconds(11), suppressed));
  EXPECT_EQ(suppressed, 0u);
}

}  // namespace
}  // namespace ndo::mesh
