// Sealed gossip: every UDP datagram of the mesh is encrypted and
// authenticated with AES-256-GCM under a cluster-wide key, and repeats are
// dropped. Serf's gossip key does the first half; it ignores replays and
// binds no sender. Here the associated data binds the cluster id, the key
// id, the sender's node id and a per-sender counter, and each receiver keeps
// a sliding replay window per sender, so a captured datagram cannot be
// replayed, redirected to another cluster, or passed off as another
// sender's (the driver also checks that the message inside names the same
// sender).
//
// Wire layout (big-endian), kSealOverhead bytes around the plaintext:
//   version (1 byte, kSealVersion) | key id (4) | sender id (16) |
//   counter (8) | nonce (12, random) | ciphertext | tag (16)
// AAD = "ndo-gossip-v1" | cluster id (16) | the header (version .. nonce).
//
// The counter starts at the sealer's wall clock in milliseconds (injected)
// and rises by one per datagram, or with the clock if that is ahead, so a
// restarted node continues above what its peers' windows hold.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mesh/membership/messages.h"
#include "mesh/security/pki.h"
#include "mesh/security/datagram_seal.h"
#include "base/status.h"
#include "mesh/transport/transport.h"

namespace ndo::mesh {

inline constexpr uint8_t kSealVersion = 1;
inline constexpr size_t kGossipKeyBytes = 32;
inline constexpr size_t kSealHeaderBytes = 1 + 4 + 16 + 8 + 12;
inline constexpr size_t kSealTagBytes = 16;
inline constexpr size_t kSealOverhead = kSealHeaderBytes + kSealTagBytes;
// Datagrams this far behind the highest counter seen from a sender are
// dropped as too old; closer ones are accepted once each.
inline constexpr uint64_t kReplayWindow = 1024;
// Senders whose replay windows a receiver keeps; a datagram from a new
// sender beyond this is dropped (only key holders create entries).
inline constexpr size_t kMaxReplaySenders = 1u << 18;
inline constexpr size_t kMaxGossipKeys = 16;
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
  AeadSeal(ClusterId cluster, NodeId self, Keyring ring, uint64_t first_counter);

  Result<std::string> Seal(std::string_view plain) override;
  // Drops (with the reason as the error): a wrong version, an unknown
  // (never installed or removed) key, a failed authentication (forged,
  // modified, truncated, other cluster), a replay; only then is the window
  // advanced.
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
  Status SetKeyring(Keyring ring);
  const Keyring& keyring() const { return ring_; }

 private:
  ClusterId cluster_;
  NodeId self_;
  Keyring ring_;
  uint64_t counter_;
  WallClockMicros clock_;
  std::unordered_map<NodeId, ReplayWindow, NodeIdHash> windows_;
};

}  // namespace ndo::mesh
