#include "mesh/membership/address.h"

#include "mesh/membership/messages.h"

namespace ndo::mesh {

std::string HostPort::ToString() const {
  if (ip.is_v4()) return ip.ToString() + ":" + std::to_string(port);
  return "[" + ip.ToString() + "]:" + std::to_string(port);
}

bool HostPort::unspecified() const { return ip == IpAddress::FromV4(0) || ip == IpAddress(0); }

Status CheckPeerAddress(const HostPort& address, std::string_view what) {
  auto refuse = [&](const char* kind) {
    return Status::InvalidArgument(std::string(what) + " " + address.ToString() + " is " + kind +
                                   " address; give the unicast address of one node");
  };
  if (address.unspecified()) return refuse("a wildcard");
  if (address.ip.is_v4()) {
    if ((address.ip.v4() >> 28) == 0xe) return refuse("a multicast");
    if (address.ip.v4() == 0xffffffffu) return refuse("the broadcast");
  } else if (address.ip.bytes()[0] == 0xff) {
    return refuse("a multicast");
  }
  return Status::Ok();
}

bool SameFamily(const HostPort& listen, const HostPort& other) {
  return listen.dual_stack() || listen.ip.is_v4() == other.ip.is_v4();
}

Result<HostPort> ParseHostPort(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("bad address '" + std::string(text) + "': " + why);
  };
  if (text.empty()) return bad("expected IP:PORT or [IPv6]:PORT");
  if (text.size() > kMaxAddressBytes) return bad("longer than " + std::to_string(kMaxAddressBytes) + " bytes");
  std::string_view host, port;
  if (text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']' after the IPv6 address");
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad("expected [IPv6]:PORT");
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("missing ':PORT' (expected IP:PORT or [IPv6]:PORT)");
    host = text.substr(0, colon);
    if (host.find(':') != std::string_view::npos) return bad("write an IPv6 address in brackets: [IPv6]:PORT");
    port = text.substr(colon + 1);
  }
  if (host.empty()) return bad("missing IP address");
  if (port.empty()) return bad("missing port");
  uint32_t p = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return bad("port '" + std::string(port) + "' is not a number");
    p = p * 10 + static_cast<uint32_t>(c - '0');
    if (p > 65535) break;
  }
  if (p == 0 || p > 65535) return bad("port must be 1-65535");
  auto ip = IpAddress::Parse(host);
  if (!ip.ok()) return bad("'" + std::string(host) + "' is not an IP address (hostnames are not accepted)");
  if (text.front() != '[' && !ip->is_v4()) return bad("write an IPv6 address in brackets: [IPv6]:PORT");
  return HostPort{*ip, static_cast<uint16_t>(p)};
}

}  // namespace ndo::mesh
