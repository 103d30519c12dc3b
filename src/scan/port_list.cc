#include "scan/port_list.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <utility>

namespace ndo {
namespace {

struct PortEntry {
  uint16_t port;
  const char* name;
};

constexpr PortEntry kTopPorts[] = {
#include "scan/top_ports_table.inc"
};
static_assert(std::size(kTopPorts) == kTopPortsTableSize);

constexpr PortEntry kServiceNames[] = {
#include "scan/service_names_table.inc"
};

Result<uint16_t> ParsePort(std::string_view s, std::string_view whole) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size())
    return Status::InvalidArgument("bad port list '" + std::string(whole) + "': '" + std::string(s) + "' is not a port number");
  if (v < 1 || v > 65535)
    return Status::InvalidArgument("bad port list '" + std::string(whole) + "': port " + std::string(s) + " is outside 1-65535");
  return static_cast<uint16_t>(v);
}

}  // namespace

Result<std::vector<uint16_t>> ParsePortList(std::string_view spec) {
  // The items are kept as ranges and expanded once, in order, at the end: a
  // list that names the same ports again and again ("-,-,-,...") costs its
  // length, not up to 65535 ports per item (found by tests/fuzz/fuzz_port_list).
  std::vector<std::pair<uint16_t, uint16_t>> ranges;
  if (spec.empty()) return Status::InvalidArgument("empty port list");
  size_t i = 0;
  while (i <= spec.size()) {
    size_t j = spec.find(',', i);
    if (j == std::string_view::npos) j = spec.size();
    std::string_view item = spec.substr(i, j - i);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front()))) item.remove_prefix(1);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) item.remove_suffix(1);
    if (item.empty()) return Status::InvalidArgument("bad port list '" + std::string(spec) + "': empty item");
    uint16_t lo = 1, hi = 65535;
    if (auto dash = item.find('-'); dash != std::string_view::npos) {
      if (dash > 0) {
        auto a = ParsePort(item.substr(0, dash), spec);
        if (!a.ok()) return a.status();
        lo = *a;
      }
      if (dash + 1 < item.size()) {
        auto b = ParsePort(item.substr(dash + 1), spec);
        if (!b.ok()) return b.status();
        hi = *b;
      }
      if (hi < lo) return Status::InvalidArgument("bad port list '" + std::string(spec) + "': range " + std::string(item) + " is reversed");
    } else {
      auto a = ParsePort(item, spec);
      if (!a.ok()) return a.status();
      lo = hi = *a;
    }
    ranges.emplace_back(lo, hi);
    i = j + 1;
  }
  // Sorted by first port, each range adds only what lies above the ports so
  // far: those below are covered by the range that reached the highest one.
  std::sort(ranges.begin(), ranges.end());
  std::vector<uint16_t> out;
  for (auto [lo, hi] : ranges) {
    uint32_t from = lo;
    if (!out.empty() && out.back() >= from) from = out.back() + 1u;
    for (uint32_t p = from; p <= hi; ++p) out.push_back(static_cast<uint16_t>(p));
  }
  return out;
}

Result<std::vector<uint16_t>> TopPorts(size_t n) {
  if (n < 1 || n > kTopPortsTableSize)
    return Status::InvalidArgument("--top-ports takes 1 to " + std::to_string(kTopPortsTableSize) + ", not " + std::to_string(n));
  std::vector<uint16_t> out;
  for (size_t i = 0; i < n; ++i) out.push_back(kTopPorts[i].port);
  std::sort(out.begin(), out.end());
  return out;
}

std::string_view ServiceName(uint16_t port) {
  // Built once: a dense table indexed by port.
  static const auto* names = [] {
    auto* t = new std::array<const char*, 65536>();
    t->fill(nullptr);
    for (const auto& e : kServiceNames) (*t)[e.port] = e.name;
    return t;
  }();
  const char* n = (*names)[port];
  return n ? n : "unknown";
}

std::string FormatPortList(const std::vector<uint16_t>& ports) {
  std::string out;
  for (size_t i = 0; i < ports.size();) {
    size_t j = i;
    while (j + 1 < ports.size() && ports[j + 1] == ports[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(ports[i]);
    if (j > i) out += "-" + std::to_string(ports[j]);
    i = j + 1;
  }
  return out;
}

void MergePorts(std::vector<uint16_t>& ports, const std::vector<uint16_t>& extra) {
  ports.insert(ports.end(), extra.begin(), extra.end());
  std::sort(ports.begin(), ports.end());
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
}

}  // namespace ndo
