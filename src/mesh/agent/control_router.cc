#include "mesh/agent/control_router.h"

namespace ndo::mesh {

ControlRoute RouteControl(const Result<ControlRequest>& request, const ControlFacts& facts) {
  auto refuse = [](std::string why) { return ControlRoute{ControlCall::kRefuse, std::move(why), false}; };
  if (!request.ok()) return refuse(request.status().message());
  switch (request->command) {
    case ControlCommand::kCreateToken:
      if (!facts.secured) return refuse("this agent runs an unsecured mesh (--insecure): there are no tokens");
      if (!facts.holds_ca_key)
        return refuse("only a node that holds the cluster CA key (the one that ran ndo init) can issue tokens");
      return {ControlCall::kCreateToken, "", false};
    case ControlCommand::kRotateKeys:
    case ControlCommand::kRemoveMember:
      if (!facts.secured)
        return refuse("this agent runs an unsecured mesh (--insecure): there are no keys or certificates");
      return {request->command == ControlCommand::kRotateKeys ? ControlCall::kRotateKeys : ControlCall::kRemoveMember,
              "", false};
    case ControlCommand::kSubmitScan:
      return {ControlCall::kSubmitScan, "", false};
    case ControlCommand::kScanControl:
      return {ControlCall::kScanControl, "", false};
    case ControlCommand::kMembers:
    case ControlCommand::kStatus:
      return {ControlCall::kDescribe, "", false};
    case ControlCommand::kLeave:
      return {ControlCall::kDescribe, "", true};
  }
  // A command this node does not know (a newer client): described, as before.
  return {ControlCall::kDescribe, "", false};
}

Result<NamedMember> ResolveMember(std::string_view who, const std::vector<NamedMember>& members, const NodeId& self) {
  std::vector<NamedMember> matches;
  for (const NamedMember& m : members) {
    std::string hex = m.id.Hex();
    bool by_id = who.size() >= 8 && hex.compare(0, who.size(), who) == 0;
    if (by_id || (m.has_info && m.name == who)) matches.push_back(m);
  }
  if (matches.empty()) {
    NodeId id = NodeId::FromHex(std::string(who));
    if (id.empty()) return Status::InvalidArgument("no member is named or has an id starting with '" + std::string(who) + "'");
    matches.push_back({id, "", false});
  }
  if (matches.size() > 1)
    return Status::InvalidArgument("'" + std::string(who) + "' matches " + std::to_string(matches.size()) +
                                   " members; give the full node id");
  if (matches.front().id == self)
    return Status::InvalidArgument(
        "a node cannot remove itself; run `ndo members remove` on another member (or `ndo leave`)");
  return matches.front();
}

}  // namespace ndo::mesh
