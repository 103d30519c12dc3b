// The one hex encoding, and the ids written with it.
#include "base/hex.h"

#include <gtest/gtest.h>

#include <random>

#include "base/ids.h"

namespace ndo {
namespace {

TEST(Hex, EncodesEveryByteAsTwoLowercaseDigits) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string hex = HexEncode(all);
  ASSERT_EQ(hex.size(), 512u);
  for (int b = 0; b < 256; ++b) {
    char buf[3];
    std::snprintf(buf, sizeof buf, "%02x", b);  // an independent encoder
    EXPECT_EQ(hex.substr(2 * b, 2), buf);
  }
  std::string one;
  AppendHexByte(one, 0x1f);
  EXPECT_EQ(one, "1f");
}

TEST(Hex, DecodeInvertsEncodeAndTakesEitherCase) {
  std::mt19937 rng(5);
  for (int n = 0; n < 64; ++n) {
    std::string bytes(n, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    std::string hex = HexEncode(bytes);
    EXPECT_EQ(*HexDecode(hex), bytes);
    for (char& c : hex) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(*HexDecode(hex), bytes);
  }
  EXPECT_FALSE(HexDecode("abc").ok());
  EXPECT_FALSE(HexDecode("0g").ok());
  EXPECT_FALSE(HexDecode(std::string_view("0\0", 2)).ok());
  EXPECT_EQ(HexDigitValue('F'), 15);
  EXPECT_FALSE(IsHexDigit('x'));
}

TEST(Ids, ScanIdRoundTripsThroughSixteenDigits) {
  ScanId id{0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff};
  std::string hex = ScanIdToHex(id);
  EXPECT_EQ(hex, HexEncode(std::span<const uint8_t>(id)));
  EXPECT_EQ(*ScanIdFromHex(hex), id);
  EXPECT_FALSE(ScanIdFromHex(hex.substr(1)).ok());
  EXPECT_FALSE(ScanIdFromHex("zz" + hex.substr(2)).ok());
}

TEST(Ids, Id128IsTheHalvesBigEndian) {
  uint64_t hi = 0x0123456789abcdefULL, lo = 0xfedcba9876543210ULL;
  std::string hex = Id128ToHex(hi, lo);
  char want[33];
  std::snprintf(want, sizeof want, "%016llx%016llx", static_cast<unsigned long long>(hi),
                static_cast<unsigned long long>(lo));
  EXPECT_EQ(hex, want);
  uint64_t h = 1, l = 1;
  ASSERT_TRUE(Id128FromHex(hex, h, l));
  EXPECT_EQ(h, hi);
  EXPECT_EQ(l, lo);
  EXPECT_FALSE(Id128FromHex(hex.substr(1), h, l));
  EXPECT_FALSE(Id128FromHex(hex.substr(1) + "g", h, l));
}

}  // namespace
}  // namespace ndo
