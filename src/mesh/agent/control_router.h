// Control routing, pure: which of the node's services a control-socket
// request goes to, or why it is refused before any service is called (an
// unsecured mesh has no tokens, keys or certificates; only the CA holder
// issues tokens; on a scanner node nothing but describing and leaving, as
// mesh/security/roles.h says). The driver (mesh_node.cc) calls what this names and writes
// the answer; what a service does with the request is the service's.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mesh/api/control.h"
#include "mesh/membership/messages.h"
#include "mesh/security/roles.h"
#include "base/status.h"

namespace ndo::mesh {

enum class ControlCall : uint8_t {
  kRefuse,        // answer `error`, call nothing
  kCreateToken,   // the enrolment authority: a join token
  kRotateKeys,    // the security state: a rotation
  kRemoveMember,  // the security state: a revocation (ResolveMember first)
  kSubmitScan,    // the work service
  kScanControl,   // the work service
  kDescribe,      // the membership: DescribeMembership(core, command)
};

struct ControlRoute {
  ControlCall call = ControlCall::kRefuse;
  std::string error;   // kRefuse
  bool leave = false;  // leave gracefully once the answer is written (kLeave)
};

struct ControlFacts {
  bool secured = false;       // a secured cluster (not --insecure)
  bool holds_ca_key = false;  // this node is an enrolment authority
  // The role this node's certificate binds (secured only). A node that
  // holds the CA key acts as an operator whatever its certificate says: it
  // could sign itself an operator's certificate, and the first node of a
  // cluster made before roles existed reads as a scanner.
  NodeRole role = NodeRole::kScanner;
};

// `request` as decoded from the control socket (a decoding error is refused
// with its message).
ControlRoute RouteControl(const Result<ControlRequest>& request, const ControlFacts& facts);

// A member as `ndo members remove` may name it.
struct NamedMember {
  NodeId id;
  std::string name;     // empty when unknown
  bool has_info = true;  // its record is known (a name to match, even empty)
};

// Which member `who` names among `members` (every member the core knows):
// by name, by id, or by an id prefix of 8 or more hex digits; a full id may
// name a node no longer known (already reaped). InvalidArgument when none
// or several match, or `who` names `self`.
Result<NamedMember> ResolveMember(std::string_view who, const std::vector<NamedMember>& members, const NodeId& self);

}  // namespace ndo::mesh
