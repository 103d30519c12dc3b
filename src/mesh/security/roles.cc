#include "mesh/security/roles.h"

namespace ndo::mesh {

std::string_view NodeRoleName(NodeRole role) {
  switch (role) {
    case NodeRole::kScanner: return "scanner";
    case NodeRole::kOperator: return "operator";
  }
  return "scanner";
}

std::optional<NodeRole> ParseNodeRole(std::string_view text) {
  if (text == "scanner") return NodeRole::kScanner;
  if (text == "operator") return NodeRole::kOperator;
  return std::nullopt;
}

Status CheckVantageName(std::string_view vantage) {
  if (vantage.empty()) return Status::InvalidArgument("vantage is empty");
  if (vantage.size() > kMaxVantageBytes)
    return Status::InvalidArgument("vantage is " + std::to_string(vantage.size()) + " bytes long; at most " +
                                   std::to_string(kMaxVantageBytes) + " are allowed");
  for (unsigned char c : vantage)
    if (c < 0x20 || c == 0x7f) return Status::InvalidArgument("vantage contains a control character");
  return Status::Ok();
}

}  // namespace ndo::mesh
