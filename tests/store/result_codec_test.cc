#include "store/result_codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace ndo {
namespace {

ProbeResult Make(PortState s, int64_t t) {
  ProbeResult r;
  r.address = *IpAddress::Parse("2001:db8::7");
  r.port = 8443;
  r.state = s;
  r.attempts = 2;
  r.rtt_us = 1234;
  r.time_us = t;
  return r;
}

TEST(ResultCodec, RoundTrip) {
  ScanId id{1, 2, 3, 4, 5, 6, 7, 8};
  ProbeResult r = Make(PortState::kOpen, 1'700'000'000'123'456);
  std::string key = ResultKey(id, r.address, r.port), value = EncodeResultValue(r);
  EXPECT_EQ(key.size(), kResultKeySize);
  ProbeResult back;
  ASSERT_TRUE(DecodeResult(key, value, back).ok());
  EXPECT_EQ(back.address, r.address);
  EXPECT_EQ(back.port, 8443);
  EXPECT_EQ(back.state, PortState::kOpen);
  EXPECT_EQ(back.attempts, 2);
  EXPECT_EQ(back.rtt_us, 1234u);
  EXPECT_EQ(back.time_us, r.time_us);
}

TEST(ResultCodec, KeysSortByAddressThenPort) {
  ScanId id{};
  EXPECT_LT(ResultKey(id, IpAddress::FromV4(0x0a000001), 65535), ResultKey(id, IpAddress::FromV4(0x0a000002), 1));
  EXPECT_LT(ResultKey(id, IpAddress::FromV4(0x0a000001), 22), ResultKey(id, IpAddress::FromV4(0x0a000001), 80));
}

TEST(ResultCodec, MalformedBytesAreCorruptionNotCrashes) {
  ProbeResult out;
  ScanId id{};
  std::string key = ResultKey(id, IpAddress::FromV4(1), 1);
  EXPECT_FALSE(DecodeResult("short", EncodeResultValue(Make(PortState::kOpen, 1)), out).ok());
  EXPECT_FALSE(DecodeResult(key, "xx", out).ok());
  std::string bad_state = EncodeResultValue(Make(PortState::kOpen, 1));
  bad_state[1] = 9;
  EXPECT_FALSE(DecodeResult(key, bad_state, out).ok());
}

TEST(ResultCodec, MergeRuleIsCommutativeAssociativeIdempotent) {
  std::vector<std::string> values;
  for (PortState s : {PortState::kOpen, PortState::kClosed, PortState::kFiltered, PortState::kUnreachable})
    for (int64_t t : {5, 9}) values.push_back(EncodeResultValue(Make(s, t)));
  auto merge = [](std::string_view a, std::string_view b) { return std::string(PreferredResultValue(a, b)); };
  for (const auto& a : values) {
    EXPECT_EQ(merge(a, a), a);
    for (const auto& b : values) {
      EXPECT_EQ(merge(a, b), merge(b, a));
      for (const auto& c : values) EXPECT_EQ(merge(merge(a, b), c), merge(a, merge(b, c)));
    }
  }
  // An answer beats silence however late the silence came.
  EXPECT_EQ(merge(EncodeResultValue(Make(PortState::kOpen, 1)), EncodeResultValue(Make(PortState::kFiltered, 99))),
            EncodeResultValue(Make(PortState::kOpen, 1)));
}

}  // namespace
}  // namespace ndo
