// SWIM membership with Lifeguard's refinements, as a sans-IO core: no socket,
// no clock, no randomness of its own. The driver (Asio in production, the
// simulator and tests otherwise) hands in each datagram with `now`, calls
// Tick(now) at NextWakeup(), and sends what TakeOutgoing() returns.
//
// What it does (SWIM, Das et al. 2002; Lifeguard, Dadgar et al. 2018):
// * each protocol period it pings one member (round-robin over a shuffled
//   list); without an ack in time it asks k others to ping it (ping-req);
//   without any ack by the end of the period the member becomes suspect;
// * a suspect that does not refute (by raising its incarnation) within the
//   suspicion timeout is declared dead; the timeout starts long and shrinks
//   as independent members confirm the suspicion (Lifeguard);
// * a node that misses acks itself raises its local health multiplier and
//   slows its probing and widens its timeouts (Lifeguard), so a node stalled
//   by CPU load does not accuse healthy ones;
// * updates ride piggybacked on pings and acks, each retransmitted about
//   retransmit_mult * log10(N+1) times;
// * a node that hears it is considered dead refutes; a node pinged by one it
//   considers dead tells it so, which is how a healed partition merges; dead
//   members are pinged now and then for the same reason;
// * dead members are reaped after `reap_after`; a reaped member comes back
//   only by speaking itself, never through third-party (possibly stale) gossip.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mesh/messages.h"

namespace ndo::mesh {

using Clock = std::chrono::steady_clock;
using Time = Clock::time_point;
using Duration = Clock::duration;

enum class MemberState : uint8_t { kAlive, kSuspect, kDead, kLeft };
std::string_view MemberStateName(MemberState s);

struct Member {
  MemberInfo info;
  MemberState state = MemberState::kAlive;
  uint64_t incarnation = 0;
  Time state_since{};
  Time alive_since{};  // start of the current uninterrupted alive (or suspect) stretch
};

struct MembershipConfig {
  Duration probe_interval = std::chrono::milliseconds(1000);
  Duration probe_timeout = std::chrono::milliseconds(500);
  int indirect_checks = 3;           // k of ping-req
  double suspicion_mult = 4;         // min suspicion = mult * log10(N+1) * interval
  double suspicion_max_mult = 6;     // max suspicion = max_mult * min
  int retransmit_mult = 4;
  int max_local_health = 8;          // Lifeguard's LHM ceiling
  size_t max_updates_per_message = 16;
  Duration reconnect_interval = std::chrono::seconds(10);  // ping a dead member
  Duration reap_after = std::chrono::minutes(10);
  Duration coordinator_stabilisation = std::chrono::seconds(3);
};

class Membership {
 public:
  Membership(MemberInfo self, MembershipConfig config, uint64_t seed, Time now, uint64_t incarnation = 0);

  // Starts (or restarts) contact through seed addresses.
  void Join(const std::vector<std::string>& seed_addresses, Time now);
  // A datagram from `from_address`.
  void OnMessage(const std::string& from_address, const Message& msg, Time now);
  // Timers: probe schedule, ack deadlines, suspicion expiry, reaping.
  void Tick(Time now);
  // Leaves gracefully: tells others, stops probing.
  void Leave(Time now);

  std::vector<Outgoing> TakeOutgoing();
  Time NextWakeup() const;

  const MemberInfo& self() const { return self_.info; }
  uint64_t incarnation() const { return self_.incarnation; }
  const std::map<NodeId, Member>& members() const { return members_; }  // without self
  size_t AliveCount() const;  // including self
  int local_health() const { return local_health_; }

  // The coordinator: the alive member (self included) with the lowest
  // (priority, id) that has been alive for the stabilisation period; the epoch
  // rises whenever the choice changes.
  std::optional<NodeId> Coordinator() const { return coordinator_; }
  uint64_t epoch() const { return epoch_; }

 private:
  struct PendingProbe {
    NodeId target;
    uint32_t seq = 0;
    Time ack_deadline{};
    Time period_end{};
    bool indirect_sent = false;
  };
  struct Forward {  // a ping we send on behalf of a ping-req
    std::string requester_address;
    uint32_t requester_seq = 0;
    NodeId target;
    Time expires{};
  };
  struct Suspicion {
    Time started{};
    std::vector<NodeId> confirmations;
  };
  struct Broadcast {
    Update update;
    int transmits = 0;
  };

  void Probe(Time now);
  void ExpireProbe(Time now);
  void Send(const std::string& address, Message msg);
  void Enqueue(Update u);
  void Apply(const Update& u, const NodeId& via, Time now);
  void ApplyAlive(const Update& u, const NodeId& via, Time now);
  void ApplySuspect(const Update& u, Time now);
  void ApplyDead(const Update& u, Time now);
  void Refute(uint64_t accused_incarnation);
  Duration SuspicionTimeout(size_t confirmations) const;
  Duration Scaled(Duration d) const { return d * (local_health_ + 1); }
  void AdjustHealth(int delta);
  void UpdateCoordinator(Time now);
  uint64_t NextRandom();
  std::vector<NodeId> RandomMembers(size_t k, const NodeId& exclude);

  MembershipConfig cfg_;
  uint64_t rng_;
  Member self_;
  std::map<NodeId, Member> members_;
  std::map<NodeId, Suspicion> suspicions_;
  std::map<NodeId, Time> reaped_;  // tombstones: only the node itself may bring it back
  std::vector<NodeId> probe_order_;
  size_t probe_index_ = 0;
  std::optional<PendingProbe> pending_;
  std::map<uint32_t, Forward> forwards_;
  std::vector<Broadcast> broadcasts_;
  std::vector<Outgoing> out_;
  uint32_t next_seq_ = 1;
  int local_health_ = 0;
  Time next_probe_{};
  Time next_reconnect_{};
  bool left_ = false;
  std::optional<NodeId> coordinator_;
  uint64_t epoch_ = 0;
};

}  // namespace ndo::mesh
