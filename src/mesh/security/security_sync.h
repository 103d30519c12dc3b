// A member's share of the replicated security state (mesh/security/security_state.h),
// sans-IO: its copy, the anti-entropy that spreads it (every change pushed
// to every alive member at once, and an exchange with one random alive
// member every kSecuritySyncInterval, so a member back from a partition or
// a restart, or a joiner, catches up), the key schedule falling due, and the
// operator's rotations and revocations. It reads no clock, owns no socket
// and writes no store: inputs carry `now` (steady, for the sync interval)
// and `unix_now` (wall-clock seconds, the schedule's time), and what the
// node must do comes out as values:
//
//   inputs                                  outputs (Take...)
//   Load(keyring, saved state, unix_now)    TakeRequests: a state to send to
//   Tick(now, unix_now, alive)                a member (its reply comes back
//   SyncSoon(now)                             through OnSyncReply)
//   OnSyncRequest(body, unix_now) -> reply  TakeChanges: after a change, what
//   OnSyncReply(body, unix_now)               to put in force: the state to
//   Rotate / Revoke (control), AddAuthority   save (synced), the keyring
//                                           NextSync, NextKeyChange
//
// Bodies are encoded SecurityStates (the kSecuritySync frame's body); the
// peers are those the membership says are alive, of which the revoked ones
// are left out here.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "mesh/security/gossip_seal.h"
#include "mesh/membership/membership.h"
#include "mesh/security/security_state.h"
#include "base/status.h"

namespace ndo::mesh {

inline constexpr Duration kSecuritySyncInterval = std::chrono::seconds(10);

// An alive member (state kAlive, info known), as the membership says.
struct SecurityPeer {
  NodeId id;
  std::string address;
};

// The state to send to a member (EncodeSecurityState bytes).
struct SecuritySyncRequest {
  std::string address;
  std::string body;
};

// What the driver puts in force after a change of the state, in this order:
// `persist` saved synced (a revocation must survive a crash) before the
// revocations and `keyring` (the keys that open and seal now) take effect.
struct SecurityChange {
  std::string why;
  Result<std::string> persist = std::string();  // the encoded state, or why not
  Result<Keyring> keyring = Keyring{};          // or why no key is usable
  bool self_revoked = false;                    // this node revoked: first time only
};

struct RotationDone {
  uint32_t key = 0;
  int64_t primary_from_unix = 0;
  std::string message;  // for the operator
};

struct RevocationDone {
  std::string message;             // for the operator (the rotation's failure in it)
  Result<RotationDone> rotation;   // of the keys the revoked node knew
};

// Makes a fresh gossip key whose id is not in `held` (NewGossipKey; tests
// inject a deterministic one).
using GossipKeyMaker = std::function<Result<GossipKey>(const Keyring& held, int64_t now_unix)>;

class SecuritySync {
 public:
  SecuritySync(NodeId self, uint64_t seed, GossipKeyMaker make_key = NewGossipKey);

  // The state at start: the keyring's, joined with the saved one (`saved`:
  // EncodeSecurityState bytes, if any). Corruption when those do not decode.
  Status Load(const Keyring& ring, const std::optional<std::string>& saved, int64_t unix_now);

  // Announces self as an enrolment authority (it holds the CA key).
  void AddSelfAsAuthority(int64_t unix_now);

  // Keys falling due, and the periodic exchange with a random alive member.
  void Tick(Time now, int64_t unix_now, const std::vector<SecurityPeer>& alive);
  // The next exchange at once (a join just completed: a rotation or
  // revocation may be under way).
  void SyncSoon(Time now) { next_sync_ = now; }

  // A member's state, pushed or in its periodic exchange: merged; the reply
  // is this node's state. InvalidArgument when the body does not decode;
  // Corruption when this node's state cannot be encoded.
  Result<std::string> OnSyncRequest(std::string_view body, int64_t unix_now);
  // The reply to one of TakeRequests: merged. InvalidArgument when it does
  // not decode.
  Status OnSyncReply(std::string_view body, int64_t unix_now);

  // `ndo keys rotate`: a new key seals from unix_now + kRotationLead, the
  // older ones are removed kRotationOverlap later; pushed to every member.
  Result<RotationDone> Rotate(int64_t unix_now, const std::vector<SecurityPeer>& alive);
  // `ndo members remove`: `revoked` refused by every member from now on,
  // pushed to all, then the keys it knows rotated away (a failed rotation
  // does not undo the revocation).
  RevocationDone Revoke(const RevokedNode& revoked, int64_t unix_now, const std::vector<SecurityPeer>& alive);

  std::vector<SecuritySyncRequest> TakeRequests();
  std::vector<SecurityChange> TakeChanges();

  Time NextSync() const { return next_sync_; }
  std::optional<int64_t> NextKeyChange() const { return next_key_change_; }  // unix seconds
  const SecurityState& state() const { return state_; }
  bool IsRevoked(const NodeId& id) const { return state_.FindRevoked(id) != nullptr; }

 private:
  void Apply(std::string why, int64_t unix_now);
  bool MergeIn(const SecurityState& other, int64_t unix_now);
  void SyncWith(const std::string& address);
  void PushToAll(const std::vector<SecurityPeer>& alive);

  NodeId self_;
  std::mt19937_64 rng_;
  GossipKeyMaker make_key_;
  SecurityState state_;
  std::optional<int64_t> next_key_change_;
  Time next_sync_{};
  bool self_revoked_ = false;
  std::vector<SecuritySyncRequest> requests_;
  std::vector<SecurityChange> changes_;
};

}  // namespace ndo::mesh
