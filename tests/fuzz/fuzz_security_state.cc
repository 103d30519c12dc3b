// Feeds: any bytes, as the security state a member sends in a sync (frame
// kind 'S') or the one saved in the store, to DecodeSecurityState
// (src/mesh/security/security_state.h).
// Checks, beyond "no crash":
//  - decode -> encode -> decode gives the same state;
//  - merging it into a fresh node's state and into itself behaves as a
//    semilattice join: Merge(s, s) changes nothing, and merging it into a
//    base state twice changes that state at most once, in either order;
//  - EffectiveKeyring, NextKeyChange and PruneRemovedKeys never crash, and
//    a keyring they return is valid.
#include <cstdint>

#include "fuzz_check.h"
#include "mesh/security/security_state.h"

using namespace ndo;
using namespace ndo::mesh;

namespace {

// A fixed base: one key, primary from time 1, as `ndo init` makes it.
SecurityState Base() {
  Keyring ring;
  GossipKey k;
  k.id = 7;
  for (size_t i = 0; i < k.key.size(); ++i) k.key[i] = static_cast<uint8_t>(i);
  k.created_unix = 1;
  ring.keys.push_back(k);
  ring.primary = 7;
  return StateFromKeyring(ring);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto s = DecodeSecurityState(FuzzInput(data, size));
  if (!s.ok()) return 0;

  auto encoded = EncodeSecurityState(*s);
  if (encoded.ok()) {
    auto again = DecodeSecurityState(*encoded);
    FUZZ_CHECK_MSG(again.ok(), again.status().message());
    FUZZ_CHECK(*again == *s);
  }

  SecurityState self = *s;
  FUZZ_CHECK(!Merge(self, *s));
  FUZZ_CHECK(self == *s);

  SecurityState a = Base(), b = *s;
  Merge(a, *s);
  FUZZ_CHECK(!Merge(a, *s));  // idempotent
  Merge(b, Base());
  FUZZ_CHECK(a == b);         // commutative

  for (int64_t now : {int64_t{0}, int64_t{1}, int64_t{1800000000}, INT64_MAX}) {
    auto ring = EffectiveKeyring(a, now);
    if (ring.ok()) FUZZ_CHECK_MSG(ring->Validate().ok(), ring->Validate().message());
    (void)NextKeyChange(a, now);
  }
  PruneRemovedKeys(a, 1800000000);
  return 0;
}
