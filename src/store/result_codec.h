// Keys and values of stored results. Keys sort by (scan, address, port), so a
// scan's results, or one host's, are a single range scan.
//   key   = 'r' | scan id (8) | address (16, big-endian) | port (2, big-endian)
//   value = version (1) | state (1) | attempts (1) | reserved (1) | rtt_us (4 LE) | time_us (8 LE)
#pragma once

#include <string>
#include <string_view>

#include "scan/probe_result.h"
#include "store/scan_record.h"

namespace ndo {

inline constexpr size_t kResultKeySize = 1 + 8 + 16 + 2;
inline constexpr size_t kResultValueSize = 16;

std::string ResultKey(const ScanId& scan, IpAddress address, uint16_t port);
std::string ResultPrefix(const ScanId& scan);
std::string EncodeResultValue(const ProbeResult& r);
// Decodes the address and port of a result-shaped key (results and service
// evidence share the layout, each with its own first byte `kind`).
Status DecodeResultKey(std::string_view key, char kind, IpAddress& address, uint16_t& port);
// Decodes key and value into `out`; Corruption on malformed bytes.
Status DecodeResult(std::string_view key, std::string_view value, ProbeResult& out);
// The merge rule for two records of the same probe: the more informative state
// wins (StateRank), and among equals the later one. Idempotent, commutative
// and associative, so replays and replicas converge.
std::string_view PreferredResultValue(std::string_view a, std::string_view b);

}  // namespace ndo
