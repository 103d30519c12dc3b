// NodeId::FromHex (NodeId::Hex lives with the membership core).
#include <string_view>

#include "mesh/membership/messages.h"

namespace ndo::mesh {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

NodeId NodeId::FromHex(std::string_view hex) {
  if (hex.size() != 32) return {};
  NodeId id;
  for (size_t i = 0; i < hex.size(); ++i) {
    int d = HexDigit(hex[i]);
    if (d < 0) return {};
    uint64_t& half = i < 16 ? id.hi : id.lo;
    half = (half << 4) | static_cast<uint64_t>(d);
  }
  return id;
}

}  // namespace ndo::mesh
