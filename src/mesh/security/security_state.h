// The cluster's replicated security state: which gossip keys exist and when
// each becomes primary or is removed, and which nodes are revoked. Every
// member holds a copy in its store; copies meet over mutual TLS (pushed to
// every member on a change, and exchanged with a random member now and
// then) and are merged. The merge is a join of a semilattice (idempotent,
// commutative, associative), so copies converge whatever the order,
// duplication or delay of the exchanges (docs/protocol.md):
//
// * key material: the union by key id (a clash of random 32-bit ids, never
//   seen in practice, keeps the smaller bytes everywhere);
// * key schedule, per key id: primary_from is the largest time announced,
//   removed_from the earliest non-zero one (a removal is final);
// * revoked nodes: the union by node id (the earliest time, any serial and
//   name known); a revocation is final;
// * enrolment authorities (members holding the CA key): the union.
//
// Times are wall-clock seconds: a rotation is scheduled a few seconds ahead
// (kRotationLead) so every member holds the new key before anyone seals with
// it, and the old key opens for a while after (kRotationOverlap). Clocks
// need only agree to within those margins.
//
// Pure: no I/O, `now` handed in.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mesh/security/gossip_seal.h"
#include "mesh/membership/messages.h"
#include "base/status.h"

namespace ndo::mesh {

inline constexpr int64_t kRotationLead = 10;     // s from `ndo keys rotate` to the new key sealing
inline constexpr int64_t kRotationOverlap = 10;  // s the old key still opens after that
inline constexpr size_t kMaxRevokedNodes = 100000;
inline constexpr size_t kMaxAuthorities = 64;
inline constexpr size_t kMaxKeySchedules = 4096;  // tombstones of removed keys included
inline constexpr size_t kMaxSecurityStateBytes = 16u << 20;

struct KeySchedule {
  uint32_t id = 0;
  int64_t primary_from_unix = 0;
  int64_t removed_from_unix = 0;
  friend bool operator==(const KeySchedule&, const KeySchedule&) = default;
};

struct RevokedNode {
  NodeId node;
  std::string serial_hex;
  int64_t revoked_unix = 0;
  std::string name;
  friend bool operator==(const RevokedNode&, const RevokedNode&) = default;
};

struct SecurityState {
  std::vector<GossipKey> keys;          // sorted by id
  std::vector<KeySchedule> schedule;    // sorted by id
  std::vector<RevokedNode> revoked;     // sorted by node id
  std::vector<NodeId> authorities;      // sorted: members that hold the CA key and enrol

  const KeySchedule* ScheduleOf(uint32_t id) const;
  const RevokedNode* FindRevoked(const NodeId& node) const;
};

bool operator==(const SecurityState& a, const SecurityState& b);

// The state a keyring stands for: its keys, the primary one primary from
// time 1 (any later rotation overrides it).
SecurityState StateFromKeyring(const Keyring& ring);

// Joins `other` into `into`. Returns whether `into` changed.
bool Merge(SecurityState& into, const SecurityState& other);

// The keys that open at `now` (not removed yet) and the one that seals: the
// key with the latest primary_from at or before now (ties: the higher id).
// InvalidArgument if no key is left (never after a rotation done by ndo).
Result<Keyring> EffectiveKeyring(const SecurityState& state, int64_t now_unix);

// The next time after `now` at which EffectiveKeyring changes, if any.
std::optional<int64_t> NextKeyChange(const SecurityState& state, int64_t now_unix);

// Drops the material of keys removed at or before `now` (their schedule
// entries stay as tombstones, so a lagging copy cannot bring them back).
void PruneRemovedKeys(SecurityState& state, int64_t now_unix);

// Schedules a rotation at `now`: `fresh` (a new key) becomes primary at
// now + kRotationLead, and every key that opens now is removed at
// now + kRotationLead + kRotationOverlap.
Status ScheduleRotation(SecurityState& state, const GossipKey& fresh, int64_t now_unix);

// Revokes `node` (idempotent).
void Revoke(SecurityState& state, const RevokedNode& revoked);
// Announces `node` as an enrolment authority (idempotent); whether it
// changed the state.
bool AddAuthority(SecurityState& state, const NodeId& node);

Result<std::string> EncodeSecurityState(const SecurityState& state);
Result<SecurityState> DecodeSecurityState(std::string_view bytes);  // bounded; sorted and validated

}  // namespace ndo::mesh
