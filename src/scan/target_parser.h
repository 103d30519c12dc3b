// Parses target specifications (nmap-like) into an IntervalSet.
//
// Accepted forms, each one token:
//   192.0.2.7            IPv4 address           2001:db8::1        IPv6 literal
//   192.0.2.0/24         IPv4 CIDR block        2001:db8::/112     IPv6 block (at most 2^16 addresses)
//   192.0.2.5-192.0.3.20 range of addresses     192.0.2.10-20      range in the last octet
//   scanme.example       hostname: resolved once, every A and AAAA record
// Files (-iL, --exclude-file) hold such tokens separated by whitespace or commas;
// '#' starts a comment. Bad input yields InvalidArgument naming the token.
#pragma once

#include <functional>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

#include "scan/interval_set.h"

namespace ndo {

// Resolves a hostname to all of its addresses. Injected so tests need no DNS.
using Resolver = std::function<Result<std::vector<IpAddress>>(const std::string& hostname)>;
// The production resolver (getaddrinfo, AF_UNSPEC).
Resolver SystemResolver();

inline constexpr unsigned kMaxIpv6BlockBits = 16;

struct NamedAddress {
  IpAddress address;
  std::string hostname;  // kept for TLS SNI and for reports
};

struct TargetSet {
  IntervalSet addresses;
  std::vector<NamedAddress> names;  // addresses that came from hostnames
};

// Parses one token into `out`.
Status AddTargetToken(std::string_view token, const Resolver& resolve, TargetSet& out);
// Splits a list on commas and whitespace and parses every token.
Status AddTargetList(std::string_view list, const Resolver& resolve, TargetSet& out);
// Reads a file of tokens (see above) and parses every token; "-" is
// standard input (`-iL -`, as Nmap reads it). '#' starts a comment.
Status AddTargetFile(const std::string& path, const Resolver& resolve, TargetSet& out);
// The same from a stream; `name` is what errors call it ("name:line").
Status AddTargetStream(std::istream& in, const std::string& name, const Resolver& resolve, TargetSet& out);

// Parses a list of address/CIDR/range tokens where hostnames are not allowed
// (e.g. --scope): every token must be numeric.
Result<IntervalSet> ParseAddressList(std::string_view list);

}  // namespace ndo
