// The membership protocol's messages, as plain values. The wire encoding
// (Cap'n Proto, bounded decoding) lives in mesh/membership/codec.h; the core never sees
// bytes.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "scan/interval_set.h"

namespace ndo::mesh {

// Sizes the codec enforces on decode and the CLI on input, so that a member
// record always fits a datagram with room to spare.
inline constexpr size_t kMaxNameBytes = 64;
inline constexpr size_t kMaxVantageBytes = 32;
inline constexpr size_t kMaxAddressBytes = 64;   // "[v6]:port" or "a.b.c.d:port"
// No datagram exceeds this (a safe size under a 1500-byte MTU with IPv6,
// UDP and the AEAD seal the security issue adds).
inline constexpr size_t kMaxDatagramBytes = 1200;
inline constexpr size_t kMaxUpdatesPerDatagram = 24;
// Opaque broadcasts of the layer above (Message::payloads): small enough that
// a few share a datagram with the member updates; anything bigger belongs in
// a stream.
inline constexpr size_t kMaxPayloadBytes = 1024;
inline constexpr size_t kMaxPayloadsPerDatagram = 8;
// A push-pull state over a stream: bounded too.
inline constexpr size_t kMaxStreamBytes = 64u << 20;
// 100,000: a push-pull of that many records at their largest (a full scan
// policy each) still fits kMaxStreamBytes.
inline constexpr size_t kMaxStateMembers = 100000;

// A random 128-bit node identity.
struct NodeId {
  uint64_t hi = 0, lo = 0;
  friend auto operator<=>(const NodeId&, const NodeId&) = default;
  bool empty() const { return hi == 0 && lo == 0; }
  std::string Hex() const;
  // 32 hex digits; empty NodeId on anything else.
  static NodeId FromHex(std::string_view hex);
};

struct NodeIdHash {
  size_t operator()(const NodeId& id) const { return static_cast<size_t>(id.hi ^ (id.lo * 0x9e3779b97f4a7c15ULL)); }
};

// What a member says about itself. Immutable once published: any change is
// published again under a higher incarnation.
struct MemberInfo {
  NodeId id;
  std::string name;
  std::string vantage;   // dmz, wifi, internet, ...
  std::string address;   // where its gossip (UDP) and sync (TCP) sockets listen, "ip:port"
  uint32_t priority = 0; // lower wins the coordinator role
  // The coordinator epoch this member announced the last time it took the
  // coordinator role (0 if never). See Membership::epoch().
  uint64_t epoch = 0;
  // Its scan policy (mesh/membership/scan_policy.h): the addresses it will
  // ever probe; empty, it takes no distributed work. Encoded at most
  // kMaxPolicyBytes.
  IntervalSet allow{};
};
using MemberInfoPtr = std::shared_ptr<const MemberInfo>;

// Gossip about one member.
struct Update {
  enum class Kind : uint8_t { kAlive, kSuspect, kDead, kLeft };
  Kind kind = Kind::kAlive;
  MemberInfoPtr info;     // never null in a valid update
  uint64_t incarnation = 0;
  NodeId from;            // who accuses (suspect/dead), for Lifeguard's confirmations
};

// One datagram.
struct Message {
  // kNack (Lifeguard): a helper of an indirect probe could not reach the
  // target either, which tells the prober its own links are fine.
  // kGossip: updates only (a gossip round, a refutation, a hint), no reply.
  enum class Type : uint8_t { kPing, kAck, kPingReq, kNack, kGossip };
  Type type = Type::kPing;
  NodeId sender;
  uint32_t seq = 0;
  NodeId target;               // ping: the intended receiver; ack: the member it proves alive;
                               // ping-req/nack: the member to reach
  std::string target_address;  // ping-req: where it is
  std::vector<Update> updates;
  // Opaque broadcasts of the layer above (e.g. scan-state deltas), each 1 to
  // kMaxPayloadBytes bytes, at most kMaxPayloadsPerDatagram: the membership
  // only carries them (Membership::Broadcast / TakePayloads), never reads them.
  std::vector<std::string> payloads;
};

// A full-state exchange over a stream (push-pull): each side sends every
// member it knows, the other merges it. Used on join, periodically, and by a
// node back from a partition or a restart.
struct PushPull {
  NodeId sender;
  bool join = false;
  std::vector<Update> state;
};

struct Outgoing {
  std::string address;
  Message message;
};

// The core asks its driver to open a stream to `address`, send `request`, and
// hand the reply to Membership::OnPushPullReply (or report the failure).
struct StreamRequest {
  std::string address;
  PushPull request;
};

// A member as one node sees it (SWIM); said in members lists and control
// answers, so it lives beside the ids.
enum class MemberState : uint8_t { kAlive, kSuspect, kDead, kLeft };
std::string_view MemberStateName(MemberState s);
inline bool IsGone(MemberState s) { return s == MemberState::kDead || s == MemberState::kLeft; }

}  // namespace ndo::mesh
