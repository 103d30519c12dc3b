#include "mesh/membership/known_members.h"

#include <set>
#include <utility>

namespace ndo::mesh {

std::vector<KnownMember> KnownMembers(const Membership& m) {
  std::vector<KnownMember> out;
  out.reserve(m.members().size());
  for (const auto& [id, member] : m.members()) {
    if (!member.info) continue;
    out.push_back({*member.info, member.incarnation, member.state});
  }
  return out;
}

std::vector<KnownMember> MergeSavedMembers(std::vector<KnownMember> current, const std::vector<KnownMember>& previous,
                                           bool keep_absent) {
  if (!keep_absent) return current;
  std::set<NodeId> known;
  for (const auto& m : current) known.insert(m.info.id);
  for (const auto& m : previous) {
    if (current.size() >= kMaxStateMembers) break;
    if (m.state == MemberState::kLeft || !known.insert(m.info.id).second) continue;
    current.push_back(m);
  }
  return current;
}

std::vector<std::string> RejoinAddresses(const std::string& self_address, const std::vector<KnownMember>& members,
                                         const std::vector<std::string>& seeds) {
  std::vector<std::string> out;
  std::set<std::string> seen = {self_address};
  for (const auto& s : seeds)
    if (seen.insert(s).second) out.push_back(s);
  for (const auto& m : members)
    if (m.state != MemberState::kLeft && seen.insert(m.info.address).second) out.push_back(m.info.address);
  return out;
}

}  // namespace ndo::mesh
