// Feeds: any bytes, as the gossip keyring file of a data directory or the
// keyring an enrolling node receives, to DecodeKeyring (Cap'n Proto,
// src/mesh/security/gossip_seal.h).
// Checks, beyond "no crash":
//  - a decoded keyring is valid (Keyring::Validate: 1 to kMaxGossipKeys keys,
//    distinct ids, the primary among them), and Find() returns each key by
//    its id;
//  - decode -> encode -> decode gives the same keyring.
#include "fuzz_check.h"
#include "mesh/security/gossip_seal.h"

using namespace ndo;
using namespace ndo::mesh;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto decoded = DecodeKeyring(FuzzInput(data, size));
  if (!decoded.ok()) return 0;
  const Keyring& ring = *decoded;
  Status valid = ring.Validate();
  FUZZ_CHECK_MSG(valid.ok(), valid.message());
  FUZZ_CHECK(!ring.keys.empty() && ring.keys.size() <= kMaxGossipKeys);
  FUZZ_CHECK(ring.Find(ring.primary) != nullptr);
  for (const GossipKey& k : ring.keys) {
    const GossipKey* found = ring.Find(k.id);
    FUZZ_CHECK(found && found->id == k.id && found->key == k.key);
  }

  auto encoded = EncodeKeyring(ring);
  FUZZ_CHECK_MSG(encoded.ok(), encoded.status().message());
  auto again = DecodeKeyring(*encoded);
  FUZZ_CHECK_MSG(again.ok(), again.status().message());
  FUZZ_CHECK(again->primary == ring.primary && again->keys.size() == ring.keys.size());
  for (size_t i = 0; i < ring.keys.size(); ++i) {
    const GossipKey &a = ring.keys[i], &b = again->keys[i];
    FUZZ_CHECK(a.id == b.id && a.key == b.key && a.created_unix == b.created_unix);
  }
  return 0;
}
