#include "scan/ip_address.h"

#include <arpa/inet.h>

#include <algorithm>

namespace ndo {

IpAddress IpAddress::FromBytes(const std::array<uint8_t, 16>& bytes) {
  u128 v = 0;
  for (uint8_t b : bytes) v = (v << 8) | b;
  return IpAddress(v);
}

std::array<uint8_t, 16> IpAddress::bytes() const {
  std::array<uint8_t, 16> out{};
  u128 v = value_;
  for (int i = 15; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v & 0xff);
    v >>= 8;
  }
  return out;
}

Result<IpAddress> IpAddress::Parse(std::string_view text) {
  // inet_pton wants a NUL-terminated string; bound the copy so hostile input stays cheap.
  if (text.empty() || text.size() > 45) return Status::InvalidArgument("not an IP address: '" + std::string(text) + "'");
  std::string s(text);
  in_addr a4{};
  if (inet_pton(AF_INET, s.c_str(), &a4) == 1) return FromV4(ntohl(a4.s_addr));
  in6_addr a6{};
  if (inet_pton(AF_INET6, s.c_str(), &a6) == 1) {
    std::array<uint8_t, 16> b{};
    std::copy(std::begin(a6.s6_addr), std::end(a6.s6_addr), b.begin());
    return FromBytes(b);
  }
  return Status::InvalidArgument("not an IP address: '" + s + "'");
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_v4()) {
    in_addr a4{};
    a4.s_addr = htonl(v4());
    inet_ntop(AF_INET, &a4, buf, sizeof buf);
  } else {
    in6_addr a6{};
    auto b = bytes();
    std::copy(b.begin(), b.end(), std::begin(a6.s6_addr));
    inet_ntop(AF_INET6, &a6, buf, sizeof buf);
  }
  return buf;
}

std::string U128ToString(u128 v) {
  if (v == 0) return "0";
  std::string s;
  while (v > 0) {
    s.push_back(static_cast<char>('0' + static_cast<int>(v % 10)));
    v /= 10;
  }
  std::reverse(s.begin(), s.end());
  return s;
}

}  // namespace ndo
