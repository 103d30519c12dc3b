// N membership cores in one process on a simulated clock and network: the
// very code the daemon runs, driven by a discrete-event loop instead of Asio.
// Latency (log-normal), loss, partitions, crashes, restarts and stalls (a node
// that processes nothing for a while, as under CPU load: the kernel queues
// its mail and it handles the backlog when it wakes) are all seeded, so the
// same seed gives the same trace.
//
// With SimConfig::seal, every datagram takes the daemon's path (mesh_node.cc
// Send/OnDatagram): EncodeMessage, the sender's AeadSeal::Seal, the simulated
// network, the receiver's own AeadSeal::Open (replay window per sender), the
// check that the sealed sender is the message's sender, DecodeMessage, the
// core. The seals' random epochs (gossip_seal.h) change the bytes, never the
// behaviour: the seal draws nothing from the simulation's seeded generator, so a sealed run
// follows the same trace as an unsealed one with the same seed, as long as
// the seals drop nothing (see SealStats).
//
// Next to each core run the services mesh_node.cc runs next to it, the
// production objects, called at the same points (sim_services.cc):
// RejoinPolicy (every join goes through it; Observe after every input; a
// rejoin when it is due, with the addresses known_members.h computes from
// the core and the saved members) and, when sealed, SecuritySync (its
// requests carried as streams, its changes put in force in the node's seal
// and revocation set, which every datagram and stream handshake consults).
// Their traffic draws its latencies from a generator of its own, and their
// timer is not the core's (see Reschedule): while they are quiet (no join
// retried, no rejoin, no rotation, no revocation) the membership's trace is
// the one without them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "mesh/membership/known_members.h"
#include "mesh/membership/membership.h"
#include "mesh/membership/rejoin_policy.h"
#include "mesh/security/gossip_seal.h"
#include "mesh/security/security_sync.h"
#include "mesh/security/tls_context.h"

namespace ndo::mesh::sim {

struct SimConfig {
  int nodes = 10;
  uint64_t seed = 1;
  double loss = 0;  // per datagram, each direction
  Duration latency_median = std::chrono::milliseconds(5);
  double latency_sigma = 0.5;  // of the log-normal
  Duration stream_timeout = std::chrono::seconds(5);
  MembershipConfig membership;
  // Encode every datagram with the real codec to count bytes (slower).
  bool count_bytes = true;
  // Names and vantages of the longest allowed length (fuller datagrams).
  bool long_names = false;
  // Seal every datagram as the daemon does (see the top of this file); bytes
  // are then always counted (count_bytes is forced on), seal included.
  // Memory: each node keeps a replay window per sender it heard (about 200
  // bytes with the map's overhead), up to N^2 of them: 0.2-0.4 GB more at
  // N=1000 (measured), 20 GB or more at N=10,000.
  bool seal = false;
  // As the daemon does (mesh_node.cc), tie each seal's counters to its
  // node's wall clock (AeadSeal::SetClock: a counter is max(last + 1, now
  // in milliseconds), and Open refuses one kMaxCounterSkewMicros away from
  // its own clock). Off: counters rise by one per datagram from the first.
  bool seal_clock = true;
  // The node services mesh_node.cc drives beside the core: RejoinPolicy on
  // every node, and SecuritySync on every node of a sealed run (its state
  // starts from the one keyring). Off: the core alone (and one keyring
  // forever), to measure what they add.
  bool rejoin = true;
  bool security_sync = true;  // with seal only
};

// What the seals did to the datagrams that reached an up receiver (zero
// unless SimConfig::seal). Any drop here is a finding: the simulated network
// neither duplicates nor forges, so the only way to lose a datagram to the
// seal is the replay window (a sender's counter more than kReplayWindow
// ahead of a late datagram of its own) or a bug. With seal_clock, counters
// advance with the clock's milliseconds, so the window spans about 1 s of
// the sender's time: a datagram overtaken by one sent more than that after
// it would be dropped as too old.
struct SealStats {
  uint64_t sealed = 0, opened = 0;
  // Open failed: too old for the window, a repeat, too far from the
  // receiver's clock, anything else.
  uint64_t too_old = 0, replayed = 0, off_clock = 0, refused = 0;
  uint64_t sender_mismatch = 0;                     // sealed by one member, in the name of another
  uint64_t decode_errors = 0, seal_errors = 0;
  uint64_t windows = 0;  // replay windows the receivers hold now, (receiver, sender) pairs
  uint64_t dropped() const { return too_old + replayed + off_clock + refused + sender_mismatch + decode_errors; }
  // Opened, but from a sender the receiver has revoked (mesh_node.cc
  // OnDatagram): meant, so not in dropped().
  uint64_t revoked = 0;
};

// What the node services did (SimConfig::rejoin, security_sync).
struct ServiceStats {
  uint64_t join_attempts = 0;    // JoinAttempts handed to Membership::Join
  uint64_t rejoins = 0;          // rejoins started (a node alone)
  uint64_t rejoined = 0;         // rejoins completed
  uint64_t security_requests = 0;  // states sent (SecuritySync::TakeRequests)
  uint64_t security_replies = 0;   // replies merged by their requester
  // Not answered: the peer unreachable or down, or the handshake refused
  // (one side has revoked the other; also counted in security_refused).
  uint64_t security_failed = 0, security_refused = 0;
  uint64_t push_pulls_refused = 0;  // membership streams refused at the handshake (revoked)
  uint64_t keyrings_installed = 0;  // AeadSeal::SetKeyring after a change
  // A Status from the service or the seal: a body that does not decode, no
  // usable key, a keyring the seal refuses (0 in a correct run).
  uint64_t security_errors = 0;
};

// What happened, for measurements and invariants.
struct Observation {
  int observer;      // the node that changed its view
  MemberEvent event;
};

class SimMesh {
 public:
  explicit SimMesh(SimConfig cfg);
  SimMesh(const SimMesh&) = delete;  // the seals' clocks point here
  SimMesh& operator=(const SimMesh&) = delete;

