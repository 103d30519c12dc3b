// Sealed gossip: every UDP datagram of the mesh is encrypted and
// authenticated with AES-256-GCM, and repeats are dropped. Serf's gossip key
// does the first half; it ignores replays and binds no sender. Here each
// sender seals under a subkey of its own, derived from the cluster key for
// its node id and an epoch (gossip_subkeys.h), the associated data binds
// the cluster id and the header, and each receiver keeps a sliding replay
// window per sender, so a captured datagram cannot be replayed, redirected
// to another cluster, or passed off as another sender's by anyone without
// the cluster key (the driver also checks that the message inside names the
// same sender). Against another key holder this proves nothing: it can
// derive every subkey.
//
// Wire layout (big-endian), kSealOverhead bytes around the plaintext:
//   version (1 byte, kSealVersion = 2) | key id (4) | sender id (16) |
//   counter (8) | epoch (8) | ciphertext | tag (16)
// subkey = HKDF-SHA256(cluster key `key id`, info = "ndo-gossip-subkey-v2" |
//          cluster id | key id | sender id | epoch)
// nonce  = 4 zero bytes | counter
// AAD    = "ndo-gossip-v2" | cluster id (16) | the header (version .. epoch).
//
// Why no (key, nonce) pair repeats, which GCM cannot survive: a subkey is
// used by one sealer only (its sender id and an epoch drawn from the CSPRNG
// when it took the subkey), and within it the counter strictly increases, in
// memory. A restart, a clock stepped back, a new primary key, or
// kMaxSealsPerSubkey datagrams or kMaxSubkeyAgeMicros under one subkey make
// the sealer draw a new epoch, so nothing depends on the clock or on state
// surviving a restart; two epochs of one sender and key collide with
// probability n^2 / 2^65 over n epochs drawn (docs/security.md has the
// figures). Version 1 (the cluster key itself with random nonces, within
// NIST's 2^32 datagrams per key for the whole cluster) is refused.
//
// The counter starts at the sealer's wall clock in milliseconds (injected)
// and rises by one per datagram, or with the clock if that is ahead, so a
// restarted node continues above what its peers' replay windows hold; the
// windows are per sender over counters, across its epochs.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mesh/membership/messages.h"
#include "mesh/security/pki.h"
#include "mesh/security/datagram_seal.h"
#include "mesh/security/gossip_subkeys.h"
#include "base/status.h"
#include "mesh/transport/transport.h"

namespace ndo::mesh {

inline constexpr uint8_t kSealVersion = 2;
inline constexpr size_t kGossipKeyBytes = 32;
inline constexpr size_t kSealHeaderBytes = 1 + 4 + 16 + 8 + 8;
inline constexpr size_t kSealTagBytes = kGcmTagBytes;
inline constexpr size_t kSealOverhead = kSealHeaderBytes + kSealTagBytes;
// Datagrams this far behind the highest counter seen from a sender are
// dropped as too old; closer ones are accepted once each.
inline constexpr uint64_t kReplayWindow = 1024;
// Senders whose replay windows a receiver keeps; a datagram from a new
// sender beyond this is dropped (only key holders create entries).
inline constexpr size_t kMaxReplaySenders = 1u << 18;
inline constexpr size_t kMaxGossipKeys = 16;
// Datagrams one subkey seals before its sealer draws a new epoch: 2^24.
// With deterministic nonces NIST SP 800-38D's 2^32 (random nonces) does not
// apply; what bounds a key is the confidentiality and integrity advantage
// (draft-irtf-cfrg-aead-limits): for q datagrams of at most l = 80 blocks
// (kMaxDatagramBytes and the AAD), about (q(l+1))^2 / 2^129 = 2^-68 here, below the
// 2^-57 and 2^-60 that draft and TLS 1.3 (2^24.5 records of 2^14 bytes)
// aim for. A node at meshsim's busiest 35 datagrams/s reaches it in 5.5
// days; kMaxSubkeyAgeMicros comes first.
inline constexpr uint64_t kMaxSealsPerSubkey = uint64_t{1} << 24;
// And at most a day of the sealer's clock (AeadSeal::SetClock), so that
// every node changes subkeys daily, however quiet: the rotation runs in
// every deployment and no subkey serves for long.
inline constexpr uint64_t kMaxSubkeyAgeMicros = 24ull * 3600 * 1'000'000;
// Subkeys a receiver keeps (SubkeyCache): a few per sender of a mesh of a
// thousand (a restart or a rotation leaves the old one until it is evicted);
// about 1.3 KB each, 5.3 MB at most.
inline constexpr size_t kMaxCachedSubkeys = 4096;
// With a clock (AeadSeal::SetClock), one counter step per millisecond. The
// replay window then spans at least kReplayWindow datagrams or about 1 s of
// the sender's time, whichever is less, so a datagram overtaken on the way
// by one sent up to a second after it still opens. (Microsecond counters
// made the window 1 ms wide: meshsim dropped 118 of 4.4 million datagrams
// as too old with 1 ms median latency.) A sender outruns the clock only
// above 1000 datagrams a second.
inline constexpr uint64_t kCounterTickMicros = 1000;
constexpr uint64_t CounterAtWallMicros(uint64_t wall_micros) { return wall_micros / kCounterTickMicros; }
// How far a sealed counter may be from the receiver's clock (AeadSeal::
// SetClock): clock skew between members plus transit, with room to spare.
inline constexpr uint64_t kMaxCounterSkewMicros = 120'000'000;

struct GossipKey {
  uint32_t id = 0;
  std::array<uint8_t, kGossipKeyBytes> key{};
  int64_t created_unix = 0;
};

// The keys a node holds: every key opens, the primary one seals. Rotation
// (`ndo keys rotate`): install a new key everywhere, make it primary, then
// remove the old one; a datagram sealed with a removed key is dropped.
struct Keyring {
  std::vector<GossipKey> keys;
  uint32_t primary = 0;

