// Ids as people see them: hex, lowercase, fixed length.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace ndo {

// A scan: 8 bytes, shown as 16 hex digits; users may type any unique prefix.
using ScanId = std::array<uint8_t, 8>;
std::string ScanIdToHex(const ScanId& id);
Result<ScanId> ScanIdFromHex(std::string_view hex);  // exactly 16 hex digits

// A 128-bit id kept as two halves (a node's, a cluster's): 32 hex digits,
// `hi` first. Parsing takes either case and fails on any other length.
std::string Id128ToHex(uint64_t hi, uint64_t lo);
bool Id128FromHex(std::string_view hex, uint64_t& hi, uint64_t& lo);

}  // namespace ndo
