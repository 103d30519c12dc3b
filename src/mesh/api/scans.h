// The distributed scans, as the CLI reads and submits them: the replicated
// state of a scan (work/pool_state.h: its definition, control, and per
// vantage the pool's shards) as this node's store holds it, and how a new
// scan is cut into shards.
#pragma once

#include <string_view>
#include <vector>

#include "mesh/work/pool_state.h"
#include "base/status.h"
#include "store/store.h"

namespace ndo::mesh {

// Every distributed scan of the store, in id order.
Result<std::vector<ScanState>> ListScanStates(Store& store);
// By full id or unique hex prefix (at least 4 digits).
Result<ScanState> FindScanState(Store& store, std::string_view id_or_prefix);

}  // namespace ndo::mesh