  int size() const { return static_cast<int>(nodes_.size()); }
  Membership& node(int i) { return *nodes_[i]; }
  Time now() const { return now_; }
  static std::string Address(int i) { return "n" + std::to_string(i); }
  // The node index of an id, or -1.
  int IndexOf(const NodeId& id) const;

  // Every node joins through `seed_node` (a push-pull and a ping each).
  void JoinAllThrough(int seed_node);
  // Node i joins through `seeds` (`ndo join --seed`): its RejoinPolicy
  // starts with them (and the members it saved), and the policy's first
  // attempt goes out now; without the policy, Membership::Join(seeds).
  void Join(int i, const std::vector<int>& seeds);
  // Every node starts knowing every other, alive and stable, without traffic.
  void Bootstrap();
  // Adds a node (not yet joined); returns its index.
  int AddNode();

  // The node stops; what the daemon's store holds is kept: the members it
  // knew (as of the crash, where the daemon's last save may be up to 2 s
  // older), the security state and the keyring file.
  void Crash(int i);
  // A crashed node comes back with its identity and a higher incarnation
  // (what the daemon persists), new services loaded from what it saved,
  // and rejoins through `seed_node` (and its saved members).
  void Restart(int i, int seed_node);
  bool IsUp(int i) const { return up_[i]; }
  void Partition(std::vector<int> side);  // side vs the rest
  void Heal();
  void Stall(int i, Time until);
  bool IsStalled(int i) const { return now_ < stalled_until_[i]; }
  void SetLoss(double loss) { cfg_.loss = loss; }

  // Observes every view change (and the coordinator events).
  void OnObservation(std::function<void(const Observation&)> f) { observer_ = std::move(f); }
  // Receives the gossip payloads each node's core took in (Membership::
  // TakePayloads), after every input, as the daemon hands them to its work
  // service; without a receiver they are dropped, as by a daemon without one.
  void OnPayloads(std::function<void(int node, std::vector<std::string> payloads)> f) { payloads_ = std::move(f); }
  // The layer on top queued a broadcast on node i's core: its gossip timer
  // may now be due sooner (the daemon re-arms its timer after every input).
  void Wake(int i) {
    if (up_[i]) Reschedule(i);
  }

