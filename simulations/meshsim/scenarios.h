// meshsim's measured scenarios. Each runs SimMesh (the production membership
// core on a simulated network) and returns named figures; they are used by
// the meshsim binary (docs/mesh.md's figures) and, at smaller N, by ctest.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "sim_mesh.h"

namespace ndo::mesh::sim {

struct Figures {
  std::vector<std::pair<std::string, double>> values;
  // Time series for plots: (series, seconds since the event, fraction of nodes).
  std::vector<std::tuple<std::string, double, double>> curve;
  void Add(std::string name, double v) { values.emplace_back(std::move(name), v); }
  double Get(const std::string& name) const;
};

struct ScenarioOptions {
  int nodes = 1000;
  uint64_t seed = 1;
  double loss = 0.01;
  int repeats = 20;            // crashes, joins
  double duration_s = 3600;    // false-positive run
  double stall_fraction = 0.01;
  double stall_s = 2;
  bool count_bytes = true;
  bool seal = false;            // SimConfig::seal: datagrams sealed as by the daemon
  bool seal_clock = true;       // SimConfig::seal_clock
  bool rejoin = true;           // SimConfig::rejoin
  bool security_sync = true;    // SimConfig::security_sync
  MembershipConfig membership;  // the daemon's defaults unless changed
  // rejoin: how long the island is cut off (0: until both sides have
  // forgotten each other, and 10 s more), and how many nodes it has.
  double isolate_s = 0;
  int island = 1;
  // keys: the share of nodes cut off for 3 s as the first rotation is pushed.
  double cut_fraction = 0.01;
};

// Crash `repeats` nodes one after another (20 s apart) in a converged mesh:
// detection time per observer and until every node (99.99%) marks it dead,
// false positives, bytes per second per node.
Figures CrashDetection(const ScenarioOptions& o);
// `repeats` new nodes join a converged mesh one after another: time until
// 99.99% of the nodes know each one alive.
Figures JoinDissemination(const ScenarioOptions& o);
// Loss and stalling nodes for `duration_s`: no node may be declared dead.
Figures FalsePositives(const ScenarioOptions& o);
// A 50/50 partition held 60 s, then healed: time to one membership and one
// coordinator.
Figures PartitionHeal(const ScenarioOptions& o);
// Every node joins through one seed from nothing: time until all know all.
Figures ColdJoin(const ScenarioOptions& o);

// The node services (service_scenarios.cc).
//
// `island` nodes cut off from the rest for `isolate_s` (0: until both
// sides have reaped each other), then healed, run with the daemon's
// RejoinPolicy and again without it: when the island was declared dead by
// all, counted itself alone, was forgotten by all and forgot all, and the
// time after the heal until all know it alive, it knows all alive, and one
// membership (NaN: not within 900 s); `repeats`
// isolations (seeds seed, seed + 1, ...), p50 and max. Traffic and service
// counters are those of the first isolation with the policy.
Figures IsolatedRejoin(const ScenarioOptions& o);
// Sealed, with SecuritySync on every node, three steps at node 0 (`ndo keys
// rotate`, `ndo members remove`): a rotation pushed while `cut_fraction` of
// the nodes are cut off for 3 s (when every node holds the new key, seals
// with it, has dropped the old one; what the seals dropped meanwhile); a
// second rotation while one node is isolated for 60 s, its old key removed
// everywhere before the heal (when it holds the new key and the membership
// is one again); the revocation of a node (when every other refuses it,
// declares it dead and seals with the key it never received).
Figures KeyRotation(const ScenarioOptions& o);

double Percentile(std::vector<double> v, double p);

// Every scenario reports bytes per second per node (when counted) and, when
// sealed, what the seals did: seal_dropped (datagrams that reached an up
// node and were dropped by its seal, the sender check or the decoder: 0 in
// a correct run), split into seal_dropped_too_old, seal_dropped_replayed,
// seal_dropped_off_clock, seal_dropped_other, seal_sender_mismatch, seal_decode_errors; seal_opened,
// seal_errors and seal_windows (replay windows held at the end).

}  // namespace ndo::mesh::sim
