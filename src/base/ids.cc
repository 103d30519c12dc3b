#include "base/ids.h"

#include "base/hex.h"

namespace ndo {

std::string ScanIdToHex(const ScanId& id) { return HexEncode(std::span<const uint8_t>(id)); }

Result<ScanId> ScanIdFromHex(std::string_view hex) {
  if (hex.size() != 16) return Status::InvalidArgument("a scan id has 16 hex digits");
  auto bytes = HexDecode(hex);
  if (!bytes.ok()) return Status::InvalidArgument("bad scan id '" + std::string(hex) + "'");
  ScanId id{};
  for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<uint8_t>((*bytes)[i]);
  return id;
}

std::string Id128ToHex(uint64_t hi, uint64_t lo) {
  std::array<uint8_t, 16> bytes;
  for (int i = 0; i < 8; ++i) {
    bytes[i] = static_cast<uint8_t>(hi >> (56 - 8 * i));
    bytes[8 + i] = static_cast<uint8_t>(lo >> (56 - 8 * i));
  }
  return HexEncode(std::span<const uint8_t>(bytes));
}

bool Id128FromHex(std::string_view hex, uint64_t& hi, uint64_t& lo) {
  if (hex.size() != 32) return false;
  uint64_t h = 0, l = 0;
  for (size_t i = 0; i < hex.size(); ++i) {
    int d = HexDigitValue(hex[i]);
    if (d < 0) return false;
    uint64_t& half = i < 16 ? h : l;
    half = (half << 4) | static_cast<uint64_t>(d);
  }
  hi = h;
  lo = l;
  return true;
}

}  // namespace ndo
