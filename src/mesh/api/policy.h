// Scan policies, as the CLI reads and gives them: parsing and showing
// `--allow` lists (mesh/membership/scan_policy.h), cutting a new scan's
// targets into regions by the members' policies and telling what they
// refuse (mesh/work/scan_regions.h), and the policy `ndo init --allow`
// leaves for the first node's first start.
#pragma once

#include <string>

#include "base/status.h"
#include "mesh/membership/scan_policy.h"
#include "mesh/work/scan_regions.h"
#include "store/store.h"

namespace ndo::mesh {

// `ndo init --allow`: kept in the new node's store for its first start
// (node_identity.h kInitPolicyKey). Unavailable when an agent holds the
// data dir.
Status SaveInitPolicy(const std::string& data_dir, const IntervalSet& policy);

// Per pool of `scan` (in the order of its vantages): what the scan policies
// of the vantage's members refuse, from the members this node's store
// knows (its saved node state: itself and every member it knew, whatever
// their state), and the names of those members with no policy at all.
struct PoolPolicy {
  PolicyRefusal refused;
  std::vector<std::string> without_policy;  // "name (id8)" of each
};
Result<std::vector<PoolPolicy>> PoolPolicies(Store& store, const ScanState& scan);

}  // namespace ndo::mesh
