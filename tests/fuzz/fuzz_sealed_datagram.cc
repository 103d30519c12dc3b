// Feeds: UDP datagrams to AeadSeal::Open (src/mesh/security/gossip_seal.h), the first
// thing a node does with whatever arrives on its gossip port, with a fixed
// keyring (keys 1 and 2) and cluster id. The first input byte picks a mode:
//
//  - even: the rest of the input is the datagram, as an attacker without the
//    key sends it. Here the fuzzer explores the checks before the AEAD tag
//    (length, version, key id) and the tag check's refusal; it cannot get
//    beyond, since forging a GCM tag is exactly what it must not manage.
//    Should a datagram open anyway (only a genuinely sealed one can), the
//    same bytes a second time must be refused as a replay.
//
//  - odd (half of the cases): the input describes a datagram that is first
//    sealed for real: 8 bytes of sender counter, 2 of a position, 1 of an
//    XOR mask, then the plaintext. Bits 1-2 of the mode byte choose the
//    sealer: key 1, key 2 (both in the receiver's ring), another cluster,
//    or a key the receiver never installed; bit 3 truncates the datagram at
//    the position instead of flipping bits there. So the fuzzer reaches the
//    decryption, the replay window and the returned plaintext of valid
//    datagrams, and every single-byte modification or truncation of one,
//    which is as far as anyone can legitimately get.
//    Checks: the wire layout of the header (version, key id, sender,
//    counter, epoch; kSealOverhead bytes around the plaintext); an unmodified
//    datagram from a holder of a receiver key in the same cluster opens to
//    the same plaintext and names its sealer as sender, its second copy is
//    refused (replay) and the sealer's next datagram opens; anything else
//    (modified, truncated, other cluster, unknown key) is refused.
#include <cstring>

#include "fuzz_check.h"
#include "mesh/security/gossip_seal.h"

using namespace ndo;
using namespace ndo::mesh;

namespace {

constexpr ClusterId kCluster{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
constexpr ClusterId kOtherCluster{0x0123456789abcdefULL, 0xfedcba9876543211ULL};
constexpr NodeId kReceiver{0x1111111111111111ULL, 0x2222222222222222ULL};
constexpr NodeId kSender{0x3333333333333333ULL, 0x4444444444444444ULL};

GossipKey Key(uint32_t id, uint8_t fill) {
  GossipKey k;
  k.id = id;
  k.key.fill(fill);
  k.created_unix = 1700000000 + id;
  return k;
}

Keyring Ring(std::vector<GossipKey> keys, uint32_t primary) {
  Keyring r;
  r.keys = std::move(keys);
  r.primary = primary;
  return r;
}

// The receiver's keyring: keys 1 and 2, 1 primary.
Keyring ReceiverRing() { return Ring({Key(1, 0xa1), Key(2, 0xb2)}, 1); }

uint64_t BigEndian(std::string_view b) {
  uint64_t v = 0;
  for (char c : b) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

void RawMode(std::string_view wire) {
  AeadSeal receiver(kCluster, kReceiver, ReceiverRing(), 1);
  auto opened = receiver.Open(wire);
  if (!opened.ok()) {
    FUZZ_CHECK(!opened.status().message().empty());
    return;
  }
  FUZZ_CHECK(!opened->sender.empty());
  FUZZ_CHECK_MSG(!receiver.Open(wire).ok(), "a replayed datagram was accepted");
}

void SealMode(uint8_t mode, std::string_view in) {
  constexpr size_t kParams = 8 + 2 + 1;
  if (in.size() < kParams) return;
  uint64_t counter = BigEndian(in.substr(0, 8));
  size_t position = BigEndian(in.substr(8, 2));
  uint8_t mask = static_cast<uint8_t>(in[10]);
  std::string_view plain = in.substr(kParams);
  unsigned variant = (mode >> 1) & 3;
  bool truncate = mode & 8;

  ClusterId cluster = variant == 2 ? kOtherCluster : kCluster;
  Keyring ring = variant == 0 ? Ring({Key(1, 0xa1), Key(2, 0xb2)}, 1)
                 : variant == 1 ? Ring({Key(1, 0xa1), Key(2, 0xb2)}, 2)
                 : variant == 2 ? Ring({Key(1, 0xa1)}, 1)
                                : Ring({Key(3, 0xc3)}, 3);
  AeadSeal sealer(cluster, kSender, ring, counter);
  auto sealed = sealer.Seal(plain);
  if (!sealed.ok()) return;  // e.g. a plaintext above what a datagram may carry
  std::string wire = *sealed;

  // The documented layout: version | key id | sender | counter | epoch | ciphertext | tag.
  FUZZ_CHECK(wire.size() == plain.size() + kSealOverhead);
  FUZZ_CHECK(static_cast<uint8_t>(wire[0]) == kSealVersion);
  FUZZ_CHECK(BigEndian(std::string_view(wire).substr(1, 4)) == ring.primary);
  FUZZ_CHECK(BigEndian(std::string_view(wire).substr(5, 8)) == kSender.hi);
  FUZZ_CHECK(BigEndian(std::string_view(wire).substr(13, 8)) == kSender.lo);
  FUZZ_CHECK(BigEndian(std::string_view(wire).substr(21, 8)) == counter);
  FUZZ_CHECK(BigEndian(std::string_view(wire).substr(29, 8)) == sealer.epoch());

  bool modified = false;
  if (truncate) {
    wire.resize(position % wire.size());
    modified = true;
  } else if (mask != 0) {
    wire[position % wire.size()] ^= static_cast<char>(mask);
    modified = true;
  }

  AeadSeal receiver(kCluster, kReceiver, ReceiverRing(), 1);
  auto opened = receiver.Open(wire);
  bool must_open = (variant == 0 || variant == 1) && !modified;
  if (!must_open) {
    FUZZ_CHECK_MSG(!opened.ok(), "a modified, foreign or unknown-key datagram was accepted");
    return;
  }
  FUZZ_CHECK_MSG(opened.ok(), opened.status().message());
  FUZZ_CHECK(opened->plain == plain);
  FUZZ_CHECK(opened->sender == kSender);
  FUZZ_CHECK_MSG(!receiver.Open(wire).ok(), "a replayed datagram was accepted");

  if (counter == UINT64_MAX) return;  // no next counter
  auto next = sealer.Seal(plain);
  if (!next.ok()) return;
  auto opened_next = receiver.Open(*next);
  FUZZ_CHECK_MSG(opened_next.ok(), opened_next.status().message());
  FUZZ_CHECK(opened_next->plain == plain);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view rest = FuzzInput(data + 1, size - 1);
  if (data[0] & 1)
    SealMode(data[0], rest);
  else
    RawMode(rest);
  return 0;
}
