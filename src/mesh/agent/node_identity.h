// A mesh node's identity and what it knew, kept in its data directory so a
// restarted node is the same member: same 128-bit id, an incarnation above
// the one it last published (its "alive" then beats the "dead" others hold),
// the highest coordinator epoch it saw, and the addresses of the members it
// knew, through which it rejoins on its own.
//
// Stored as one Cap'n Proto record (mesh/agent/node_state.capnp) under the Store
// metadata key kNodeStateKey, written at most every few seconds; the two
// counters that must never go back (incarnation, highest epoch seen) are
// also kept under kNodeCountersKey, a small record written synchronously
// before a new value is published.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "mesh/membership/address.h"
#include "mesh/membership/known_members.h"
#include "mesh/membership/membership.h"
#include "mesh/membership/messages.h"
#include "base/status.h"
#include "store/store.h"

namespace ndo::mesh {

inline constexpr std::string_view kNodeStateKey = "mesh.node";
inline constexpr std::string_view kNodeCountersKey = "mesh.counters";
// The scan policy `ndo init --allow` gives the cluster's first node before
// it ever ran (EncodeScanPolicy bytes): its first start takes it up unless
// it is given --allow itself. Later the policy lives in the node state.
inline constexpr std::string_view kInitPolicyKey = "mesh.init_policy";

struct NodeState {
  MemberInfo self;
  uint64_t incarnation = 0;  // the last one this node published
  std::string listen;        // where it was bound
  uint64_t max_epoch_seen = 0;
  std::vector<KnownMember> members;  // without self
  int64_t saved_at_us = 0;
};

// What the operator asked for; empty or unset fields keep the saved values.
struct IdentityRequest {
  std::string name;     // default on first start: the host name
  std::string vantage;  // required on first start
  std::optional<HostPort> listen;     // required on first start
  std::optional<HostPort> advertise;  // default: listen
  std::optional<uint32_t> priority;   // default on first start: 100
  // --allow: replaces the saved scan policy (default on first start: none,
  // or what `ndo init --allow` saved: see kNodePolicyKey).
  std::optional<IntervalSet> allow;
  // The node id the node's certificate names (a secured cluster): a new
  // identity takes it, a saved one must have it.
  std::optional<NodeId> id;
  // The vantage the node's certificate binds (a secured cluster): the node
  // takes it, and `vantage` must be empty or the same.
  std::optional<std::string> certified_vantage;
};

inline constexpr uint32_t kDefaultPriority = 100;

// 128 bits from OpenSSL's CSPRNG (never all zero).
Result<NodeId> RandomNodeId();
// A seed for the membership core's randomness, from the same source.
Result<uint64_t> RandomSeed();
// gethostname(), cut to kMaxNameBytes (at a UTF-8 boundary); "ndo" if unset.
std::string DefaultNodeName();

Result<std::string> EncodeNodeState(const NodeState& state);
// Bounded and validated (member records as the wire codec checks them).
Result<NodeState> DecodeNodeState(std::string_view bytes);

// NotFound on a data directory where no node ever ran. The incarnation and
// highest epoch are the larger of the state's and the counters'.
Result<NodeState> LoadNodeState(Store& store);
// `sync`: on disk before returning (Store::PutMeta).
Status SaveNodeState(Store& store, const NodeState& state, bool sync = false);
// Writes the counters alone, synchronously: a few bytes, cheap enough to do
// before every datagram that publishes a new incarnation or epoch.
Status SaveNodeCounters(Store& store, uint64_t incarnation, uint64_t max_epoch_seen);

// The state to start with: the saved one (if any) updated by the request,
// or a fresh identity. The incarnation to start at is saved + 1, and the
// result is what the caller should save at once, so that even a node that
// crash-loops before its first save never reuses an incarnation. A new
// listen address without --advertise moves the advertised address along only
// if it was the old listen address (one given with --advertise stays).
// InvalidArgument if the advertised and listen addresses differ in family.
Result<NodeState> ResolveIdentity(const std::optional<NodeState>& saved, const IdentityRequest& request);

// The state to save now: self and every member the core knows.
NodeState SnapshotNodeState(const Membership& membership, const std::string& listen);

// Addresses to rejoin through (mesh/membership/known_members.h): seeds
// first, then the saved members', without self's. MergeSavedMembers, which
// decides which members are saved, is there too.
inline std::vector<std::string> RejoinAddresses(const NodeState& state, const std::vector<std::string>& seeds) {
  return RejoinAddresses(state.self.address, state.members, seeds);
}

}  // namespace ndo::mesh
