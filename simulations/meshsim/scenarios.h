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
  MembershipConfig membership;  // the daemon's defaults unless changed
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

double Percentile(std::vector<double> v, double p);

// Every scenario reports bytes per second per node (when counted) and, when
// sealed, what the seals did: seal_dropped (datagrams that reached an up
// node and were dropped by its seal, the sender check or the decoder: 0 in
// a correct run), split into seal_dropped_too_old, seal_dropped_replayed,
// seal_dropped_off_clock, seal_dropped_other, seal_sender_mismatch, seal_decode_errors; seal_opened,
// seal_errors and seal_windows (replay windows held at the end).

}  // namespace ndo::mesh::sim
