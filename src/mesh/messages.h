// The membership protocol's messages, as plain values. (The wire encoding,
// Cap'n Proto with bounded decoding, is a separate codec.)
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <vector>

namespace ndo::mesh {

// A random 128-bit node identity.
struct NodeId {
  uint64_t hi = 0, lo = 0;
  friend auto operator<=>(const NodeId&, const NodeId&) = default;
  bool empty() const { return hi == 0 && lo == 0; }
  std::string Hex() const;
};

struct MemberInfo {
  NodeId id;
  std::string name;
  std::string vantage;   // dmz, wifi, internet, ...
  std::string address;   // where its gossip socket listens, "ip:port"
  uint32_t priority = 0; // lower wins the coordinator role
};

// Gossip about one member, piggybacked on pings and acks.
struct Update {
  enum class Kind : uint8_t { kAlive, kSuspect, kDead, kLeft };
  Kind kind = Kind::kAlive;
  MemberInfo info;        // the member (full for kAlive; id at least otherwise)
  uint64_t incarnation = 0;
  NodeId from;            // who accuses (suspect/dead), for confirmations
};

struct Message {
  enum class Type : uint8_t { kPing, kAck, kPingReq };
  Type type = Type::kPing;
  NodeId sender;
  uint32_t seq = 0;
  NodeId target;               // ping: the intended receiver; ping-req: whom to ping
  std::string target_address;  // ping-req: where it is
  std::vector<Update> updates;
};

struct Outgoing {
  std::string address;
  Message message;
};

}  // namespace ndo::mesh
