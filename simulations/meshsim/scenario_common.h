// What meshsim's scenario files share (defined in scenarios.cc): the
// simulation's settings from the options, and the figures every scenario
// reports.
#pragma once

#include "scenarios.h"
#include "sim_mesh.h"

namespace ndo::mesh::sim::detail {

double Seconds(Duration d);
Duration FromSeconds(double s);
SimConfig ConfigOf(const ScenarioOptions& o);
// How many of `n` observers make 99.99% (all of them below 10,000).
int Quorum(int n);
int UpCount(const SimMesh& mesh);
// Bytes per second per node and, when sealed, what the seals did.
void AddTraffic(Figures& f, const SimMesh& mesh, Duration elapsed);
// Every up node counts every up node alive (itself included).
bool OneMembership(SimMesh& mesh);
// Every up node follows the same coordinator at the same epoch.
bool OneCoordinator(SimMesh& mesh);

}  // namespace ndo::mesh::sim::detail
