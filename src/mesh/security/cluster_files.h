// A node's membership of a secured cluster, as files in DATA_DIR/cluster/
// (a directory of mode 0700):
//
//   ca.crt     the cluster CA's certificate (public)
//   ca.key     the CA's private key: only on a node that can enrol others
//              (the one that ran `ndo init`), 0600
//   node.crt   this node's certificate, naming its node id (public)
//   node.key   this node's private key, 0600
//   keyring    the gossip keys (mesh/security/gossip_seal.h), 0600
//
// Files, not the store: the store is locked while an agent runs, and an
// operator must be able to see at a glance which secrets a machine holds.
#pragma once

#include <string>

#include "mesh/security/gossip_seal.h"
#include "mesh/security/pki.h"
#include "base/status.h"

namespace ndo::mesh {

struct ClusterMaterial {
  ClusterId cluster;
  NodeId node;
  std::string ca_pem;
  std::string ca_key_pem;  // empty unless this node holds the CA key
  std::string cert_pem, key_pem;
  std::string serial_hex;  // of cert_pem
  // What cert_pem binds (mesh/security/roles.h); kScanner and "" for a
  // certificate made before roles and vantages were bound.
  NodeRole role = NodeRole::kScanner;
  std::string vantage;
  Keyring keyring;

  bool holds_ca_key() const { return !ca_key_pem.empty(); }
};

std::string ClusterDir(const std::string& data_dir);
// Whether DATA_DIR/cluster/node.crt exists: the node belongs to a secured
// cluster (and must never fall back to plaintext).
bool HasClusterMaterial(const std::string& data_dir);

// Loads and checks everything: the certificate verifies against the CA at
// now_unix, the keys match their certificates, the keyring is valid.
// NotFound when the data dir has no cluster material.
Result<ClusterMaterial> LoadClusterMaterial(const std::string& data_dir, int64_t now_unix);

// Writes every file (private ones 0600, through a temporary name and a
// rename); the directory is created 0700. ca.key only if held.
Status SaveClusterMaterial(const std::string& data_dir, const ClusterMaterial& material);
// The keyring alone (after a rotation).
Status SaveKeyring(const std::string& data_dir, const Keyring& ring);

}  // namespace ndo::mesh
