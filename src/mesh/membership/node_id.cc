// NodeId::FromHex (NodeId::Hex lives with the membership core).
#include <string_view>

#include "mesh/membership/messages.h"
#include "base/ids.h"


namespace ndo::mesh {
NodeId NodeId::FromHex(std::string_view hex) {
  NodeId id;
  if (!Id128FromHex(hex, id.hi, id.lo)) return {};
  return id;
}

}  // namespace ndo::mesh
