// Which vantages a distributed scan runs in when `ndo scan` names none.
//
// Every vantage of every member the mesh knows, whatever its state, and
// this node's own: a node that joined a moment ago, or one that is down for
// now, still belongs to its vantage, and a scan that silently dropped that
// vantage would look complete while one side of the comparison is missing
// (make demo once submitted "vantages dmz" because node b had not yet heard
// of the internet node). A pool with no live member simply waits.
#pragma once

#include <string>
#include <vector>

#include "mesh/api/control.h"

namespace ndo {

// Sorted, without duplicates or empty names.
std::vector<std::string> DefaultScanVantages(const mesh::ControlMember& self,
                                             const std::vector<mesh::ControlMember>& members);

}  // namespace ndo
