// The results of one shard as one canonical blob: the unit replicated
// between nodes, named by its SHA-256 in the scan state (mesh/pool_state.h).
// Canonical means the same set of results always gives the same bytes, so
// two nodes that ran (or received) one shard agree on its digest:
//
//   magic "ndob" (4) | version 1 (1) | count (4, LE)
//   count records, sorted strictly by (address, port):
//     address (16, BE) | port (2, BE) | value (16, result_codec.h's layout, reserved byte 0)
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "scan/probe_result.h"
#include "scan/status.h"

namespace ndo {

inline constexpr size_t kMaxBundleResults = 4'000'000;
inline constexpr size_t kBundleHeaderSize = 4 + 1 + 4;
inline constexpr size_t kBundleRecordSize = 16 + 2 + 16;

// Sorts by (address, port) and keeps one result per probe, the preferred one
// (PreferredResultValue: the more informative state, then the later time).
// InvalidArgument for an unknown port state or more than kMaxBundleResults
// probes.
Result<std::string> EncodeResultBundle(std::vector<ProbeResult> results);

// Bounded and validating (exact size, sorted strictly, known states and
// version, reserved bytes zero, so that re-encoding gives the same bytes);
// Corruption on anything else, never a crash.
Result<std::vector<ProbeResult>> DecodeResultBundle(std::string_view bytes);

// SHA-256 of the encoded bundle.
std::array<uint8_t, 32> BundleDigest(std::string_view bytes);

}  // namespace ndo
