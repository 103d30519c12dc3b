// A shard's result bundle: canonical (order of the input and duplicates do
// not change the bytes, so neither the digest), round trip, and a decoder
// that refuses anything it would not have written.
#include "store/result_bundle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "store/result_codec.h"

namespace ndo {
namespace {

ProbeResult Make(uint32_t v4, uint16_t port, PortState s, int64_t t = 1'700'000'000'000'000) {
  ProbeResult r;
  r.address = IpAddress::FromV4(v4);
  r.port = port;
  r.state = s;
  r.attempts = 1;
  r.rtt_us = s == PortState::kFiltered ? 0 : 800;
  r.time_us = t;
  return r;
}

std::vector<ProbeResult> Sample() {
  std::vector<ProbeResult> v;
  v.push_back(Make(0x0a000002, 443, PortState::kOpen));
  v.push_back(Make(0x0a000001, 80, PortState::kClosed));
  v.push_back(Make(0x0a000001, 22, PortState::kFiltered));
  v.push_back(Make(0x0a000003, 22, PortState::kUnreachable));
  ProbeResult v6 = Make(0, 8443, PortState::kOpen, 5);
  v6.address = *IpAddress::Parse("2001:db8::7");
  v6.attempts = 3;
  v6.rtt_us = 123456;
  v.push_back(v6);
  return v;
}

bool Same(const ProbeResult& a, const ProbeResult& b) {
  return a.address == b.address && a.port == b.port && a.state == b.state && a.attempts == b.attempts &&
         a.rtt_us == b.rtt_us && a.time_us == b.time_us;
}

std::string MustEncode(std::vector<ProbeResult> v) {
  auto b = EncodeResultBundle(std::move(v));
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return b.ok() ? *b : std::string();
}

TEST(ResultBundle, RoundTripInCanonicalOrder) {
  std::string bytes = MustEncode(Sample());
  EXPECT_EQ(bytes.size(), kBundleHeaderSize + 5 * kBundleRecordSize);
  EXPECT_EQ(bytes.substr(0, 4), "ndob");
  auto back = DecodeResultBundle(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  auto expected = Sample();
  std::sort(expected.begin(), expected.end(),
            [](const ProbeResult& a, const ProbeResult& b) { return std::tie(a.address, a.port) < std::tie(b.address, b.port); });
  ASSERT_EQ(back->size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(Same((*back)[i], expected[i])) << i;
  EXPECT_EQ(MustEncode(*back), bytes);
}

TEST(ResultBundle, EmptyBundle) {
  std::string bytes = MustEncode({});
  EXPECT_EQ(bytes.size(), kBundleHeaderSize);
  auto back = DecodeResultBundle(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->empty());
}

TEST(ResultBundle, BytesAndDigestDoNotDependOnInputOrder) {
  std::string bytes = MustEncode(Sample());
  auto digest = BundleDigest(bytes);
  std::mt19937_64 rng(0xb0b);
  for (int i = 0; i < 50; ++i) {
    auto v = Sample();
    std::shuffle(v.begin(), v.end(), rng);
    // Duplicates of a result that lose to it change nothing either.
    v.push_back(Make(0x0a000002, 443, PortState::kFiltered, 1));
    std::string again = MustEncode(v);
    EXPECT_EQ(again, bytes);
    EXPECT_EQ(BundleDigest(again), digest);
  }
  auto other = Sample();
  other[0].rtt_us += 1;
  EXPECT_NE(BundleDigest(MustEncode(other)), digest);
}

TEST(ResultBundle, DuplicatesKeepThePreferredResult) {
  std::vector<ProbeResult> dups = {
      Make(0x0a000001, 80, PortState::kFiltered, 900),  // silence, though later
      Make(0x0a000001, 80, PortState::kOpen, 100),
      Make(0x0a000001, 80, PortState::kClosed, 500),
      Make(0x0a000001, 80, PortState::kOpen, 200),  // open, and the later open
      Make(0x0a000001, 80, PortState::kUnreachable, 950),
  };
  std::mt19937_64 rng(0xd0b);
  for (int i = 0; i < 20; ++i) {
    std::shuffle(dups.begin(), dups.end(), rng);
    auto back = DecodeResultBundle(MustEncode(dups));
    ASSERT_TRUE(back.ok());
    ASSERT_EQ(back->size(), 1u);
    EXPECT_TRUE(Same((*back)[0], Make(0x0a000001, 80, PortState::kOpen, 200)));
    // The same rule as the store's merge operator.
    std::string preferred = EncodeResultValue(dups[0]);
    for (const ProbeResult& r : dups) preferred = std::string(PreferredResultValue(preferred, EncodeResultValue(r)));
    EXPECT_EQ(EncodeResultValue((*back)[0]), preferred);
  }
}

TEST(ResultBundle, EncodeRefusesUnknownStates) {
  auto v = Sample();
  v[2].state = static_cast<PortState>(9);
  EXPECT_EQ(EncodeResultBundle(v).status().code(), Status::Code::kInvalidArgument);
  v[2].state = static_cast<PortState>(0);
  EXPECT_EQ(EncodeResultBundle(v).status().code(), Status::Code::kInvalidArgument);
}

TEST(ResultBundle, DecodeRefusesHostileInput) {
  std::string bytes = MustEncode(Sample());
  auto corrupt = [](const std::string& b) { return DecodeResultBundle(b).status().code() == Status::Code::kCorruption; };
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_TRUE(corrupt(bytes.substr(0, n))) << n;
  EXPECT_TRUE(corrupt(bytes + "x"));
  std::string bad = bytes;
  bad[0] = 'N';
  EXPECT_TRUE(corrupt(bad));
  bad = bytes;
  bad[4] = 2;  // version
  EXPECT_TRUE(corrupt(bad));

  auto record = [&](size_t i) { return kBundleHeaderSize + i * kBundleRecordSize; };
  // Unsorted: the first two records swapped; repeated: the first copied over the second.
  bad = bytes;
  std::swap_ranges(bad.begin() + record(0), bad.begin() + record(1), bad.begin() + record(1));
  EXPECT_TRUE(corrupt(bad));
  bad = bytes;
  std::copy(bytes.begin() + record(0), bytes.begin() + record(1), bad.begin() + record(1));
  EXPECT_TRUE(corrupt(bad));
  // A record's value: unknown state, other version, reserved byte set.
  for (size_t at : {size_t{18 + 1}, size_t{18 + 0}, size_t{18 + 3}}) {
    bad = bytes;
    bad[record(2) + at] = 9;
    EXPECT_TRUE(corrupt(bad)) << at;
  }
  // A huge count, with and without the bytes to match.
  bad = bytes;
  for (int b = 0; b < 4; ++b) bad[5 + b] = '\xff';
  EXPECT_TRUE(corrupt(bad));
  uint32_t over = kMaxBundleResults + 1;
  bad = bytes.substr(0, kBundleHeaderSize);
  for (int b = 0; b < 4; ++b) bad[5 + b] = static_cast<char>((over >> (8 * b)) & 0xff);
  EXPECT_TRUE(corrupt(bad));
  // A count that disagrees with the size.
  bad = bytes;
  bad[5] = static_cast<char>(bad[5] + 1);
  EXPECT_TRUE(corrupt(bad));

  // Random damage: refused or decoded, never a crash; whatever decodes re-encodes to the same bytes.
  std::mt19937_64 rng(0xbad);
  for (int i = 0; i < 3000; ++i) {
    std::string hostile = bytes;
    for (int k = 0; k < 2; ++k) hostile[rng() % hostile.size()] ^= static_cast<char>(1 + rng() % 255);
    auto d = DecodeResultBundle(hostile);
    if (d.ok()) EXPECT_EQ(MustEncode(*d), hostile);
  }
}

TEST(ResultBundle, DigestIsSha256) {
  // SHA-256("abc"), FIPS 180-2.
  auto d = BundleDigest("abc");
  const uint8_t expected[] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                              0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                              0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
  EXPECT_TRUE(std::equal(d.begin(), d.end(), expected));
}

}  // namespace
}  // namespace ndo
