// Value comparison of the mesh's messages, for the round-trip checks of
// fuzz_wire_message and fuzz_push_pull.
#pragma once

#include <vector>

#include "mesh/membership/messages.h"

namespace ndo::mesh::fuzz {

inline bool SameInfo(const MemberInfo& a, const MemberInfo& b) {
  return a.id == b.id && a.name == b.name && a.vantage == b.vantage && a.address == b.address &&
         a.priority == b.priority && a.epoch == b.epoch && a.allow.ranges() == b.allow.ranges();
}

inline bool SameUpdate(const Update& a, const Update& b) {
  return a.kind == b.kind && a.incarnation == b.incarnation && a.from == b.from && a.info && b.info &&
         SameInfo(*a.info, *b.info);
}

inline bool SameUpdates(const std::vector<Update>& a, const std::vector<Update>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!SameUpdate(a[i], b[i])) return false;
  return true;
}

inline bool SameMessage(const Message& a, const Message& b) {
  return a.type == b.type && a.sender == b.sender && a.seq == b.seq && a.target == b.target &&
         a.target_address == b.target_address && SameUpdates(a.updates, b.updates) && a.payloads == b.payloads;
}

}  // namespace ndo::mesh::fuzz
