// SWIM membership with Lifeguard's refinements, as a sans-IO core: no socket,
// no clock, no randomness of its own. The driver (Asio in production, the
// simulator and tests otherwise) hands in each datagram and stream reply with
// `now`, calls Tick(now) at NextWakeup(), and carries out what
// TakeOutgoing() and TakeStreamRequests() return.
//
// What it does (SWIM, Das et al. 2002; Lifeguard, Dadgar et al. 2018;
// memberlist's push-pull):
// * each protocol period it pings one member (round-robin over a shuffled
//   list); without an ack in time it asks k others to ping it (ping-req);
//   helpers that fail too say so (nack); without any ack by the end of the
//   period the member becomes suspect;
// * a suspect that does not refute (by raising its incarnation) within the
//   suspicion timeout is declared dead; the timeout starts long and shrinks
//   as independent members confirm the suspicion (Lifeguard); a ping to a
//   suspect carries the accusation, so it can refute at once;
// * a node that misses acks (and hears no nacks) raises its local health
//   multiplier and slows its probing and widens its timeouts (Lifeguard), so
//   a node stalled by CPU load does not accuse healthy ones;
// * updates ride on pings and acks and on a gossip round (`gossip_fanout`
//   members every `gossip_interval`), each retransmitted about
//   retransmit_mult * log10(N+1) times; a datagram never exceeds
//   kMaxDatagramBytes;
// * the layer above's small opaque payloads (Broadcast) ride the same way,
//   after the updates, and arrive through TakePayloads (memberlist's
//   Delegate.GetBroadcasts / NotifyMsg); the core neither reads nor relays them;
// * a periodic push-pull over a stream exchanges full state with a random
//   member (on join with the seed, and with a member that comes back from
//   the dead), so nothing depends on gossip alone;
// * a node that hears it is considered dead refutes; pings to dead members
//   now and then, and "you are dead to me" hints both ways, merge a healed
//   partition by themselves;
// * dead members are reaped after `reap_after`; a reaped member comes back
//   only in its own voice, never through third-party (possibly stale) gossip.
//
// The coordinator is derived, not voted: the alive member (self included)
// with the lowest (priority, id) that has been alive for a stabilisation
// period. Its epoch is a cluster-wide number the coordinator announces in its
// own record: on taking the role it picks one above every epoch it has seen,
// and it raises it again over any member it outranks that announced one as
// high (the other side of a healed partition). Higher epoch wins, so leases
// granted by a superseded coordinator lose.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "mesh/membership/messages.h"

namespace ndo::mesh {

using Clock = std::chrono::steady_clock;
using Time = Clock::time_point;
using Duration = Clock::duration;


struct Member {
  MemberInfoPtr info;
  uint64_t incarnation = 0;
  Time state_since{};
  Time alive_since{};  // start of the current uninterrupted alive (or suspect) stretch
  uint32_t live_index = 0;  // position in the sampling list while not gone (internal)
  MemberState state = MemberState::kAlive;
};

// What changed, for logs, persistence and measurements.
struct MemberEvent {
  enum class Kind : uint8_t { kState, kCoordinator };
  Kind kind = Kind::kState;
  NodeId id;            // the member, or the new coordinator (empty: none)
  MemberState state = MemberState::kAlive;
  uint64_t incarnation = 0;  // kState: the member's; kCoordinator: the epoch
  Time at{};
};

struct MembershipConfig {
  // Tuned with meshsim (docs/mesh.md): detection of a crash by all of 1000
  // nodes in under 5 s (p50), and no false death with 2 s stalls at 10% loss.
  Duration probe_interval = std::chrono::milliseconds(800);
  Duration probe_timeout = std::chrono::milliseconds(400);
  int indirect_checks = 3;            // k of ping-req
  int suspicion_confirmations = 2;    // Lifeguard's K: confirmations that bring the timeout to its minimum
  // On hearing a suspicion, a node probes the suspect next with probability
  // extra_suspect_probers / N: a few independent checks right away, so that
  // confirmations (or the refutation) come within a period or two.
  double extra_suspect_probers = 3;
  // Everyone depends on the coordinator: each period a node probes it
  // (instead of its round-robin target) with probability watchers / N, so
  // about this many probe it every period and its failure is noticed fast.
  double coordinator_watchers = 3;
  // Suspicion: min = max(suspicion_floor, mult * log10(N+1) * probe_interval),
  // max = max_mult * min; confirmations move it from max towards min.
  double suspicion_mult = 0.7;
  double suspicion_max_mult = 6;
  Duration suspicion_floor = std::chrono::milliseconds(2500);  // above a 2 s stall, with room to refute
  int retransmit_mult = 4;
  int max_local_health = 8;           // Lifeguard's LHM ceiling
  Duration gossip_interval = std::chrono::milliseconds(100);  // only while there is news
  int gossip_fanout = 3;
  Duration gossip_to_dead = std::chrono::seconds(30);  // dead members still get gossip this long
  Duration push_pull_interval = std::chrono::seconds(30);  // scaled up with N beyond 32 members
  Duration reconnect_interval = std::chrono::seconds(5);   // ping a random dead member
  Duration reap_after = std::chrono::minutes(10);
  Duration coordinator_stabilisation = std::chrono::seconds(3);
  size_t max_datagram_bytes = kMaxDatagramBytes;
};

class Membership {
 public:
  Membership(MemberInfo self, MembershipConfig config, uint64_t seed, Time now, uint64_t incarnation = 0);

