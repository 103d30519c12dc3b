// Node addresses, "ip:port" or "[ipv6]:port": where a node's UDP gossip
// socket and TCP stream listener are bound (one port for both). Parsed and
// printed in one canonical form, so that a node is never known under two
// spellings (the membership core compares addresses as strings).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "scan/ip_address.h"
#include "scan/status.h"

namespace ndo::mesh {

struct HostPort {
  IpAddress ip;
  uint16_t port = 0;

  // "192.0.2.1:7946" or "[2001:db8::1]:7946" (IPv4-mapped IPv6 prints as IPv4).
  std::string ToString() const;
  // 0.0.0.0 or ::, which cannot be advertised to others.
  bool unspecified() const;
  friend bool operator==(const HostPort&, const HostPort&) = default;
};

// Accepts a.b.c.d:PORT and [IPv6]:PORT with PORT 1-65535. Hostnames are
// refused: a member's address is what others send to, and must not change
// with a resolver. Errors say what was expected.
Result<HostPort> ParseHostPort(std::string_view text);

}  // namespace ndo::mesh
