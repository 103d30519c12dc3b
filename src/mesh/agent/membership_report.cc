#include "mesh/agent/membership_report.h"

#include <algorithm>
#include <tuple>

namespace ndo::mesh {
namespace {

ControlMember FromMember(const MemberInfo& info, uint64_t incarnation, MemberState state) {
  return {info.id, info.name, info.vantage, info.address, state, incarnation, info.priority, info.allow};
}

}  // namespace

ControlResponse DescribeMembership(const Membership& m, ControlCommand command) {
  ControlResponse r;
  r.self = FromMember(m.self(), m.incarnation(), m.has_left() ? MemberState::kLeft : MemberState::kAlive);
  if (command == ControlCommand::kMembers) {
    r.members.reserve(m.members().size());
    for (const auto& [id, member] : m.members())
      if (member.info) r.members.push_back(FromMember(*member.info, member.incarnation, member.state));
    // A stable order for people and diffs: by name, then id.
    std::sort(r.members.begin(), r.members.end(), [](const ControlMember& a, const ControlMember& b) {
      return std::tie(a.name, a.id) < std::tie(b.name, b.id);
    });
  }
  if (auto c = m.Coordinator()) r.coordinator = *c;
  r.epoch = m.epoch();
  r.joined = m.joined();
  r.local_health = static_cast<uint32_t>(std::max(0, m.local_health()));
  r.alive_count = m.AliveCount();
  r.leaving = m.has_left();
  return r;
}

}  // namespace ndo::mesh
