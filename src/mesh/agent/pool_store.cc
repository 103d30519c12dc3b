#include "mesh/agent/pool_store.h"

#include "store/result_bundle.h"

namespace ndo::mesh {

namespace {
constexpr std::string_view kBundlePrefix = "bundle.";
}  // namespace

std::string ScanStateKey(const ScanId& scan) { return std::string(kScanStateKeyPrefix) + ScanIdToHex(scan); }

std::string BundleKey(const ScanId& pool, uint32_t shard) {
  return std::string(kBundlePrefix) + ScanIdToHex(pool) + "." + std::to_string(shard);
}

Status SaveScanState(Store& store, const ScanState& state) {
  auto bytes = EncodeScanState(state);
  if (!bytes.ok()) return bytes.status();
  return store.PutMeta(ScanStateKey(state.id), *bytes);
}

Result<std::map<ScanId, ScanState>> LoadScanStates(Store& store, size_t* skipped) {
  std::map<ScanId, ScanState> out;
  size_t bad = 0;
  Status s = store.ForEachMeta(kScanStateKeyPrefix, [&](std::string_view, std::string_view value) {
    auto state = DecodeScanState(value);
    if (!state.ok()) {
      ++bad;
      return true;
    }
    out[state->id] = std::move(*state);
    return true;
  });
  if (skipped) *skipped = bad;
  if (!s.ok()) return s;
  return out;
}

Status EnsurePoolRecord(Store& store, const ScanState& state, std::string_view vantage) {
  ScanId pool = PoolId(state.id, vantage);
  if (store.FindScan(ScanIdToHex(pool)).ok()) return Status::Ok();
  ScanRecord rec;
  rec.id = pool;
  rec.spec = state.definition.spec;
  rec.created_us = state.definition.created_ms * 1000;
  rec.updated_us = rec.created_us;
  rec.state = ndo::ScanState::kRunning;  // the store's record state, not mesh::ScanState
  return store.PutScan(rec);
}

Status StoreBundle(Store& store, const ScanState& state, std::string_view vantage, uint32_t shard,
                   std::string_view bundle) {
  auto decoded = DecodeResultBundle(bundle);
  if (!decoded.ok()) return decoded.status();
  if (Status s = EnsurePoolRecord(store, state, vantage); !s.ok()) return s;
  ScanId pool = PoolId(state.id, vantage);
  ResultBatch batch;
  batch.results = std::move(decoded->results);
  // Results, then evidence, then the bundle: a node that holds the bundle
  // holds its results and evidence (the bundle is what it would hand on),
  // and evidence is never stored for a port the pool does not hold open.
  if (Status s = store.WriteBatch(pool, batch, /*store_all=*/true); !s.ok()) return s;
  if (!decoded->evidence.empty()) {
    // The store writes a chain's certificates from their DER: each DER goes
    // to the first chain that refers to it (the others keep the fingerprint,
    // all the evidence record holds), so a certificate seen on many ports is
    // neither copied nor written more than once.
    std::map<Digest, CertificateInfo*> pending;
    for (auto& cert : decoded->certificates) pending[cert.sha256] = &cert;
    for (auto& ev : decoded->evidence) {
      if (!ev.tls) continue;
      for (auto& link : ev.tls->chain) {
        auto it = pending.find(link.sha256);
        if (it == pending.end()) continue;
        link = std::move(*it->second);
        pending.erase(it);
      }
    }
    if (Status s = store.WriteEvidence(pool, decoded->evidence); !s.ok()) return s;
  }
  return store.PutMeta(BundleKey(pool, shard), bundle, /*sync=*/true);
}

Result<std::string> LoadBundle(Store& store, const ScanId& pool, uint32_t shard) {
  return store.GetMeta(BundleKey(pool, shard));
}

bool HasBundle(Store& store, const ScanId& pool, uint32_t shard) { return LoadBundle(store, pool, shard).ok(); }

}  // namespace ndo::mesh
