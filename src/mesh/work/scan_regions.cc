#include "mesh/work/scan_regions.h"

#include <algorithm>

namespace ndo::mesh {
namespace {

IntervalSet Intersect(const IntervalSet& a, const IntervalSet& b) { return a.Minus(a.Minus(b)); }

}  // namespace

Result<std::vector<ScanRegion>> PlanRegions(const IntervalSet& targets, size_t ports,
                                            const std::vector<IntervalSet>& policies, uint32_t shard_count) {
  // Each policy splits every piece in two (inside it, outside it); empty
  // halves are dropped, so there are never more pieces than sets of
  // policies that actually meet, and equal policies (the common case: a
  // whole vantage allowed the same) cost nothing.
  std::vector<IntervalSet> pieces;
  if (!targets.empty()) pieces.push_back(targets);
  for (const IntervalSet& policy : policies) {
    std::vector<IntervalSet> next;
    for (const IntervalSet& piece : pieces) {
      IntervalSet in = Intersect(piece, policy);
      IntervalSet out = piece.Minus(policy);
      if (!in.empty()) next.push_back(std::move(in));
      if (!out.empty()) next.push_back(std::move(out));
      if (next.size() > kMaxScanRegions)
        return Status::InvalidArgument("the members' scan policies cut the targets into more than " +
                                       std::to_string(kMaxScanRegions) +
                                       " regions; give the nodes simpler --allow lists or scan fewer ranges at once");
    }
    pieces = std::move(next);
  }
  if (pieces.size() <= 1) return std::vector<ScanRegion>{};
  size_t ranges = 0;
  for (const auto& p : pieces) ranges += p.ranges().size();
  if (ranges > kMaxRegionRanges)
    return Status::InvalidArgument("the members' scan policies cut the targets into more than " +
                                   std::to_string(kMaxRegionRanges) + " ranges");
  std::sort(pieces.begin(), pieces.end(), [](const IntervalSet& a, const IntervalSet& b) {
    return a.ranges().front().first < b.ranges().front().first;
  });
  // Shares in proportion to the probes, at least 1 and at most the
  // region's probes; then the largest shares give back what the minimum of
  // 1 added, so the total stays shard_count where it can.
  u128 total = targets.size() * ports;
  std::vector<ScanRegion> regions;
  uint64_t sum = 0;
  for (auto& p : pieces) {
    u128 probes = p.size() * ports;
    u128 share = total ? probes * shard_count / total : 1;  // probes <= total < 2^62, shard_count < 2^32
    share = std::clamp<u128>(share, 1, std::min<u128>(probes, kMaxPoolShards));
    sum += static_cast<uint64_t>(share);
    regions.push_back({std::move(p), static_cast<uint32_t>(share)});
  }
  while (sum > std::max<uint64_t>(shard_count, regions.size())) {
    auto largest = std::max_element(regions.begin(), regions.end(),
                                    [](const ScanRegion& a, const ScanRegion& b) { return a.shards < b.shards; });
    if (largest->shards <= 1) break;
    --largest->shards;
    --sum;
  }
  return regions;
}

size_t RegionCount(const ScanDefinition& def) { return def.regions.empty() ? 1 : def.regions.size(); }

const IntervalSet& RegionTargets(const ScanDefinition& def, size_t region) {
  return def.regions.empty() ? def.spec.targets.addresses : def.regions[region].targets;
}

std::vector<uint32_t> RegionStarts(const ScanDefinition& def) {
  std::vector<uint32_t> starts{0};
  if (def.regions.empty()) {
    starts.push_back(def.spec.shard_count);
    return starts;
  }
  for (const auto& r : def.regions) starts.push_back(starts.back() + r.shards);
  return starts;
}

RegionShard RegionOfShard(const ScanDefinition& def, uint32_t shard) {
  uint32_t start = 0;
  for (size_t i = 0; i < def.regions.size(); ++i) {
    if (shard < start + def.regions[i].shards) return {i, shard - start};
    start += def.regions[i].shards;
  }
  return {0, shard};
}

ScanSpec ShardSpec(const ScanDefinition& def, uint32_t shard, uint32_t* local_shard) {
  ScanSpec spec = def.spec;
  RegionShard rs = RegionOfShard(def, shard);
  if (!def.regions.empty()) {
    spec.targets.addresses = def.regions[rs.region].targets;
    spec.shard_count = def.regions[rs.region].shards;
  }
  if (local_shard) *local_shard = rs.local;
  return spec;
}

std::vector<bool> CoveredRegions(const ScanDefinition& def, const std::optional<IntervalSet>& policy) {
  std::vector<bool> out(RegionCount(def), true);
  if (!policy) return out;
  for (size_t i = 0; i < out.size(); ++i) out[i] = RegionTargets(def, i).IsSubsetOf(*policy);
  return out;
}

PolicyRefusal RefusedByPolicy(const ScanDefinition& def, const std::vector<IntervalSet>& policies) {
  PolicyRefusal out;
  std::vector<uint32_t> starts = RegionStarts(def);
  for (size_t i = 0; i + 1 < starts.size(); ++i) {
    const IntervalSet& region = RegionTargets(def, i);
    bool covered = std::any_of(policies.begin(), policies.end(),
                               [&](const IntervalSet& p) { return region.IsSubsetOf(p); });
    if (covered) continue;
    for (uint32_t k = starts[i]; k < starts[i + 1]; ++k) out.shards.push_back(k);
    out.targets.Add(region);
  }
  out.probes = out.targets.size() * def.spec.ports.size();
  return out;
}

}  // namespace ndo::mesh
