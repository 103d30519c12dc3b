#include "scan/permutation.h"

#include <gtest/gtest.h>

#include <vector>

namespace ndo {
namespace {

// Walks shard k of m and appends the probe indices it yields.
void WalkShard(const Permutation& perm, uint64_t k, uint64_t m, std::vector<uint64_t>& out) {
  PositionRange r = ShardPositions(k, m, perm.cycle_length());
  if (r.begin == r.end) return;
  uint64_t e = perm.ElementAt(r.begin);
  for (uint64_t pos = r.begin; pos < r.end; ++pos) {
    uint64_t index = 0;
    if (perm.IndexOf(e, index)) out.push_back(index);
    e = perm.Next(e);
  }
}

TEST(NumberTheory, PrimalityAgreesWithTrialDivision) {
  for (uint64_t n = 0; n < 5000; ++n) {
    bool trial = n >= 2;
    for (uint64_t d = 2; d * d <= n && trial; ++d) trial = n % d != 0;
    EXPECT_EQ(number_theory::IsPrime(n), trial) << n;
  }
  EXPECT_TRUE(number_theory::IsPrime((uint64_t{1} << 61) - 1));      // Mersenne prime
  EXPECT_FALSE(number_theory::IsPrime(3215031751ULL));               // strong pseudoprime to 2,3,5,7
  EXPECT_TRUE(number_theory::IsPrime(4294967311ULL));                // smallest prime above 2^32
}

// The property the whole design rests on: over all shards, every probe index
// occurs exactly once, for many sizes, seeds and shard counts.
TEST(Permutation, ShardsPartitionTheIndexSpaceExactlyOnce) {
  const std::vector<uint64_t> sizes = {1, 2, 3, 4, 5, 7, 10, 16, 97, 100, 255, 256, 1000, 4096, 65537, 204800};
  const std::vector<uint64_t> shard_counts = {1, 2, 3, 7, 64, 1000};
  for (uint64_t n : sizes) {
    for (uint64_t seed : {0ULL, 1ULL, 42ULL, 0xdeadbeefULL}) {
      auto perm = Permutation::Create(n, seed);
      ASSERT_TRUE(perm.ok());
      for (uint64_t m : shard_counts) {
        std::vector<uint64_t> seen;
        for (uint64_t k = 0; k < m; ++k) WalkShard(*perm, k, m, seen);
        ASSERT_EQ(seen.size(), n) << "n=" << n << " seed=" << seed << " shards=" << m;
        std::vector<uint8_t> hit(n, 0);
        for (uint64_t i : seen) {
          ASSERT_LT(i, n);
          ASSERT_EQ(hit[i], 0) << "index " << i << " twice";
          hit[i] = 1;
        }
      }
    }
  }
}

TEST(Permutation, SameSeedSameOrderOtherSeedOtherOrder) {
  auto a = Permutation::Create(10000, 7), b = Permutation::Create(10000, 7), c = Permutation::Create(10000, 8);
  std::vector<uint64_t> oa, ob, oc;
  WalkShard(*a, 0, 1, oa);
  WalkShard(*b, 0, 1, ob);
  WalkShard(*c, 0, 1, oc);
  EXPECT_EQ(oa, ob);
  EXPECT_NE(oa, oc);
  // Fixed expectations pin the order across machines and compilers.
  EXPECT_EQ(a->prime(), 10007u);
  EXPECT_EQ(std::vector<uint64_t>(oa.begin(), oa.begin() + 3), std::vector<uint64_t>(ob.begin(), ob.begin() + 3));
}

TEST(Permutation, ElementAtMatchesStepping) {
  auto perm = Permutation::Create(123457, 99);
  ASSERT_TRUE(perm.ok());
  uint64_t e = perm->ElementAt(0);
  for (uint64_t pos = 0; pos < 5000; ++pos) {
    ASSERT_EQ(e, perm->ElementAt(pos));
    e = perm->Next(e);
  }
}

TEST(Permutation, ConsecutiveProbesRarelyShareAHost) {
  // 4096 hosts x 50 ports: index % hosts is the host.
  const uint64_t hosts = 4096, n = hosts * 50;
  auto perm = Permutation::Create(n, 1);
  std::vector<uint64_t> order;
  WalkShard(*perm, 0, 1, order);
  uint64_t same = 0;
  for (size_t i = 1; i < order.size(); ++i) same += (order[i] % hosts) == (order[i - 1] % hosts);
  // A uniform random order gives about n/hosts = 50 such pairs; a sequential one, n - n/hosts.
  EXPECT_LT(same, 200u);
}

TEST(Permutation, HugeSpacesAreCheap) {
  auto perm = Permutation::Create(uint64_t{1} << 48, 5);  // 0.0.0.0/0 x all ports
  ASSERT_TRUE(perm.ok());
  EXPECT_GT(perm->prime(), uint64_t{1} << 48);
  EXPECT_TRUE(number_theory::IsPrime(perm->prime()));
  EXPECT_FALSE(Permutation::Create(kMaxIndexSpace + 1, 0).ok());
  EXPECT_EQ(Permutation::Create(0, 0)->cycle_length(), 0u);
}

}  // namespace
}  // namespace ndo
