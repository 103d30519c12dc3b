// A node's scan policy: the addresses this node will ever probe
// (`ndo agent|join|init --allow LIST`), enforced by the node itself, whoever
// asked for the scan (docs/security.md, "Scan policy"). Empty: the node
// takes no distributed work. Published in the node's member record
// (messages.h MemberInfo::allow), so every member knows every member's
// policy, and kept in the node's store so that a restart keeps it.
//
// Bounded so that a member record still fits a datagram with others: the
// compact encoding below is at most kMaxPolicyBytes, which is 32 IPv4
// ranges (9 bytes each) or 8 IPv6 ranges (33 bytes each), or a mix.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "scan/interval_set.h"

namespace ndo::mesh {

inline constexpr size_t kMaxPolicyBytes = 288;

// Parses the values of --allow (each a list of addresses, CIDR blocks and
// a-b ranges separated by commas or spaces; no hostnames, as for --scope).
// InvalidArgument naming the bad token, or when the policy is too large
// (the message says the bound). An empty list gives an empty policy.
Result<IntervalSet> ParseScanPolicy(const std::vector<std::string>& lists);

// InvalidArgument when `policy` encodes to more than kMaxPolicyBytes.
Status CheckScanPolicy(const IntervalSet& policy);

// The compact encoding: per range, a tag byte (4: both ends IPv4, then two
// 4-byte big-endian addresses; 6: two 16-byte addresses), in ascending
// order. An empty policy is the empty string.
std::string EncodeScanPolicy(const IntervalSet& policy);
size_t ScanPolicyBytes(const IntervalSet& policy);
// Corruption on anything but a canonical encoding of at most
// kMaxPolicyBytes: unknown tags, truncated ranges, ranges out of order,
// overlapping or adjacent (two encodings of one set would make two records
// of one member differ).
Result<IntervalSet> DecodeScanPolicy(std::string_view bytes);

// For people: ranges as CIDR blocks where they are one, "a-b" otherwise,
// joined by ','; at most `max_ranges` of them, then ",... (N more)".
// "" for an empty set.
std::string FormatAddressSet(const IntervalSet& set, size_t max_ranges = 32);

}  // namespace ndo::mesh
