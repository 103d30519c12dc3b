// NodeId::FromHex (NodeId::Hex lives with the membership core).
#include <string_view>

#include "base/ids.h"

#include "mesh/messages.h"

namespace ndo::mesh {
NodeId NodeId::FromHex(std::string_view hex) {
  NodeId id;
  if (!Id128FromHex(hex, id.hi, id.lo)) return {};
  return id;
}

}  // namespace ndo::mesh
