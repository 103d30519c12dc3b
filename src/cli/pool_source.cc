#include "cli/pool_source.h"

#include "cli/output/result_writer.h"
#include "mesh/api/scans.h"

#include <algorithm>
#include <utility>

namespace ndo {

Result<size_t> FindVantage(const mesh::ScanState& scan, std::string_view vantage) {
  if (auto i = mesh::VantageIndex(scan, vantage)) return *i;
  std::string known;
  for (const auto& v : scan.definition.vantages) known += (known.empty() ? "" : ", ") + v;
  return Status::NotFound("scan " + ScanIdToHex(scan.id) + " has no vantage '" + std::string(vantage) +
                          "' (its vantages: " + known + ")");
}

Result<ScanRecord> PoolRecord(Store& store, const mesh::ScanState& scan, size_t vantage) {
  ScanId pool = mesh::PoolId(scan.id, scan.definition.vantages.at(vantage));
  auto rec = store.FindScan(ScanIdToHex(pool));
  if (rec.ok() || rec.status().code() != Status::Code::kNotFound) return rec;
  ScanRecord made;
  made.id = pool;
  made.spec = scan.definition.spec;
  made.created_us = scan.definition.created_ms * 1000;
  return made;
}

Status ForEachPoolResult(Store& store, const ScanId& pool,
                         const std::function<bool(const ProbeResult&, const ServiceEvidence*)>& visit) {
  Status lookup;
  Status s = store.ForEachResult(pool, [&](const ProbeResult& r) {
    if (r.state != PortState::kOpen) return visit(r, nullptr);
    // Only open ports have evidence; a point lookup each keeps memory flat.
    auto ev = store.GetEvidence(pool, r.address, r.port);
    if (!ev.ok() && ev.status().code() != Status::Code::kNotFound) {
      lookup = ev.status();
      return false;
    }
    return visit(r, ev.ok() ? &*ev : nullptr);
  });
  return s.ok() ? lookup : s;
}

Result<std::vector<PoolResult>> LoadPool(Store& store, const ScanId& pool,
                                         const std::function<bool(const ProbeResult&)>& keep) {
  std::vector<PoolResult> out;
  Status lookup;
  Status s = store.ForEachResult(pool, [&](const ProbeResult& r) {
    if (!keep(r)) return true;
    PoolResult pr{r, std::nullopt};
    if (r.state == PortState::kOpen) {
      auto ev = store.GetEvidence(pool, r.address, r.port);
      if (!ev.ok() && ev.status().code() != Status::Code::kNotFound) {
        lookup = ev.status();
        return false;
      }
      if (ev.ok()) {
        ev->tls.reset();
        pr.evidence = std::move(*ev);
      }
    }
    out.push_back(std::move(pr));
    return true;
  });
  if (!s.ok()) return s;
  if (!lookup.ok()) return lookup;
  return out;
}

std::vector<mesh::PoolPolicy> ScanPolicies(Store& store, const mesh::ScanState& scan) {
  auto policies = mesh::PoolPolicies(store, scan);
  if (!policies.ok()) return std::vector<mesh::PoolPolicy>(scan.pools.size());
  return std::move(*policies);
}

bool ScanComplete(const mesh::ScanState& scan, const std::vector<mesh::PoolPolicy>& policies) {
  for (size_t v = 0; v < scan.pools.size(); ++v) {
    const std::vector<uint32_t>* refused = v < policies.size() ? &policies[v].refused.shards : nullptr;
    for (uint32_t k = 0; k < scan.pools[v].size(); ++k)
      if (!scan.pools[v][k].done.done && !(refused && std::binary_search(refused->begin(), refused->end(), k)))
        return false;
  }
  return true;
}

JsonObject& AddPolicyJson(JsonObject& pool, const mesh::PoolPolicy& policy) {
  std::vector<std::string> ranges;
  for (const auto& r : policy.refused.targets.ranges()) {
    IntervalSet one;
    one.Add(r);
    ranges.push_back(mesh::FormatAddressSet(one));
  }
  return pool.Raw("refused_probes", U128ToString(policy.refused.probes))
      .Raw("refused_ranges", JsonStringArray(ranges))
      .Raw("nodes_without_policy", JsonStringArray(policy.without_policy));
}

std::string RefusalNote(const std::string& vantage, const mesh::PoolPolicy& policy) {
  if (policy.refused.probes == 0) return "";
  return "pool " + vantage + ": " + U128ToString(policy.refused.probes) + " probes refused by policy (" +
         mesh::FormatAddressSet(policy.refused.targets, 8) +
         "): no node of the vantage may scan them, so they were not probed (not closed, not filtered)";
}

JsonObject MeshScanJson(const mesh::ScanState& scan, const std::vector<mesh::PoolPolicy>& policies) {
  bool complete = ScanComplete(scan, policies);
  JsonObject o;
  o.Str("record", "scan")
      .Str("id", ScanIdToHex(scan.id))
      .Str("created", FormatTimestamp(scan.definition.created_ms * 1000))
      .Str("control", mesh::ScanControlName(scan.control.value))
      .Bool("complete", complete)
      .Raw("probes_per_pool", U128ToString(scan.definition.spec.ProbeCount()))
      .UInt("shards_per_pool", scan.definition.spec.shard_count);
  return o;
}

JsonObject PoolCountsJson(const std::string& vantage, const mesh::PoolCounts& counts) {
  JsonObject o;
  o.Str("vantage", vantage)
      .UInt("done", counts.done)
      .UInt("leased", counts.leased)
      .UInt("pending", counts.pending)
      .UInt("refused", counts.refused)
      .UInt("results", counts.results);
  return o;
}

}  // namespace ndo
