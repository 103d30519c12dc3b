#include "mesh/agent/control_router.h"

#include "mesh/work/pool_state.h"

namespace ndo::mesh {
namespace {

// What an operator-only command does, for the refusal on a scanner node;
// empty for what any node may do.
std::string OperatorOnly(const ControlRequest& request) {
  switch (request.command) {
    case ControlCommand::kSubmitScan: return "submit scans";
    case ControlCommand::kScanControl:
      switch (static_cast<ScanControl>(request.scan_action)) {
        case ScanControl::kPaused: return "pause scans";
        case ScanControl::kRunning: return "resume scans";
        case ScanControl::kStopped: return "stop scans";
      }
      return "pause, resume or stop scans";
    case ControlCommand::kCreateToken: return "create tokens";
    case ControlCommand::kRemoveMember: return "remove members";
    case ControlCommand::kRotateKeys: return "rotate keys";
    case ControlCommand::kMembers:
    case ControlCommand::kStatus:
    case ControlCommand::kLeave:
      return {};
  }
  return {};  // a command this node does not know is described (below)
}

}  // namespace

ControlRoute RouteControl(const Result<ControlRequest>& request, const ControlFacts& facts) {
  auto refuse = [](std::string why) { return ControlRoute{ControlCall::kRefuse, std::move(why), false}; };
  if (!request.ok()) return refuse(request.status().message());
  // An unsecured mesh has no certificates and so no roles: everyone may do
  // everything there.
  bool may_operate = !facts.secured || facts.holds_ca_key || facts.role == NodeRole::kOperator;
  if (std::string what = OperatorOnly(*request); !what.empty() && !may_operate)
    return refuse("this node's certificate gives it the role " + std::string(NodeRoleName(facts.role)) +
                  "; only an operator may " + what + " (run it on an operator node; enrol one with a token from " +
                  "`ndo token create --role operator`)");
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
