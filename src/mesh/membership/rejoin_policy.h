// When and through whom a node joins, sans-IO: the first join through the
// seeds and saved members, retried with backoff until the membership says
// it is joined, and the rejoin of a node left alone (every other member dead
// or reaped) for kRejoinWhenAloneAfter. Like the membership core it reads no
// clock and owns no socket: every input carries `now`, and what the node must
// do comes out as values.
//
//   inputs                                 outputs
//   Start(addresses, seeds, now)           Tick -> a JoinAttempt to hand to
//   Observe(joined, alive, now)              Membership::Join, if one is due
//   RejoinDue(now) / Rejoin(addresses,..)  TakeEvents: joined, rejoined,
//   Leave()                                  rejoining (for the logs)
//                                          NextWakeup: when to Tick again
//
// Why a rejoin is needed at all: after an isolation longer than reap_after
// the node has reaped everyone, and the core alone never calls on a reaped
// member again. The driver supplies the addresses (seeds first, then every
// member known or saved) when RejoinDue says so: they come from the core and
// the saved state, which the policy does not hold.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "mesh/membership/membership.h"

namespace ndo::mesh {

// A node alone this long while it knows addresses to try joins again.
inline constexpr Duration kRejoinWhenAloneAfter = std::chrono::seconds(10);
// Every seed, and at most this many known members per attempt (a different
// sample each time): a restarted node of a large mesh does not push-pull
// with thousands at once.
inline constexpr size_t kMaxRejoinContacts = 8;

struct RejoinConfig {
  Duration retry_first = std::chrono::seconds(1);
  Duration retry_max = std::chrono::seconds(30);
  Duration alone_after = kRejoinWhenAloneAfter;
  Duration reap_after = std::chrono::seconds(60);  // the membership's
};

struct JoinAttempt {
  std::vector<std::string> addresses;  // for Membership::Join
  int attempt = 1;                     // 1 for the first of a join or rejoin
  bool rejoin = false;                 // after being alone, not the first join
  size_t known = 0;                    // addresses the sample was drawn from
};

struct RejoinEvent {
  enum class Kind : uint8_t { kJoined, kRejoined, kRejoining };
  Kind kind = Kind::kJoined;
  int attempts = 0;        // kJoined, kRejoined
  size_t alive = 0;        // kJoined, kRejoined: alive members, self included
  size_t addresses = 0;    // kRejoining
};

class RejoinPolicy {
 public:
  RejoinPolicy(RejoinConfig config, uint64_t seed);

  // At start: where to join (seeds first, `seed_count` of them, then saved
  // members). None: a node that founds the mesh, nothing to do.
  void Start(std::vector<std::string> addresses, size_t seed_count, Time now);

  // After every input to the membership: whether it counts itself joined and
  // how many members are alive (self included). A join is done when the core
  // says joined; a rejoin only when someone else is alive again. Returns true
  // when a join or rejoin has just completed (the driver syncs the security
  // state at once then).
  bool Observe(bool joined, size_t alive_count, Time now);

  // Alone for alone_after and not joining already: the driver should call
  // Rejoin with fresh addresses.
  bool RejoinDue(Time now) const;
  // Starts a rejoin through `addresses`; with none, looks again after
  // alone_after. Returns whether a rejoin started.
  bool Rejoin(std::vector<std::string> addresses, size_t seed_count, Time now);

  // A join attempt, when one is due (then the next after the backoff).
  std::optional<JoinAttempt> Tick(Time now);

  // The node is leaving: no more joining.
  void Leave();

  // Saved members the core does not know are kept, except once this node
  // has been part of a live mesh for reap_after: anything the others still
  // knew would have reached it by then, so the rest was reaped by all.
  bool KeepAbsentMembers(Time now) const;

  Time NextWakeup() const;
  std::vector<RejoinEvent> TakeEvents();

  bool pending() const { return pending_; }
  bool rejoining() const { return rejoining_; }

 private:
  std::vector<std::string> Sample();

  RejoinConfig config_;
  std::mt19937_64 rng_;
  std::vector<std::string> addresses_;  // seeds first, then known members
  size_t seed_count_ = 0;
  bool pending_ = false;
  bool rejoining_ = false;
  bool leaving_ = false;
  Time next_join_{};
  Duration backoff_{};
  int attempts_ = 0;
  std::optional<Time> alone_since_;     // no other member alive since
  std::optional<Time> together_since_;  // joined, with others alive, since
  std::vector<RejoinEvent> events_;
};

}  // namespace ndo::mesh