  // Starts (or restarts) contact through seed addresses: a push-pull with
  // each (the driver reports its outcome) and a ping.
  void Join(const std::vector<std::string>& seed_addresses, Time now);
  // Starts from a known, converged membership without any traffic: for the
  // simulator's large meshes. Members are taken as alive and stable.
  void Bootstrap(const std::vector<std::pair<MemberInfoPtr, uint64_t>>& members, Time now);

  // A datagram from `from_address`.
  void OnMessage(const std::string& from_address, const Message& msg, Time now);
  // A push-pull request that arrived over a stream; returns the reply.
  PushPull OnPushPullRequest(const PushPull& request, Time now);
  // The reply to one of our stream requests.
  void OnPushPullReply(const std::string& address, const PushPull& reply, Time now);
  // A stream request that could not be carried out (connect refused, timeout).
  void OnPushPullFailed(const std::string& address, Time now);

  // Timers: probes, ack deadlines, suspicion expiry, gossip, push-pull, reaping.
  void Tick(Time now);
  // Leaves gracefully: tells others and stops probing. Until the driver stops
  // calling it, the core keeps gossiping the goodbye and answers pings and
  // push-pulls with it.
  void Leave(Time now);

  std::vector<Outgoing> TakeOutgoing();
  std::vector<StreamRequest> TakeStreamRequests();
  std::vector<MemberEvent> TakeEvents();
  Time NextWakeup() const;

  // Piggybacks an opaque payload of the layer above (1 to kMaxPayloadBytes
  // bytes; anything else is ignored) on pings, acks, ping-reqs, nacks and
  // gossip rounds, after the member updates and ordered as they are: fewest
  // transmissions first, newest first among equals, each sent at most
  // RetransmitLimit() times (as often as an update), then dropped. A payload
  // still queued under the same `key` is replaced, sent or not: a newer
  // delta of the same thing supersedes the old one. Best effort: a payload
  // may reach some members or none (alone, or pushed out of a full queue of
  // kMaxQueuedPayloads by newer ones, the most sent and oldest first).
  // Ignored after Leave(); payloads queued before it still go out with the
  // goodbye's gossip.
  void Broadcast(std::string key, std::string payload);
  // The payloads received since the last call, in arrival order. They are
  // taken from exactly the datagrams whose member updates the core applies:
  // from any sender (a stranger's too, as its first ping is how it joins)
  // except ourselves or an empty id, and none once we have left. Whoever may
  // send datagrams at all is the driver's seal's business. Beyond
  // kMaxPendingPayloads untaken ones, the oldest are dropped.
  // The same payload may arrive more than once (retransmissions), and the
  // core does not relay what it receives: a layer above that wants a payload
  // to spread through the whole mesh broadcasts it again when it is news to
  // it, as a memberlist delegate does from NotifyMsg.
  std::vector<std::string> TakePayloads();
  static constexpr size_t kMaxQueuedPayloads = 4096;
  static constexpr size_t kMaxPendingPayloads = 4096;

