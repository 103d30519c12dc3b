#include "scan/scan_spec.h"

#include <algorithm>

namespace ndo {

Status ValidateSpec(const ScanSpec& spec) {
  if (spec.targets.addresses.empty()) return Status::InvalidArgument("no targets left to scan (after exclusions)");
  if (spec.ports.empty()) return Status::InvalidArgument("no ports to scan");
  if (spec.ProbeCount() > kMaxIndexSpace) return Status::InvalidArgument("scan too large: more than 2^62 probes");
  if (spec.shard_count == 0) return Status::InvalidArgument("shard count must be at least 1");
  if (spec.probe.max_retries > kMaxRetries)
    return Status::InvalidArgument("--max-retries above " + std::to_string(kMaxRetries));
  if (spec.has_scope && !spec.targets.addresses.IsSubsetOf(spec.scope)) {
    IntervalSet outside = spec.targets.addresses.Minus(spec.scope);
    const AddressRange& r = outside.ranges().front();
    std::string what = IpAddress(r.first).ToString();
    if (r.last != r.first) what += "-" + IpAddress(r.last).ToString();
    return Status::OutOfScope("targets reach outside --scope: " + what + " (" + U128ToString(outside.size()) +
                              " addresses in all); nothing was sent");
  }
  return Status::Ok();
}

uint32_t DefaultShardCount(u128 probes) {
  constexpr u128 kProbesPerShard = 8192;
  constexpr u128 kMaxShards = 65536;
  u128 shards = (probes + kProbesPerShard - 1) / kProbesPerShard;
  return static_cast<uint32_t>(std::clamp<u128>(shards, 1, kMaxShards));
}

Result<ScanPlan> ScanPlan::Create(const ScanSpec& spec) {
  Status s = ValidateSpec(spec);
  if (!s.ok()) return s;
  auto perm = Permutation::Create(static_cast<uint64_t>(spec.ProbeCount()), spec.seed);
  if (!perm.ok()) return perm.status();
  ScanPlan plan;
  plan.spec_ = &spec;
  plan.perm_ = *perm;
  plan.hosts_ = static_cast<uint64_t>(spec.targets.addresses.size());
  return plan;
}

ProbeTarget ScanPlan::TargetAt(uint64_t index) const {
  return {spec_->targets.addresses.At(index % hosts_), spec_->ports[index / hosts_]};
}

}  // namespace ndo
