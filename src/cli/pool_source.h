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
JsonObject MeshScanJson(const mesh::ScanState& scan);
JsonObject PoolCountsJson(const std::string& vantage, const mesh::PoolCounts& counts);

}  // namespace ndo