  const MemberInfo& self() const { return *self_.info; }
  uint64_t incarnation() const { return self_.incarnation; }
  bool has_left() const { return left_; }
  const std::unordered_map<NodeId, Member, NodeIdHash>& members() const { return members_; }  // without self
  const Member* Find(const NodeId& id) const;
  size_t AliveCount() const { return live_.size() + (left_ ? 0 : 1); }  // not dead or left, self included
  int local_health() const { return local_health_; }
  // Whether a join has been confirmed by a push-pull reply or any ack.
  bool joined() const { return joined_; }

  std::optional<NodeId> Coordinator() const { return coordinator_; }
  // The epoch of the coordinator this node follows (0 without one).
  uint64_t epoch() const;
  // The highest epoch this node has seen announced (persisted by the driver).
  uint64_t max_epoch_seen() const { return max_epoch_seen_; }
  void set_max_epoch_seen(uint64_t e) { max_epoch_seen_ = std::max(max_epoch_seen_, e); }

 private:
  struct PendingProbe {
    NodeId target;
    uint32_t seq = 0;
    Time ack_deadline{};
    Time period_end{};
    bool indirect_sent = false;
    int helpers = 0, nacks = 0;
  };
  struct Forward {  // a ping we send on behalf of a ping-req
    std::string requester_address;
    uint32_t requester_seq = 0;
    NodeId target;
    Time nack_at{}, expires{};
    bool nacked = false;
  };
  struct Suspicion {
    Time started{};
    NodeId accuser;                     // not counted as a confirmation
    std::vector<NodeId> confirmations;  // independent suspicions since (Lifeguard)
    int checks = 0;                     // last-chance direct pings sent (see CheckSuspect)
    bool confirmed_by_self = false;     // our own failed probe, broadcast as a confirmation
  };
  // The broadcast queue orders by (transmits, newest first), as memberlist's
  // TransmitLimitedQueue; `queued_` finds a member's entries to replace them.
  struct QueueKey {
    int transmits;
    uint64_t order;  // descending age: newer first
    NodeId id;
    auto operator<=>(const QueueKey&) const = default;
  };
  // The payload queue, ordered the same way (`order` is unique: the key
  // never decides); `payloads_by_key_` holds each payload and its place.
  struct PayloadQueueKey {
    int transmits;
    uint64_t order;
    std::string key;
    auto operator<=>(const PayloadQueueKey&) const = default;
  };
  struct QueuedPayload {
    std::string payload;
    PayloadQueueKey queued;
  };

