// Where a node keeps the distributed scans in its store (one RocksDB per data
// directory, store/store.h):
//
//   meta "pool." | scan id (hex)                  -> EncodeScanState
//   meta "bundle." | pool id (hex) | "." | shard  -> EncodeResultBundle of
//                                                   that shard's results and
//                                                   its open ports' evidence
//   scan record, results and service evidence under PoolId(scan, vantage):
//   the pool's merged results, a scan of their own for every local view,
//   report and writer.
//
// A bundle is kept as it was sealed by done (its digest is in the state) so
// that the node can hand it on unchanged; its results are also merged into
// the pool's results, where the store's merge rule (the more informative
// answer wins) makes applying one twice, or two of one shard, harmless. Its
// evidence is written over the port's (the last bundle applied wins: two
// scans of a shard may well have heard different banners), its certificates
// once per fingerprint.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "mesh/work/pool_state.h"
#include "base/status.h"
#include "store/store.h"

namespace ndo::mesh {

inline constexpr std::string_view kScanStateKeyPrefix = "pool.";
std::string ScanStateKey(const ScanId& scan);  // kScanStateKeyPrefix | hex id
std::string BundleKey(const ScanId& pool, uint32_t shard);

Status SaveScanState(Store& store, const ScanState& state);
// Every scan state in the store; a record that does not decode is skipped
// and reported through `skipped` (the rest still load).
Result<std::map<ScanId, ScanState>> LoadScanStates(Store& store, size_t* skipped = nullptr);

// The pool's scan record (its id PoolId(scan, vantage), the scan's spec),
// written once.
Status EnsurePoolRecord(Store& store, const ScanState& state, std::string_view vantage);

// Stores a bundle, merges its results into the pool's results and writes
// its evidence (with the certificates) under the pool. The bundle must
// decode; its digest is not checked here (the caller compares it with the
// state's). Idempotent.
Status StoreBundle(Store& store, const ScanState& state, std::string_view vantage, uint32_t shard,
                   std::string_view bundle);
// NotFound when this node does not hold it.
Result<std::string> LoadBundle(Store& store, const ScanId& pool, uint32_t shard);
bool HasBundle(Store& store, const ScanId& pool, uint32_t shard);

}  // namespace ndo::mesh
