// TCP port lists: "-p 22,80,8000-8100", "-p-" (all), "--top-ports N" from an
// embedded frequency-ordered table (derived from Nmap's nmap-services).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace ndo {

inline constexpr size_t kTopPortsTableSize = 1000;

// Sorted, unique ports. "-" alone means 1-65535; "-100" means 1-100, "60000-" up to 65535.
Result<std::vector<uint16_t>> ParsePortList(std::string_view spec);
// The n most frequently open TCP ports (n in 1..1000), sorted ascending.
Result<std::vector<uint16_t>> TopPorts(size_t n);
// Nmap's service name for a TCP port from the embedded table, or "unknown".
std::string_view ServiceName(uint16_t port);
// Compact text form, e.g. "21-23,25,80" (used for Nmap XML scaninfo and for display).
std::string FormatPortList(const std::vector<uint16_t>& ports);
// Adds the ports of `extra` to `ports`, keeping them sorted and unique.
void MergePorts(std::vector<uint16_t>& ports, const std::vector<uint16_t>& extra);

}  // namespace ndo