  void Probe(Time now);
  void ExpireProbe(Time now);
  void ExpireForwards(Time now);
  Time CheckDue(const Suspicion& s) const;
  Time Deadline(const Suspicion& s) const;
  bool FirstHand(const Suspicion& s) const;
  void CheckSuspect(const Member& m, Suspicion& s);
  void Gossip(Time now);
  void StartPushPull(const std::string& address, bool join);
  void MergeState(const PushPull& remote, Time now);
  PushPull LocalState(bool join) const;
  // Sends msg to `to` at `address`, filled with queued updates (and the
  // accusation against `to`, if any), then queued payloads; a gossip message
  // with nothing to carry is not sent. Returns whether it was sent.
  bool Send(const std::string& address, Message msg, const NodeId& to);
  // Add queued updates, then payloads, to msg while its size bound (`size`
  // so far) stays within the datagram limit; return the new bound.
  size_t FillUpdates(Message& msg, size_t size);
  size_t FillPayloads(Message& msg, size_t size);
  bool HasQueued() const { return !queue_.empty() || !payload_queue_.empty(); }
  void Receive(const std::vector<std::string>& payloads);  // for TakePayloads, bounded
  void SendDirect(const NodeId& to, Update u, Time now);  // a hint or refutation, rate-limited
  void MaybeBumpEpoch(const MemberInfo& other);
  void Enqueue(Update u);
  void Dequeue(const NodeId& member);
  void MarkJoined(Time now);
  const Update& QueuedUpdate(const QueueKey& k) const;
  void Apply(const Update& u, const NodeId& via, Time now);
  void ApplyAlive(const Update& u, const NodeId& via, Time now);
  void ApplySuspect(const Update& u, Time now);
  void ApplyDead(const Update& u, Time now);
  void AnswerAccusation(const Update& u, Time now);
  void SetState(Member& m, MemberState s, Time now);
  void Refute(uint64_t accused_incarnation);
  void Republish();
  Update SelfUpdate() const;
  Update LeftUpdate() const;
  Update AccusationOf(const Member& m) const;
  Duration SuspicionTimeout(size_t confirmations) const;
  Duration Scaled(Duration d) const { return d * (local_health_ + 1); }
  Duration PushPullInterval() const;
  int RetransmitLimit() const;
  void AdjustHealth(int delta);
  void UpdateCoordinator(Time now);
  void Emit(MemberEvent e) { events_.push_back(std::move(e)); }
  uint64_t NextRandom();
  double NextUniform();
  std::vector<Member*> RandomLive(size_t k, const NodeId& exclude);
  void AddLive(Member& m);
  void RemoveLive(Member& m);
  bool Outranks(const MemberInfo& a, const MemberInfo& b) const {
    return std::pair(a.priority, a.id) < std::pair(b.priority, b.id);
  }

  MembershipConfig cfg_;
  uint64_t rng_;
  Member self_;
  std::unordered_map<NodeId, Member, NodeIdHash> members_;
  std::vector<Member*> live_;  // members not dead or left, for O(1) sampling (map nodes are stable)
  std::map<NodeId, Time> gone_;  // dead or left members, by id, for reaping without a full scan
  struct Tombstone {
    Time reaped{};
    uint64_t incarnation = 0;
  };
  std::map<NodeId, Tombstone> reaped_;  // only a newer incarnation brings a reaped member back
  std::map<NodeId, Suspicion> suspicions_;
  std::unordered_map<NodeId, Time, NodeIdHash> hinted_;  // last direct hint or refutation sent, per member
  std::vector<NodeId> probe_order_;
  size_t probe_index_ = 0;
  std::optional<NodeId> probe_next_;  // a suspect to check before the round-robin continues
  std::optional<PendingProbe> pending_;
  std::map<uint32_t, Forward> forwards_;
  std::set<QueueKey> queue_;
  // Per member: its queued updates. One, except independent suspicions of
  // the same member (Lifeguard's confirmations), which must not replace
  // each other: each counts at the receivers.
  std::unordered_map<NodeId, std::vector<std::pair<Update, QueueKey>>, NodeIdHash> queued_;
  uint64_t queue_order_ = 0;
  std::set<PayloadQueueKey> payload_queue_;
  std::map<std::string, QueuedPayload> payloads_by_key_;
  std::deque<std::string> received_payloads_;  // for TakePayloads
  std::vector<Outgoing> out_;
  std::vector<StreamRequest> streams_;
  std::vector<MemberEvent> events_;
  std::set<std::string> push_pulls_in_flight_;
  uint32_t next_seq_ = 1;
  int local_health_ = 0;
  Time next_probe_{}, next_gossip_{}, next_push_pull_{}, next_reconnect_{}, next_reap_{}, next_revive_sync_{};
  // The coordinator is recomputed (a scan of the live members) only when
  // something that can change it happened, or when a better-ranked member
  // becomes stable at `coordinator_recheck_`.
  bool coordinator_dirty_ = true;
  Time coordinator_recheck_ = Time::max();
  bool left_ = false;
  bool joined_ = false;
  bool join_attempted_ = false;
  std::vector<std::string> join_seeds_;  // retried while we know no one
  std::optional<NodeId> coordinator_;
  std::pair<std::optional<NodeId>, uint64_t> announced_{};  // last coordinator event emitted
  uint64_t max_epoch_seen_ = 0;
};

}  // namespace ndo::mesh
