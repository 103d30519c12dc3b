// Feeds: any bytes, as a response frame body that `ndo members`/`leave`
// read from the agent's control socket, to DecodeControlResponse
// (src/mesh/api/control.h).
// Checks, beyond "no crash": a decoded response has member states within
// MemberState and at most kMaxStateMembers members; it encodes, and
// decode -> encode -> decode gives the same response (texts, which the
// decoder reads up to a NUL, included).
#include "fuzz_check.h"
#include "mesh/api/control.h"

using namespace ndo;
using namespace ndo::mesh;

namespace {

bool SameMember(const ControlMember& a, const ControlMember& b) {
  return a.id == b.id && a.name == b.name && a.vantage == b.vantage && a.address == b.address && a.state == b.state &&
         a.incarnation == b.incarnation && a.priority == b.priority && a.allow.ranges() == b.allow.ranges();
}

bool ValidState(MemberState s) { return static_cast<unsigned>(s) <= static_cast<unsigned>(MemberState::kLeft); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto decoded = DecodeControlResponse(FuzzInput(data, size));
  if (!decoded.ok()) return 0;
  const ControlResponse& r = *decoded;
  FUZZ_CHECK(r.members.size() <= kMaxStateMembers);
  FUZZ_CHECK(ValidState(r.self.state));
  for (const auto& m : r.members) FUZZ_CHECK(ValidState(m.state));

  auto encoded = EncodeControlResponse(r);
  FUZZ_CHECK_MSG(encoded.ok(), encoded.status().message());
  auto again = DecodeControlResponse(*encoded);
  FUZZ_CHECK_MSG(again.ok(), again.status().message());
  const ControlResponse& b = *again;
  FUZZ_CHECK(b.error == r.error && SameMember(b.self, r.self) && b.coordinator == r.coordinator &&
             b.epoch == r.epoch && b.joined == r.joined && b.local_health == r.local_health &&
             b.alive_count == r.alive_count && b.leaving == r.leaving && b.token == r.token &&
             b.ca_hash == r.ca_hash && b.expires_unix == r.expires_unix && b.message == r.message);
  FUZZ_CHECK(b.members.size() == r.members.size());
  for (size_t i = 0; i < r.members.size(); ++i) FUZZ_CHECK(SameMember(b.members[i], r.members[i]));
  return 0;
}
