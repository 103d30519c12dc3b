// The members a node knows, as it saves them and rejoins through them: the
// rules the daemon's saved state (agent/node_identity.h) and the simulator
// (simulations/meshsim) share, so that both hand RejoinPolicy the same
// addresses. Pure: no clock, no store.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mesh/membership/membership.h"
#include "mesh/membership/messages.h"

namespace ndo::mesh {

struct KnownMember {
  MemberInfo info;
  uint64_t incarnation = 0;
  MemberState state = MemberState::kAlive;
};

// Every member the core knows (with its record), without self.
std::vector<KnownMember> KnownMembers(const Membership& membership);

// The members to save: `current` (from KnownMembers) and, if `keep_absent`
// (RejoinPolicy::KeepAbsentMembers), every member of `previous` (the last
// saved list) that `current` lacks, except those that left. A node that has
// not rejoined yet knows nobody, and one cut off long enough has reaped
// everyone: neither may forget the addresses it rejoins through. At most
// kMaxStateMembers.
std::vector<KnownMember> MergeSavedMembers(std::vector<KnownMember> current, const std::vector<KnownMember>& previous,
                                           bool keep_absent);

// Addresses to rejoin through: seeds first, then every known member's (dead
// ones too: they may be back; not those that left), without self's
// (`self_address`), deduplicated.
std::vector<std::string> RejoinAddresses(const std::string& self_address, const std::vector<KnownMember>& members,
                                         const std::vector<std::string>& seeds);

}  // namespace ndo::mesh
