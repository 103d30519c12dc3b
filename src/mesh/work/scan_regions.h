// Scans across nodes of different scan policies (mesh/membership/scan_policy.h).
//
// A shard used to be a slice of one random permutation of all the pool's
// probes, so that nearly every shard touched every target range: a node
// allowed part of the targets could take no whole shard. So at submission
// the targets are cut into regions (pool_state.h ScanRegion), the atoms of
// the targets under every known member's policy (addresses covered by the
// same set of policies go together), each with its share of the shards;
// shard k's probes are a slice of a permutation of its region's targets x
// ports alone. A node may then lease a shard exactly when its policy holds
// the shard's whole region, and a region that no member of a vantage may
// scan is "refused by policy" for that vantage's pool: never leased, and
// reported (a count and the ranges) instead of looking pending forever or,
// worse, closed.
//
// Pure functions over definitions; no I/O.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "mesh/work/pool_state.h"
#include "scan/interval_set.h"
#include "scan/scan_spec.h"

namespace ndo::mesh {

// Cuts `targets` by `policies` into regions, in ascending order of their
// first address, and splits `shard_count` shards among them in proportion
// to their probes (targets x `ports`), at least one each, never more than a
// region's probes; the shares add up to max(shard_count, regions). Empty
// when the policies do not cut the targets (one region: the definition
// then carries none, as before regions existed). InvalidArgument when they
// cut it into more than kMaxScanRegions regions or kMaxRegionRanges ranges.
Result<std::vector<ScanRegion>> PlanRegions(const IntervalSet& targets, size_t ports,
                                            const std::vector<IntervalSet>& policies, uint32_t shard_count);

// The number of regions of a definition (1 without regions).
size_t RegionCount(const ScanDefinition& def);
// A region's targets (all targets without regions).
const IntervalSet& RegionTargets(const ScanDefinition& def, size_t region);

struct RegionShard {
  size_t region = 0;
  uint32_t local = 0;  // the shard's index within its region
};
// The region of shard k < def.spec.shard_count.
RegionShard RegionOfShard(const ScanDefinition& def, uint32_t shard);
// The first shard of each region, and one past the last, in order.
std::vector<uint32_t> RegionStarts(const ScanDefinition& def);

// The spec a node scans shard `shard` with, and the shard's index in it:
// the definition's spec with the shard's region as targets and the
// region's share as shard count (the same seed, ports and options).
ScanSpec ShardSpec(const ScanDefinition& def, uint32_t shard, uint32_t* local_shard);

// Per region: whether `policy` holds all of it. nullopt stands for no
// restriction (nodes of tests and simulations that model no policies).
std::vector<bool> CoveredRegions(const ScanDefinition& def, const std::optional<IntervalSet>& policy);

// What the policies of a vantage's members refuse of its pool: the regions
// none of `policies` covers.
struct PolicyRefusal {
  std::vector<uint32_t> shards;  // sorted: the refused regions' shards
  IntervalSet targets;           // the refused regions' targets
  u128 probes = 0;               // targets x ports
};
PolicyRefusal RefusedByPolicy(const ScanDefinition& def, const std::vector<IntervalSet>& policies);

}  // namespace ndo::mesh
