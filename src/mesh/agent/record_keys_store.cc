#include "mesh/agent/record_keys_store.h"

#include <string>
#include <utility>
#include <vector>

#include "base/log.h"

namespace ndo::mesh {

Result<std::unique_ptr<CertificateKeys>> OpenRecordKeys(Store& store, const ClusterMaterial& material,
                                                        std::function<bool(const NodeId&)> is_revoked,
                                                        std::function<int64_t()> now_unix,
                                                        StoredKeysReport* report) {
  // While the saved certificates are learnt again, learning them must not
  // write them back.
  auto reloading = std::make_shared<bool>(true);
  CertificateKeysOptions o;
  o.key_pem = material.key_pem;
  o.cert_pem = material.cert_pem;
  o.ca_pem = material.ca_pem;
  o.now_unix = std::move(now_unix);
  o.is_revoked = std::move(is_revoked);
  o.on_learn = [&store, reloading](const NodeId& node, const std::string& pem) {
    if (*reloading) return;
    // Not synced: a certificate lost in a power cut is fetched again.
    if (Status s = store.PutMeta(std::string(kCertKeyPrefix) + node.Hex(), pem); !s.ok())
      return Log(LogLevel::kError, "cannot keep a member's certificate", {{"id", node.Hex()}, {"reason", s.message()}});
    Log(LogLevel::kInfo, "member certificate kept", {{"id", node.Hex()}});
  };
  auto keys = CertificateKeys::Create(std::move(o));
  if (!keys.ok()) return keys.status().WithContext("record keys");

  std::vector<std::pair<std::string, std::string>> saved;
  Status listed = store.ForEachMeta(kCertKeyPrefix, [&](std::string_view key, std::string_view value) {
    saved.emplace_back(std::string(key), std::string(value));
    return true;
  });
  if (!listed.ok()) return listed.WithContext("kept certificates");
  StoredKeysReport r;
  for (const auto& [key, pem] : saved) {
    Status learnt = (*keys)->Learn(pem);
    if (learnt.ok()) {
      ++r.reloaded;
      continue;
    }
    // Full (the bound) is no reason to forget it: a later start may have room.
    if (learnt.code() == Status::Code::kUnavailable) continue;
    ++r.dropped;
    Log(LogLevel::kInfo, "kept certificate dropped", {{"key", key}, {"reason", learnt.message()}});
    if (Status d = store.DeleteMeta(key); !d.ok())
      Log(LogLevel::kWarn, "cannot drop a kept certificate", {{"key", key}, {"reason", d.message()}});
  }
  *reloading = false;
  if (report) *report = r;
  return keys;
}

}  // namespace ndo::mesh
