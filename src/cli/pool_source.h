// A distributed scan as this node's store holds it: the replicated state
// under metadata "pool.<scan id>" (EncodeScanState bytes) and one pool per
// vantage point, each kept as a scan of its own under PoolId(scan, vantage),
// so that its results and evidence read like any local scan's.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cli/output/json.h"
#include "cli/pool_views.h"
#include "mesh/api/policy.h"
#include "mesh/api/scans.h"
#include "store/store.h"

namespace ndo {

// The index of `vantage` in the scan's definition; NotFound naming those there are.
Result<size_t> FindVantage(const mesh::ScanState& scan, std::string_view vantage);

// The pool's stored record; when no result of it has reached this node yet,
// one made from the scan's definition (the writers need the spec).
Result<ScanRecord> PoolRecord(Store& store, const mesh::ScanState& scan, size_t vantage);

// A pool's results in (address, port) order, open ones with their evidence.
Status ForEachPoolResult(Store& store, const ScanId& pool,
                         const std::function<bool(const ProbeResult&, const ServiceEvidence*)>& visit);
// The pool's results that `keep` accepts, with what the views show of their
// evidence (service and banner; certificates are left out, they can be large).
Result<std::vector<PoolResult>> LoadPool(Store& store, const ScanId& pool,
                                         const std::function<bool(const ProbeResult&)>& keep);

// --format json of `ndo view list` and `ndo scan status`: the record of a
// distributed scan ("record":"scan", id, created, control, complete,
// probes_per_pool, shards_per_pool), to which the caller adds "pools", each
// pool's record starting with PoolCountsJson (vantage, done, leased,
// pending, results).
// "complete": every shard done or refused by policy (`policies`: per pool,
// as PoolPolicies; empty: none refused).
JsonObject MeshScanJson(const mesh::ScanState& scan, const std::vector<mesh::PoolPolicy>& policies = {});
JsonObject PoolCountsJson(const std::string& vantage, const mesh::PoolCounts& counts);

// What the members' scan policies refuse of each pool of `scan`, from the
// store's saved node state (mesh/api/policy.h); nothing refused when the
// data dir holds no node state (a store copied away from its node).
std::vector<mesh::PoolPolicy> ScanPolicies(Store& store, const mesh::ScanState& scan);
// Every shard of every pool done or refused.
bool ScanComplete(const mesh::ScanState& scan, const std::vector<mesh::PoolPolicy>& policies);
// Adds to a pool's record: "refused_probes", "refused_ranges" and
// "nodes_without_policy" (names of the vantage's members that take no work).
JsonObject& AddPolicyJson(JsonObject& pool, const mesh::PoolPolicy& policy);
// The line the views print (on standard error) for a pool with probes
// refused by policy, so that nobody reads the ports never probed there as
// closed or filtered; "" when nothing is refused.
std::string RefusalNote(const std::string& vantage, const mesh::PoolPolicy& policy);

}  // namespace ndo