  const GossipKey* Find(uint32_t id) const;
  // InvalidArgument if empty, over kMaxGossipKeys, ids repeat, or the
  // primary is not among the keys.
  Status Validate() const;
};

// A new random key (CSPRNG) with an id not used in `ring`.
Result<GossipKey> NewGossipKey(const Keyring& ring, int64_t now_unix);
// A keyring of one new key, primary.
Result<Keyring> NewKeyring(int64_t now_unix);

Result<std::string> EncodeKeyring(const Keyring& ring);
Result<Keyring> DecodeKeyring(std::string_view bytes);  // bounded; validates

// Per-sender sliding window over counters (RFC 4303's anti-replay window).
class ReplayWindow {
 public:
  // True if `counter` is new (and records it); false for a repeat or one
  // kReplayWindow or more behind the highest seen.
  bool Accept(uint64_t counter);
  // Whether Accept would take it, without recording.
  bool WouldAccept(uint64_t counter) const;
  // Whether Accept refuses it for its age alone (kReplayWindow or more
  // behind the highest seen), which Open reports apart from a repeat.
  bool TooOld(uint64_t counter) const;

 private:
  uint64_t highest_ = 0;
  bool any_ = false;
  std::array<uint64_t, kReplayWindow / 64> bits_{};  // bit (highest_ - c) set: seen
};

class AeadSeal final : public DatagramSeal {
 public:
  // The bounds above, injectable so that a test can cross them.
  struct Limits {
    uint64_t max_seals_per_subkey = kMaxSealsPerSubkey;
    uint64_t max_subkey_age_micros = kMaxSubkeyAgeMicros;
    size_t cached_subkeys = kMaxCachedSubkeys;
  };

  AeadSeal(ClusterId cluster, NodeId self, Keyring ring, uint64_t first_counter);
  AeadSeal(ClusterId cluster, NodeId self, Keyring ring, uint64_t first_counter, Limits limits);
  ~AeadSeal() override;

  Result<std::string> Seal(std::string_view plain) override;
  // Drops (with the reason as the error): a wrong version (1 included), an
  // unknown (never installed or removed) key, a failed authentication
  // (forged, modified, truncated, other cluster, another sender's header),
  // a replay; only then is the window advanced and the subkey cached.
  Result<OpenedDatagram> Open(std::string_view wire) override;
  size_t Overhead() const override { return kSealOverhead; }

  // Ties counters to a wall clock in microseconds (the daemon and the
  // simulator set it; most tests do not). Seal then sends max(counter + 1,
  // CounterAtWallMicros(now)), and Open refuses a counter more than
  // kMaxCounterSkewMicros away from the receiver's now: a datagram captured earlier cannot be replayed to a member that
  // restarted since (its windows are gone), and no counter from the far
  // future can push a sender's window out of reach of its real datagrams.
  using WallClockMicros = std::function<uint64_t()>;
  void SetClock(WallClockMicros clock) { clock_ = std::move(clock); }

  // Takes effect for the next datagram (no restart). Validated first.
  // Subkeys of keys no longer held are dropped.
  Status SetKeyring(Keyring ring);
  const Keyring& keyring() const { return ring_; }

  // The epoch of the subkey this seal seals under (none before the first
  // Seal), how many it has taken, and how many subkeys of senders it holds.
  uint64_t epoch() const { return epoch_; }
  uint64_t epochs_taken() const { return epochs_taken_; }
  size_t cached_subkeys() const { return subkeys_.size(); }

 private:
  // The PRK (HKDF-Extract) of a held key, computed once per key.
  Result<const Subkey*> Prk(const GossipKey& key);
  // A new epoch and its subkey for sealing under `key`.
  Status TakeEpoch(const GossipKey& key, uint64_t now_micros);

  ClusterId cluster_;
  NodeId self_;
  Keyring ring_;
  uint64_t counter_;
  Limits limits_;
  WallClockMicros clock_;
  std::unordered_map<NodeId, ReplayWindow, NodeIdHash> windows_;
  std::unordered_map<uint32_t, Subkey> prks_;  // by key id; wiped when dropped
  // Sealing: the subkey in use, what it is, since when (the clock's micros)
  // and how many datagrams it sealed.
  std::optional<GcmKey> sealing_;
  uint32_t sealing_key_id_ = 0;
  uint64_t epoch_ = 0, epochs_taken_ = 0, sealed_ = 0;
  uint64_t epoch_since_ = 0, last_clock_ = 0;
  SubkeyCache subkeys_;  // opening: senders' subkeys
};

}  // namespace ndo::mesh
