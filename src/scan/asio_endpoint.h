// ndo's addresses as Asio endpoints. Only for the translation units that
// already use Asio (the engine and the service prober).
#pragma once

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>

#include "scan/ip_address.h"

namespace ndo {

inline boost::asio::ip::tcp::endpoint ToAsioEndpoint(IpAddress address, uint16_t port) {
  namespace ip = boost::asio::ip;
  if (address.is_v4()) return {ip::address_v4(address.v4()), port};
  ip::address_v6::bytes_type b;
  auto bytes = address.bytes();
  std::copy(bytes.begin(), bytes.end(), b.begin());
  return {ip::address_v6(b), port};
}

}  // namespace ndo
