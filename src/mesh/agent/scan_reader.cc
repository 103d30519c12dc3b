// mesh/api/scans.h: the replicated scans as a data dir's store holds them,
// read strictly (a record that does not decode, or that holds another scan
// than its key names, is an error, not skipped: the views must not show a
// mix-up).
#include "mesh/api/scans.h"

#include <utility>

#include "mesh/agent/pool_store.h"

namespace ndo::mesh {

Result<std::vector<ScanState>> ListScanStates(Store& store) {
  std::vector<ScanState> out;
  Status bad;
  Status s = store.ForEachMeta(kScanStateKeyPrefix, [&](std::string_view key, std::string_view value) {
    auto state = DecodeScanState(value);
    if (!state.ok()) {
      bad = state.status().WithContext("metadata '" + std::string(key) + "'");
      return false;
    }
    // The key names the scan its value must be: a mix-up would show one
    // scan's pools under another's id.
    if (key.substr(kScanStateKeyPrefix.size()) != ScanIdToHex(state->id)) {
      bad = Status::Corruption("metadata '" + std::string(key) + "' holds scan " + ScanIdToHex(state->id));
      return false;
    }
    out.push_back(std::move(*state));
    return true;
  });
  if (!s.ok()) return s;
  if (!bad.ok()) return bad;
  return out;
}

Result<ScanState> FindScanState(Store& store, std::string_view id_or_prefix) {
  std::vector<std::string> ids;
  Status s = store.ForEachMeta(kScanStateKeyPrefix, [&](std::string_view key, std::string_view) {
    ids.emplace_back(key.substr(kScanStateKeyPrefix.size()));
    return true;
  });
  if (!s.ok()) return s;
  auto id = MatchScanId(ids, id_or_prefix);
  if (!id.ok()) return id.status();
  std::string key = std::string(kScanStateKeyPrefix) + *id;  // ScanStateKey of that id
  auto value = store.GetMeta(key);
  if (!value.ok()) return value.status();
  auto state = DecodeScanState(*value);
  if (!state.ok()) return state.status().WithContext("metadata '" + key + "'");
  if (ScanIdToHex(state->id) != *id)
    return Status::Corruption("metadata '" + key + "' holds scan " + ScanIdToHex(state->id));
  return state;
}

}  // namespace ndo::mesh
