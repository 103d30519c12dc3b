// Feeds: any bytes, as the "mesh.node" record of a data directory's store
// (a damaged or tampered disk), to DecodeNodeState (src/mesh/agent/node_identity.h).
// Checks, beyond "no crash":
//  - what decodes is valid: self and every member pass ValidateMemberInfo,
//    states are within MemberState, no member has self's id, at most
//    kMaxStateMembers of them;
//  - it encodes, and decode -> encode -> decode gives the same state;
//  - RejoinAddresses, which a restarting node computes from it, lists no
//    address twice and never self's own.
#include <set>

#include "fuzz_check.h"
#include "mesh/membership/codec.h"
#include "mesh/agent/node_identity.h"

using namespace ndo;
using namespace ndo::mesh;

namespace {

bool SameInfo(const MemberInfo& a, const MemberInfo& b) {
  return a.id == b.id && a.name == b.name && a.vantage == b.vantage && a.address == b.address &&
         a.priority == b.priority && a.epoch == b.epoch && a.allow.ranges() == b.allow.ranges();
}

bool SameState(const NodeState& a, const NodeState& b) {
  if (!SameInfo(a.self, b.self) || a.incarnation != b.incarnation || a.listen != b.listen ||
      a.max_epoch_seen != b.max_epoch_seen || a.saved_at_us != b.saved_at_us || a.members.size() != b.members.size())
    return false;
  for (size_t i = 0; i < a.members.size(); ++i) {
    const KnownMember &x = a.members[i], &y = b.members[i];
    if (!SameInfo(x.info, y.info) || x.incarnation != y.incarnation || x.state != y.state) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto decoded = DecodeNodeState(FuzzInput(data, size));
  if (!decoded.ok()) return 0;
  const NodeState& st = *decoded;
  auto self_ok = ValidateMemberInfo(st.self);
  FUZZ_CHECK_MSG(self_ok.ok(), self_ok.message());
  FUZZ_CHECK(st.members.size() <= kMaxStateMembers);
  for (const KnownMember& m : st.members) {
    auto ok = ValidateMemberInfo(m.info);
    FUZZ_CHECK_MSG(ok.ok(), ok.message());
    FUZZ_CHECK(static_cast<unsigned>(m.state) <= static_cast<unsigned>(MemberState::kLeft));
    FUZZ_CHECK(m.info.id != st.self.id);
  }

  auto encoded = EncodeNodeState(st);
  FUZZ_CHECK_MSG(encoded.ok(), encoded.status().message());
  auto again = DecodeNodeState(*encoded);
  FUZZ_CHECK_MSG(again.ok(), again.status().message());
  FUZZ_CHECK(SameState(st, *again));

  std::set<std::string> seen;
  for (const std::string& a : RejoinAddresses(st, {})) {
    FUZZ_CHECK(a != st.self.address);
    FUZZ_CHECK(seen.insert(a).second);
  }
  return 0;
}
