// Node addresses, "ip:port" or "[ipv6]:port": where a node's UDP gossip
// socket and TCP stream listener are bound (one port for both). Parsed and
// printed in one canonical form, so that a node is never known under two
// spellings (the membership core compares addresses as strings).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "scan/ip_address.h"
#include "base/status.h"

namespace ndo::mesh {

struct HostPort {
  IpAddress ip;
  uint16_t port = 0;

  // "192.0.2.1:7946" or "[2001:db8::1]:7946" (IPv4-mapped IPv6 prints as IPv4).
  std::string ToString() const;
  // 0.0.0.0 or ::, which cannot be advertised to others.
  bool unspecified() const;
  // The IPv6 wildcard [::], which the node binds dual-stack (IPv4 too).
  bool dual_stack() const { return !ip.is_v4() && unspecified(); }
  friend bool operator==(const HostPort&, const HostPort&) = default;
};

// An address others send to (a seed, an advertised address) must name one
// node: not a wildcard, multicast (224.0.0.0/4, ff00::/8) or the IPv4
// broadcast address. InvalidArgument naming `what` otherwise.
Status CheckPeerAddress(const HostPort& address, std::string_view what);

// Whether a node bound to `listen` can send to and be reached at `other`:
// both IPv4, both IPv6, or `listen` is the dual-stack [::]. A socket of one
// family cannot reach the other, so a mesh must share one.
bool SameFamily(const HostPort& listen, const HostPort& other);

// Accepts a.b.c.d:PORT and [IPv6]:PORT with PORT 1-65535. Hostnames are
// refused: a member's address is what others send to, and must not change
// with a resolver. Errors say what was expected.
Result<HostPort> ParseHostPort(std::string_view text);

}  // namespace ndo::mesh
