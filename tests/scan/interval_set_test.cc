#include "scan/interval_set.h"

#include <gtest/gtest.h>

namespace ndo {
namespace {

AddressRange V4(uint32_t a, uint32_t b) { return {IpAddress::FromV4(a).value(), IpAddress::FromV4(b).value()}; }

TEST(IntervalSet, MergesOverlapsAndAdjacentRanges) {
  IntervalSet s;
  s.Add(V4(10, 20));
  s.Add(V4(15, 30));
  s.Add(V4(31, 40));  // adjacent
  s.Add(V4(50, 60));
  s.Add(V4(10, 20));  // duplicate
  ASSERT_EQ(s.ranges().size(), 2u);
  EXPECT_EQ(s.ranges()[0], V4(10, 40));
  EXPECT_EQ(s.ranges()[1], V4(50, 60));
  EXPECT_EQ(s.size(), static_cast<u128>(31 + 11));
}

TEST(IntervalSet, SubtractSplitsRanges) {
  IntervalSet s, cut;
  s.Add(V4(0, 100));
  cut.Add(V4(10, 19));
  cut.Add(V4(50, 200));
  s.Subtract(cut);
  ASSERT_EQ(s.ranges().size(), 2u);
  EXPECT_EQ(s.ranges()[0], V4(0, 9));
  EXPECT_EQ(s.ranges()[1], V4(20, 49));
}

TEST(IntervalSet, WholeIpv4SpaceMinusExclusionsIsSmall) {
  IntervalSet all, ex;
  all.Add(V4(0, 0xffffffffu));
  ex.Add(V4(0x0a000000u, 0x0affffffu));  // 10/8
  ex.Add(V4(0x7f000000u, 0x7fffffffu));  // 127/8
  all.Subtract(ex);
  EXPECT_EQ(all.ranges().size(), 3u);
  EXPECT_EQ(all.size(), (static_cast<u128>(1) << 32) - 2 * (1u << 24));
}

TEST(IntervalSet, AtWalksAddressesInOrder) {
  IntervalSet s;
  s.Add(V4(100, 101));
  s.Add(V4(200, 202));
  std::vector<uint32_t> got;
  for (u128 i = 0; i < s.size(); ++i) got.push_back(s.At(i).v4());
  EXPECT_EQ(got, (std::vector<uint32_t>{100, 101, 200, 201, 202}));
}

TEST(IntervalSet, ContainmentAndSubset) {
  IntervalSet scope, targets;
  scope.Add(V4(0x7f000000u, 0x7fffffffu));
  targets.Add(V4(0x7f000001u, 0x7f0000ffu));
  EXPECT_TRUE(targets.IsSubsetOf(scope));
  EXPECT_TRUE(scope.Contains(IpAddress::FromV4(0x7f123456u).value()));
  EXPECT_FALSE(scope.Contains(IpAddress::FromV4(0x80000000u).value()));
  targets.Add(V4(0x80000000u, 0x80000000u));
  EXPECT_FALSE(targets.IsSubsetOf(scope));
  EXPECT_EQ(targets.Minus(scope).size(), static_cast<u128>(1));
}

}  // namespace
}  // namespace ndo