  // Runs events until `until`; `step` runs after each instant.
  void RunUntil(Time until, const std::function<void()>& step = {});

  // Every up node other than `target` sees it in state `s`.
  bool AllSee(int target, MemberState s) const;
  // How many up nodes (other than target) see it in state s.
  int CountSeeing(int target, MemberState s) const;

  struct Traffic {
    uint64_t datagrams = 0, datagram_bytes = 0, stream_bytes = 0, dropped = 0;
    uint64_t largest_datagram = 0, encode_errors = 0;  // when counting bytes
    // SecuritySync's states, sent and replied (bodies, without TLS): apart
    // from stream_bytes, which are the membership's push-pulls.
    uint64_t security_bytes = 0;
  };
  const std::vector<Traffic>& traffic() const { return traffic_; }
  uint64_t events_processed() const { return processed_; }
  const SimConfig& config() const { return cfg_; }
  const SealStats& seal_stats() const { return seal_stats_; }
  const ServiceStats& service_stats() const { return service_stats_; }

  // The node services (sim_services.cc). Null when not run.
  const RejoinPolicy* rejoin(int i) const { return services_[i].rejoin ? &*services_[i].rejoin : nullptr; }
  const SecuritySync* security(int i) const { return services_[i].security ? &*services_[i].security : nullptr; }
  const AeadSeal* seal(int i) const { return cfg_.seal ? seals_[i].get() : nullptr; }
  // Whether node i refuses node j's streams and datagrams (j revoked in
  // the set i's security state put in force).
  bool Refuses(int i, int j) const { return services_[i].revoked.IsRevoked(nodes_[j]->self().id); }
  // Node i's wall clock in Unix seconds, as the daemon reads it for its
  // services (std::time).
  int64_t UnixNow(int i) const { return static_cast<int64_t>(WallMicros(i) / 1'000'000); }
  // `ndo keys rotate` at node i. Unavailable unless SecuritySync runs.
  Result<RotationDone> RotateKeys(int i);
  // `ndo members remove` of node `victim` at node `at` (no certificate
  // serial: the sim has no certificates, so the node id alone is revoked).
  Result<RevocationDone> RemoveMember(int at, int victim);
  // Every RejoinEvent of every node, as the daemon logs them.
  void OnRejoinEvent(std::function<void(int node, const RejoinEvent&)> f) { rejoin_events_ = std::move(f); }

  // For layers on top of the mesh (sim_work.h): a one-way latency of this
  // network's distribution drawn from the caller's own generator (so the
  // membership's trace does not depend on the layer's draws), and whether a
  // and b can reach each other now (both up, same side of any partition).
  Duration DrawLatency(uint64_t& rng) const;
  bool CanReach(int a, int b) const { return Reachable(a, b); }

 private:
  enum class Kind : uint8_t {
    kDatagram = 0,
    kStreamRequest = 1,
    kStreamReply = 2,
    kStreamFailed = 3,
    kSecurityRequest = 4,  // SecuritySync's state, at the peer
    kSecurityReply = 5,    // the peer's, back at the requester
    kTick = 6,         // the core's
    kServiceTick = 7,  // the services' (after the core's at the same instant)
  };
  struct Event {
    Time at;
    Kind kind;
    uint64_t seq;
    int from, to;
    size_t slot;  // payload index, or unused
    bool operator>(const Event& o) const {
      if (at != o.at) return at > o.at;
      if (kind != o.kind) return kind > o.kind;  // mail before timers at the same instant
      return seq > o.seq;
    }
  };
  struct Payload {
    Message message;
    PushPull state;
    std::string address;  // stream: the address the requester dialled
    std::string wire;     // sealed datagram (SimConfig::seal), or a security state
  };
  // What mesh_node.cc keeps beside the core, and what its store holds.
  struct Services {
    std::vector<std::string> seeds;
    std::vector<KnownMember> saved;  // the members the store holds
    std::optional<RejoinPolicy> rejoin;
    std::optional<SecuritySync> security;
    Keyring keyring;                            // the keyring file
    std::optional<std::string> saved_security;  // the store's security state
    RevocationSet revoked;                      // as put in force
    uint64_t starts = 0;                        // processes so far (for their seeds)
  };

