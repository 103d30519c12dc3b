// What `ndo members` and `ndo status` show: the agent's answer to a control
// command from its membership core (pure: no I/O).
#pragma once

#include "mesh/api/control.h"
#include "mesh/membership/membership.h"

namespace ndo::mesh {

ControlResponse DescribeMembership(const Membership& membership, ControlCommand command);

}  // namespace ndo::mesh
