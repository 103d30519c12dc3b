// N membership cores in one process on a simulated clock and network: the
// very code the daemon runs, driven by a discrete-event loop instead of Asio.
// Latency (log-normal), loss, partitions, crashes, restarts and stalls (a node
// that processes nothing for a while, as under CPU load: the kernel queues
// its mail and it handles the backlog when it wakes) are all seeded, so the
// same seed gives the same trace.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "mesh/membership.h"

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
};

// What happened, for measurements and invariants.
struct Observation {
  int observer;      // the node that changed its view
  MemberEvent event;
};

class SimMesh {
 public:
  explicit SimMesh(SimConfig cfg);

  int size() const { return static_cast<int>(nodes_.size()); }
  Membership& node(int i) { return *nodes_[i]; }
  Time now() const { return now_; }
  static std::string Address(int i) { return "n" + std::to_string(i); }
  // The node index of an id, or -1.
  int IndexOf(const NodeId& id) const;

  // Every node joins through `seed_node` (a push-pull and a ping each).
  void JoinAllThrough(int seed_node);
  // Every node starts knowing every other, alive and stable, without traffic.
  void Bootstrap();
  // Adds a node (not yet joined); returns its index.
  int AddNode();

  void Crash(int i);
  // A crashed node comes back with its identity and a higher incarnation
  // (what the daemon persists) and rejoins through `seed_node`.
  void Restart(int i, int seed_node);
  bool IsUp(int i) const { return up_[i]; }
  void Partition(std::vector<int> side);  // side vs the rest
  void Heal();
  void Stall(int i, Time until);
  bool IsStalled(int i) const { return now_ < stalled_until_[i]; }
  void SetLoss(double loss) { cfg_.loss = loss; }

  // Observes every view change (and the coordinator events).
  void OnObservation(std::function<void(const Observation&)> f) { observer_ = std::move(f); }

  // Runs events until `until`; `step` runs after each instant.
  void RunUntil(Time until, const std::function<void()>& step = {});

  // Every up node other than `target` sees it in state `s`.
  bool AllSee(int target, MemberState s) const;
  // How many up nodes (other than target) see it in state s.
  int CountSeeing(int target, MemberState s) const;

  struct Traffic {
    uint64_t datagrams = 0, datagram_bytes = 0, stream_bytes = 0, dropped = 0;
    uint64_t largest_datagram = 0, encode_errors = 0;  // when counting bytes
  };
  const std::vector<Traffic>& traffic() const { return traffic_; }
  uint64_t events_processed() const { return processed_; }

 private:
  enum class Kind : uint8_t { kDatagram = 0, kStreamRequest = 1, kStreamReply = 2, kStreamFailed = 3, kTick = 4 };
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

  SimConfig cfg_;
  uint64_t rng_;
  Time now_{};
  std::vector<std::unique_ptr<Membership>> nodes_;
  std::unordered_map<NodeId, int, NodeIdHash> index_;
  std::vector<bool> up_;
  std::vector<int> side_;  // partition side per node (0 when healed)
  std::vector<Time> stalled_until_;
  std::vector<Time> scheduled_;  // earliest pending tick per node
  std::vector<Traffic> traffic_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> queue_;
  std::vector<Payload> slots_;
  std::vector<size_t> free_slots_;
  uint64_t seq_ = 0, processed_ = 0;
  std::function<void(const Observation&)> observer_;
};

}  // namespace ndo::mesh::sim