  double Uniform();
  Duration Latency();
  bool Reachable(int a, int b) const;
  size_t Store(Payload p);
  Payload Take(size_t slot);
  void Push(Time at, Kind kind, int from, int to, size_t slot);
  void Flush(int i);
  void Reschedule(int i);
  void Handle(const Event& e);
  int ParseAddress(const std::string& a) const;
  // Node i's wall clock in Unix microseconds: the simulated clock plus a
  // fixed per-node skew (below a second) drawn from the seed.
  uint64_t WallMicros(int i) const;
  // The node's datagram seal, new (as after a start), made as the daemon
  // makes it: its first counter at the node's wall clock and, with
  // seal_clock, that clock tied to it (AeadSeal::SetClock).
  std::unique_ptr<AeadSeal> NewSeal(int i);
  void SendSealed(int i, Outgoing& o, int to);
  void DeliverSealed(const Event& e, Payload& p);
  // The streams' mutual authentication: refused if either side has revoked
  // the other (AuthenticatePeer's revocation check, by node id).
  bool Refused(int a, int b) const;

  // The node services, driven as mesh_node.cc drives them (sim_services.cc).
  // New services for node i's process (a start or a restart): the policy,
  // and the security state loaded from the keyring file and the saved state.
  void StartServices(int i);
  // The policy's attempt due now, if any, into the core (OnTimer).
  void TakeJoinAttempt(int i);
  // After every input (AfterInput): RejoinPolicy::Observe, and a sync at
  // once when a join has just completed.
  void ObserveServices(int i);
  // At every timer, after the core's Tick (OnTimer).
  void TickServices(int i);
  Time ServicesWakeup(int i) const;
  void StartRejoin(int i);
  void SaveMembers(int i);
  void DrainSecurity(int i);
  void PutInForce(int i, const SecurityChange& change);
  void SendSecuritySync(int i, SecuritySyncRequest request);
  void OnSecurityRequest(const Event& e, Payload& p);
  void OnSecurityReply(const Event& e, Payload& p);
  std::vector<SecurityPeer> AlivePeers(int i) const;
  uint64_t ServiceSeed(int i, uint64_t salt) const;

  SimConfig cfg_;
  uint64_t rng_;
  Time now_{};
  std::vector<std::unique_ptr<Membership>> nodes_;
  std::unordered_map<NodeId, int, NodeIdHash> index_;
  std::vector<bool> up_;
  std::vector<int> side_;  // partition side per node (0 when healed)
  std::vector<Time> stalled_until_;
  std::vector<Time> scheduled_;  // earliest pending tick per node
  std::vector<Time> service_scheduled_;  // and of its services
  std::vector<Traffic> traffic_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  std::vector<Payload> slots_;
  std::vector<size_t> free_slots_;
  uint64_t seq_ = 0, processed_ = 0;
  std::function<void(const Observation&)> observer_;
  std::function<void(int, std::vector<std::string>)> payloads_;
  // SimConfig::seal: one keyring for all, a seal per node, and which
  // senders each receiver holds a replay window for.
  Keyring keyring_;
  std::vector<std::unique_ptr<AeadSeal>> seals_;
  std::vector<std::vector<bool>> heard_;
  SealStats seal_stats_;
  // The node services: per node, their stats, and the generator of their
  // traffic's latencies (not rng_: the membership's draws stay its own).
  std::vector<Services> services_;
  ServiceStats service_stats_;
  uint64_t service_rng_;
  GossipKeyMaker make_key_;
  std::function<void(int, const RejoinEvent&)> rejoin_events_;
};

}  // namespace ndo::mesh::sim
