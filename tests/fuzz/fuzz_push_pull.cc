// Feeds: any bytes, as the body of a push-pull frame read from a mesh
// stream, to DecodePushPull (flat Cap'n Proto, src/mesh/membership/codec.h).
// Checks, beyond "no crash": a decoded state has a sender, at most
// kMaxStateMembers updates, each valid as the encoder demands
// (ValidateMemberInfo); it encodes, and decode -> encode -> decode gives the
// same state and encode is deterministic (same bytes twice).
#include "fuzz_check.h"
#include "fuzz_mesh_equal.h"
#include "mesh/membership/codec.h"

using namespace ndo;
using namespace ndo::mesh;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto decoded = DecodePushPull(FuzzInput(data, size));
  if (!decoded.ok()) return 0;
  const PushPull& pp = *decoded;
  FUZZ_CHECK(!pp.sender.empty());
  FUZZ_CHECK(pp.state.size() <= kMaxStateMembers);
  for (const Update& u : pp.state) {
    FUZZ_CHECK(u.info);
    auto valid = ValidateMemberInfo(*u.info);
    FUZZ_CHECK_MSG(valid.ok(), valid.message());
  }

  auto encoded = EncodePushPull(pp);
  FUZZ_CHECK_MSG(encoded.ok(), encoded.status().message());
  auto again = DecodePushPull(*encoded);
  FUZZ_CHECK_MSG(again.ok(), again.status().message());
  FUZZ_CHECK(again->sender == pp.sender && again->join == pp.join);
  FUZZ_CHECK(fuzz::SameUpdates(pp.state, again->state));
  auto reencoded = EncodePushPull(*again);
  FUZZ_CHECK(reencoded.ok() && *reencoded == *encoded);
  return 0;
}
