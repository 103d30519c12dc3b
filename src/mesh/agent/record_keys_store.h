// The daemon's record keys (mesh/security/certificate_keys.h) with the
// certificates it learnt kept in the store: each under
// "mesh.member_cert.<node id hex>" (PEM), written when learnt, learnt again at the
// next start, so a restarted node need not fetch them again to check the
// records it merges. A kept certificate that no longer checks out (revoked
// meanwhile, expired, or unreadable) is dropped from the store at start.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "base/status.h"
#include "mesh/security/certificate_keys.h"
#include "mesh/security/cluster_files.h"
#include "store/store.h"

namespace ndo::mesh {

// Not "mesh.cert.": on the CA holder that prefix is the enrolment
// authority's record of the serial issued to each node id
// (mesh/security/enrolment.cc), which must never be read or dropped here.
inline constexpr std::string_view kCertKeyPrefix = "mesh.member_cert.";

struct StoredKeysReport {
  size_t reloaded = 0;  // certificates learnt again from the store
  size_t dropped = 0;   // kept ones that no longer check out, deleted
};

// `store` must outlive the keys (they write to it when they learn).
Result<std::unique_ptr<CertificateKeys>> OpenRecordKeys(Store& store, const ClusterMaterial& material,
                                                        std::function<bool(const NodeId&)> is_revoked,
                                                        std::function<int64_t()> now_unix,
                                                        StoredKeysReport* report = nullptr);

}  // namespace ndo::mesh
