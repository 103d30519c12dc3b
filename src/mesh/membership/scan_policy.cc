#include "mesh/membership/scan_policy.h"

#include "scan/target_parser.h"

namespace ndo::mesh {
namespace {

constexpr char kTagV4 = 4;
constexpr char kTagV6 = 6;

bool IsV4(u128 v) { return (v >> 32) == 0xffff; }
bool IsV4Range(const AddressRange& r) { return IsV4(r.first) && IsV4(r.last); }
size_t RangeBytes(const AddressRange& r) { return IsV4Range(r) ? 9 : 33; }

void PutBig(std::string& out, u128 v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>(static_cast<uint8_t>(v >> (8 * i)));
}

u128 GetBig(std::string_view in, size_t at, int bytes) {
  u128 v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<uint8_t>(in[at + i]);
  return v;
}

// The shortest prefix length of a block equal to r, or -1 when r is none.
int PrefixOf(const AddressRange& r) {
  u128 size = r.last - r.first + 1;  // 0 only for the whole space
  if (size == 0) return 0;
  if ((size & (size - 1)) != 0 || (r.first & (size - 1)) != 0) return -1;
  int bits = 0;
  while ((u128{1} << bits) != size) ++bits;
  return 128 - bits;
}

}  // namespace

size_t ScanPolicyBytes(const IntervalSet& policy) {
  size_t n = 0;
  for (const auto& r : policy.ranges()) n += RangeBytes(r);
  return n;
}

Status CheckScanPolicy(const IntervalSet& policy) {
  size_t n = ScanPolicyBytes(policy);
  if (n <= kMaxPolicyBytes) return Status::Ok();
  return Status::InvalidArgument("--allow: " + std::to_string(policy.ranges().size()) + " ranges take " +
                                 std::to_string(n) + " bytes in the member record, above " +
                                 std::to_string(kMaxPolicyBytes) +
                                 " (at most 32 IPv4 or 8 IPv6 ranges): merge them into wider blocks");
}

Result<IntervalSet> ParseScanPolicy(const std::vector<std::string>& lists) {
  IntervalSet policy;
  for (const auto& list : lists) {
    auto parsed = ParseAddressList(list);
    if (!parsed.ok()) return parsed.status().WithContext("--allow");
    policy.Add(*parsed);
  }
  if (Status s = CheckScanPolicy(policy); !s.ok()) return s;
  return policy;
}

std::string EncodeScanPolicy(const IntervalSet& policy) {
  std::string out;
  for (const auto& r : policy.ranges()) {
    if (IsV4Range(r)) {
      out += kTagV4;
      PutBig(out, r.first, 4);
      PutBig(out, r.last, 4);
    } else {
      out += kTagV6;
      PutBig(out, r.first, 16);
      PutBig(out, r.last, 16);
    }
  }
  return out;
}

Result<IntervalSet> DecodeScanPolicy(std::string_view in) {
  if (in.size() > kMaxPolicyBytes)
    return Status::Corruption("scan policy of " + std::to_string(in.size()) + " bytes, above " +
                              std::to_string(kMaxPolicyBytes));
  std::vector<AddressRange> ranges;
  for (size_t at = 0; at < in.size();) {
    char tag = in[at++];
    AddressRange r;
    if (tag == kTagV4) {
      if (in.size() - at < 8) return Status::Corruption("scan policy: IPv4 range cut short");
      r = {IpAddress::kV4MappedBase | GetBig(in, at, 4), IpAddress::kV4MappedBase | GetBig(in, at + 4, 4)};
      at += 8;
    } else if (tag == kTagV6) {
      if (in.size() - at < 32) return Status::Corruption("scan policy: IPv6 range cut short");
      r = {GetBig(in, at, 16), GetBig(in, at + 16, 16)};
      at += 32;
      if (IsV4Range(r)) return Status::Corruption("scan policy: an IPv4 range encoded as IPv6");
    } else {
      return Status::Corruption("scan policy: unknown range tag " + std::to_string(static_cast<uint8_t>(tag)));
    }
    if (r.last < r.first) return Status::Corruption("scan policy: a range ends before it starts");
    // Sorted, disjoint, non-adjacent: what IntervalSet keeps, so one set
    // has one encoding.
    if (!ranges.empty() && (ranges.back().last == ~u128{0} || ranges.back().last + 1 >= r.first))
      return Status::Corruption("scan policy: ranges out of order, overlapping or adjacent");
    ranges.push_back(r);
  }
  IntervalSet policy;
  for (const auto& r : ranges) policy.Add(r);
  return policy;
}

std::string FormatAddressSet(const IntervalSet& set, size_t max_ranges) {
  std::string out;
  size_t shown = 0;
  for (const auto& r : set.ranges()) {
    if (shown == max_ranges) {
      out += ",... (" + std::to_string(set.ranges().size() - shown) + " more)";
      break;
    }
    if (!out.empty()) out += ',';
    int prefix = PrefixOf(r);
    bool v4 = IsV4Range(r);
    if (r.first == r.last) {
      out += IpAddress(r.first).ToString();
    } else if (prefix >= 0 && (!v4 || prefix >= 96)) {
      out += IpAddress(r.first).ToString() + "/" + std::to_string(v4 ? prefix - 96 : prefix);
    } else {
      out += IpAddress(r.first).ToString() + "-" + IpAddress(r.last).ToString();
    }
    ++shown;
  }
  return out;
}

}  // namespace ndo::mesh
