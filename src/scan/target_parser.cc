#include "scan/target_parser.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

namespace ndo {
namespace {

Status Bad(std::string_view token, const std::string& why) {
  return Status::InvalidArgument("bad target '" + std::string(token) + "': " + why);
}

bool ParseUnsigned(std::string_view s, unsigned& out) {
  if (s.empty() || s.size() > 9) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool LooksLikeHostname(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  bool has_alpha = false;
  for (char c : s) {
    if (std::isalpha(static_cast<unsigned char>(c))) has_alpha = true;
    else if (!std::isdigit(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') return false;
  }
  return has_alpha && s.front() != '-' && s.front() != '.';
}

Result<AddressRange> ParseCidr(std::string_view token, size_t slash) {
  auto base = IpAddress::Parse(token.substr(0, slash));
  if (!base.ok()) return Bad(token, "not an address before '/'");
  unsigned bits = 0;
  if (!ParseUnsigned(token.substr(slash + 1), bits)) return Bad(token, "prefix length is not a number");
  unsigned max_bits = base->is_v4() ? 32 : 128;
  if (bits > max_bits) return Bad(token, "prefix length above " + std::to_string(max_bits));
  unsigned host_bits = max_bits - bits;
  if (!base->is_v4() && host_bits > kMaxIpv6BlockBits)
    return Bad(token, "IPv6 blocks may hold at most 2^" + std::to_string(kMaxIpv6BlockBits) + " addresses (use /" +
                          std::to_string(128 - kMaxIpv6BlockBits) + " or longer)");
  u128 mask = host_bits == 0 ? 0 : ((static_cast<u128>(1) << host_bits) - 1);
  u128 first = base->value() & ~mask;
  return AddressRange{first, first | mask};
}

Result<AddressRange> ParseRange(std::string_view token, size_t dash) {
  auto first = IpAddress::Parse(token.substr(0, dash));
  if (!first.ok()) return Bad(token, "not an address before '-'");
  std::string_view rest = token.substr(dash + 1);
  IpAddress last;
  unsigned octet = 0;
  if (first->is_v4() && ParseUnsigned(rest, octet)) {
    if (octet > 255) return Bad(token, "last octet above 255");
    last = IpAddress::FromV4((first->v4() & 0xffffff00u) | octet);
  } else {
    auto parsed = IpAddress::Parse(rest);
    if (!parsed.ok()) return Bad(token, "not an address or octet after '-'");
    if (parsed->is_v4() != first->is_v4()) return Bad(token, "range mixes IPv4 and IPv6");
    last = *parsed;
  }
  if (last < *first) return Bad(token, "range ends before it starts");
  if (!first->is_v4() && (last.value() - first->value()) >= (static_cast<u128>(1) << kMaxIpv6BlockBits))
    return Bad(token, "IPv6 ranges may hold at most 2^" + std::to_string(kMaxIpv6BlockBits) + " addresses");
  return AddressRange{first->value(), last.value()};
}

// Numeric forms only; NotFound when the token is not numeric at all (maybe a hostname).
Result<AddressRange> ParseNumeric(std::string_view token) {
  if (auto slash = token.find('/'); slash != std::string_view::npos) return ParseCidr(token, slash);
  // A '-' in a numeric token separates a range; hostnames may contain '-' too.
  bool numeric_chars = std::all_of(token.begin(), token.end(), [](char c) {
    return std::isxdigit(static_cast<unsigned char>(c)) || c == '.' || c == ':' || c == '-';
  });
  if (auto dash = token.find('-'); dash != std::string_view::npos && numeric_chars && dash > 0 &&
                                      IpAddress::Parse(token.substr(0, dash)).ok())
    return ParseRange(token, dash);
  auto addr = IpAddress::Parse(token);
  if (addr.ok()) return AddressRange{addr->value(), addr->value()};
  return Status::NotFound("not numeric");
}

template <typename Fn>
Status ForEachToken(std::string_view list, Fn&& fn) {
  size_t i = 0;
  while (i < list.size()) {
    while (i < list.size() && (std::isspace(static_cast<unsigned char>(list[i])) || list[i] == ',')) ++i;
    size_t j = i;
    while (j < list.size() && !std::isspace(static_cast<unsigned char>(list[j])) && list[j] != ',') ++j;
    if (j > i) {
      Status s = fn(list.substr(i, j - i));
      if (!s.ok()) return s;
    }
    i = j;
  }
  return Status::Ok();
}

}  // namespace

Resolver SystemResolver() {
  return [](const std::string& host) -> Result<std::vector<IpAddress>> {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
    if (rc != 0) return Status::NotFound("cannot resolve '" + host + "': " + gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
    std::vector<IpAddress> out;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) {
      if (ai->ai_family == AF_INET) {
        auto* sa = reinterpret_cast<sockaddr_in*>(ai->ai_addr);
        out.push_back(IpAddress::FromV4(ntohl(sa->sin_addr.s_addr)));
      } else if (ai->ai_family == AF_INET6) {
        auto* sa = reinterpret_cast<sockaddr_in6*>(ai->ai_addr);
        std::array<uint8_t, 16> b{};
        std::copy(std::begin(sa->sin6_addr.s6_addr), std::end(sa->sin6_addr.s6_addr), b.begin());
        out.push_back(IpAddress::FromBytes(b));
      }
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    if (out.empty()) return Status::NotFound("'" + host + "' has no A or AAAA record");
    return out;
  };
}

Status AddTargetToken(std::string_view token, const Resolver& resolve, TargetSet& out) {
  auto numeric = ParseNumeric(token);
  if (numeric.ok()) {
    out.addresses.Add(*numeric);
    return Status::Ok();
  }
  if (numeric.status().code() != Status::Code::kNotFound) return numeric.status();
  if (!LooksLikeHostname(token)) return Bad(token, "neither an address, block, range nor hostname");
  if (!resolve) return Bad(token, "hostnames are not allowed here");
  std::string host(token);
  auto addrs = resolve(host);
  if (!addrs.ok()) return addrs.status();
  for (const auto& a : *addrs) {
    out.addresses.Add(AddressRange{a.value(), a.value()});
    out.names.push_back({a, host});
  }
  return Status::Ok();
}

Status AddTargetList(std::string_view list, const Resolver& resolve, TargetSet& out) {
  return ForEachToken(list, [&](std::string_view t) { return AddTargetToken(t, resolve, out); });
}

Status AddTargetFile(const std::string& path, const Resolver& resolve, TargetSet& out) {
  if (path == "-") return AddTargetStream(std::cin, "standard input", resolve, out);
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument("cannot open target file '" + path + "'");
  return AddTargetStream(in, path, resolve, out);
}

Status AddTargetStream(std::istream& in, const std::string& name, const Resolver& resolve, TargetSet& out) {
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    Status s = AddTargetList(line, resolve, out);
    if (!s.ok()) return s.WithContext(name + ":" + std::to_string(lineno));
  }
  if (in.bad()) return Status::IoError("error reading " + name);
  return Status::Ok();
}

Result<IntervalSet> ParseAddressList(std::string_view list) {
  TargetSet set;
  Status s = AddTargetList(list, Resolver(), set);
  if (!s.ok()) return s;
  return set.addresses;
}

}  // namespace ndo
