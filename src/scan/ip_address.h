// One 128-bit address space for both families: IPv4 a.b.c.d lives at the
// IPv4-mapped position ::ffff:a.b.c.d. Target sets, scopes and the probe index
// space therefore need a single interval type, and ordering is total.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace ndo {

using u128 = unsigned __int128;

class IpAddress {
 public:
  static constexpr u128 kV4MappedBase = static_cast<u128>(0xffff) << 32;

  constexpr IpAddress() = default;
  constexpr explicit IpAddress(u128 value) : value_(value) {}
  static constexpr IpAddress FromV4(uint32_t host_order) { return IpAddress(kV4MappedBase | host_order); }
  static IpAddress FromBytes(const std::array<uint8_t, 16>& bytes);

  // Parses a literal: dotted quad or any RFC 4291 text form (no zone ids).
  static Result<IpAddress> Parse(std::string_view text);

  constexpr u128 value() const { return value_; }
  constexpr bool is_v4() const { return (value_ >> 32) == 0xffff; }
  constexpr uint32_t v4() const { return static_cast<uint32_t>(value_); }
  std::array<uint8_t, 16> bytes() const;
  // Dotted quad for IPv4, RFC 5952 text for IPv6.
  std::string ToString() const;

  friend constexpr bool operator==(IpAddress a, IpAddress b) { return a.value_ == b.value_; }
  friend constexpr auto operator<=>(IpAddress a, IpAddress b) { return a.value_ <=> b.value_; }

 private:
  u128 value_ = 0;
};

// Decimal text of a 128-bit count (probe counts of huge scans).
std::string U128ToString(u128 v);

}  // namespace ndo
