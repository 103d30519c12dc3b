// Feeds: any text, as the targets and --exclude list of `ndo scan`
// (AddTargetList, src/scan/target_parser.h), and as a --scope list
// (ParseAddressList, where hostnames are refused).
//
// No DNS, ever: the parser resolves a token only by calling the Resolver it
// is given, and only for a token that looks like a hostname. The fuzzer
// passes a fake resolver that answers from a hash of the name (one address
// in 198.18.0.0/15, sometimes one in 2001:db8::/32) and checks that it is
// only ever asked about hostname-shaped tokens. SystemResolver (getaddrinfo)
// is never used: it would send queries for every mutated name, be slow and
// nondeterministic.
//
// Checks, beyond "no crash":
//  - the set is sorted, disjoint and non-adjacent, and size() is the sum of
//    its intervals; every hostname's address is in it;
//  - the --scope parse succeeds exactly when the target parse does without
//    asking the resolver, and then gives the same set;
//  - the set, written back as ranges (split where the syntax requires: at
//    the IPv4-mapped block, IPv6 ranges of at most 2^16), parses back to
//    the same set.
#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "fuzz_check.h"
#include "scan/target_parser.h"

using namespace ndo;

namespace {

bool HostnameShaped(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  bool alpha = false;
  for (char c : s) {
    if (std::isalpha(static_cast<unsigned char>(c))) alpha = true;
    else if (!std::isdigit(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_') return false;
  }
  return alpha;
}

bool SameRanges(const IntervalSet& a, const IntervalSet& b) { return a.ranges() == b.ranges(); }

void CheckWellFormed(const IntervalSet& set) {
  u128 total = 0;
  const auto& r = set.ranges();
  for (size_t i = 0; i < r.size(); ++i) {
    FUZZ_CHECK(r[i].first <= r[i].last);
    if (i > 0) FUZZ_CHECK(r[i - 1].last < r[i].first && r[i].first - r[i - 1].last > 1);  // disjoint, non-adjacent
    total += r[i].size();
  }
  FUZZ_CHECK(total == set.size());
  FUZZ_CHECK(set.empty() == r.empty());
}

// The set as a --scope list: "a-b" per piece, pieces cut at the borders of
// the IPv4-mapped block and, for IPv6, to at most 2^kMaxIpv6BlockBits addresses.
std::string Format(const IntervalSet& set) {
  const u128 v4_first = IpAddress::kV4MappedBase, v4_last = v4_first + 0xffffffffu;
  const u128 v6_chunk = static_cast<u128>(1) << kMaxIpv6BlockBits;
  std::string out;
  for (AddressRange r : set.ranges()) {
    u128 at = r.first;
    while (true) {
      u128 end = r.last;
      if (at < v4_first && end >= v4_first) end = v4_first - 1;
      if (at <= v4_last && end > v4_last) end = v4_last;
      bool v4 = at >= v4_first && at <= v4_last;
      if (!v4 && end - at >= v6_chunk) end = at + v6_chunk - 1;
      out += IpAddress(at).ToString() + "-" + IpAddress(end).ToString() + ",";
      if (end == r.last) break;
      at = end + 1;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view list = FuzzInput(data, size);
  size_t resolved = 0, calls = 0;
  Resolver fake = [&](const std::string& host) -> Result<std::vector<IpAddress>> {
    FUZZ_CHECK_MSG(HostnameShaped(host), host);
    ++calls;
    size_t h = std::hash<std::string>()(host);
    std::vector<IpAddress> out = {IpAddress::FromV4(0xc6120000u | (h & 0x1ffff))};  // 198.18.0.0/15
    if (h & (1u << 20)) out.push_back(IpAddress((static_cast<u128>(0x20010db8) << 96) | (h >> 32)));
    resolved += out.size();
    return out;
  };

  TargetSet targets;
  Status st = AddTargetList(list, fake, targets);
  CheckWellFormed(targets.addresses);  // also after an error: what was added so far
  if (st.ok()) {
    FUZZ_CHECK(targets.names.size() == resolved);
    for (const auto& n : targets.names) FUZZ_CHECK(targets.addresses.Contains(n.address.value()));
  } else {
    FUZZ_CHECK(!st.message().empty());
  }

  auto scope = ParseAddressList(list);
  FUZZ_CHECK_MSG(scope.ok() == (st.ok() && calls == 0), scope.ok() ? st.message() : scope.status().message());
  if (!scope.ok()) return 0;
  FUZZ_CHECK(SameRanges(*scope, targets.addresses));

  std::string formatted = Format(*scope);
  auto back = ParseAddressList(formatted);
  FUZZ_CHECK_MSG(back.ok(), back.status().message());
  FUZZ_CHECK_MSG(SameRanges(*back, *scope), formatted);
  return 0;
}
