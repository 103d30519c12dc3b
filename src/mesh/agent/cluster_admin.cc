// mesh/api/cluster.h: the cluster's administration, done from the CLI on a
// node's data dir (and through its agent where one runs).
#include "mesh/api/cluster.h"

#include <algorithm>
#include <memory>
#include <thread>

#include "base/log.h"
#include "mesh/agent/data_dir.h"
#include "mesh/agent/node_identity.h"
#include "mesh/api/control.h"
#include "mesh/security/cluster_files.h"
#include "mesh/security/enrolment.h"
#include "mesh/transport/enrol_client.h"
#include "store/store.h"

namespace ndo::mesh {
namespace {

constexpr auto kEnrolTimeout = std::chrono::seconds(10);
constexpr std::chrono::seconds kCaValidity{10LL * 365 * 24 * 3600};
constexpr std::chrono::seconds kNodeCertValidity{365LL * 24 * 3600};

// The node id this data dir's node has, or a new one.
Result<NodeId> NodeIdFor(Store& store) {
  auto saved = LoadNodeState(store);
  if (saved.ok()) return saved->self.id;
  if (saved.status().code() != Status::Code::kNotFound) return saved.status();
  return RandomNodeId();
}

// A key, a CSR for `node`, and the key's PEM.
struct KeyAndCsr {
  std::string key_pem, csr_pem;
};
Result<KeyAndCsr> MakeKeyAndCsr(const NodeId& node, const std::string& name) {
  auto key = GenerateKeyPem();
  if (!key.ok()) return key.status();
  auto csr = MakeCsr(*key, node, name);
  if (!csr.ok()) return csr.status();
  return KeyAndCsr{std::move(*key), std::move(*csr)};
}

// The certificate's CN is only for people reading it; the mesh knows the
// node by the id in its SAN and by the name its agent is given.
// The first node is an operator, bound to the vantage `ndo init` was given.
Result<ClusterMaterial> NewClusterMaterial(Store& store, const std::string& vantage, int64_t now) {
  auto node = NodeIdFor(store);
  if (!node.ok()) return node.status();
  auto cluster = RandomNodeId();
  if (!cluster.ok()) return cluster.status();
  auto ca = CreateClusterCa(*cluster, kCaValidity, now);
  if (!ca.ok()) return ca.status();
  auto kc = MakeKeyAndCsr(*node, DefaultNodeName());
  if (!kc.ok()) return kc.status();
  auto cert = SignNodeCert(*ca, *cluster, kc->csr_pem, NodeRole::kOperator, vantage, kNodeCertValidity, now);
  if (!cert.ok()) return cert.status();
  auto ring = NewKeyring(now);
  if (!ring.ok()) return ring.status();
  if (Status s = RecordIssued(store, *node, cert->serial_hex); !s.ok()) return s;
  ClusterMaterial m;
  m.cluster = *cluster;
  m.node = *node;
  m.ca_pem = ca->cert_pem;
  m.ca_key_pem = ca->key_pem;
  m.cert_pem = cert->cert_pem;
  m.key_pem = kc->key_pem;
  m.serial_hex = cert->serial_hex;
  m.role = NodeRole::kOperator;
  m.vantage = vantage;
  m.keyring = std::move(*ring);
  return m;
}

// Enrols the node of `options` through `seed` with the join token and the
// pinned CA hash, writing its certificate, key, CA and keyring into the
// data dir. The node id is its saved one, if the data dir has a node.
Status EnrolNode(const MeshNodeOptions& options, const HostPort& seed, const std::string& token_text,
                 const std::string& ca_hash_text, int64_t now) {
  auto token = ParseJoinToken(token_text);
  if (!token.ok()) return token.status().WithContext("--token");
  auto ca_hash = ParseCaHash(ca_hash_text);
  if (!ca_hash.ok()) return ca_hash.status().WithContext("--ca-hash");
  const std::string& dir = options.data_dir;
  if (Status s = MakeDataDir(dir); !s.ok()) return s;
  NodeId node;
  std::string vantage = options.identity.vantage, name = options.identity.name;
  {
    auto store = OpenDataDirStore(dir);
    if (!store.ok()) return store.status();
    auto saved = LoadNodeState(**store);
    if (saved.ok()) {
      node = saved->self.id;
      if (vantage.empty()) vantage = saved->self.vantage;
      if (name.empty()) name = saved->self.name;
    } else if (saved.status().code() == Status::Code::kNotFound) {
      auto id = RandomNodeId();
      if (!id.ok()) return id.status();
      node = *id;
    } else {
      return saved.status();
    }
  }  // the store closes: the node opens it again
  if (vantage.empty()) return Status::InvalidArgument("give --vantage NAME (this data directory has no node yet)");
  if (name.empty()) name = DefaultNodeName();
  auto kc = MakeKeyAndCsr(node, name);
  if (!kc.ok()) return kc.status();
  auto reply = EnrolThrough(
      seed, options.identity.listen, *ca_hash,
      [&](std::string_view exporter) -> Result<EnrolRequest> {
        auto csr = CheckCsr(kc->csr_pem);
        if (!csr.ok()) return csr.status();
        EnrolRequest req;
        req.token_id = token->id;
        req.csr_pem = kc->csr_pem;
        req.vantage = vantage;
        req.name = name;
        req.proof = EnrolmentProof(token->secret, exporter, csr->der_sha256, vantage, name);
        return req;
      },
      kEnrolTimeout);
  if (!reply.ok()) return reply.status().WithContext("enrolment through " + seed.ToString());
  ClusterMaterial m;
  m.ca_pem = reply->ca_pem;
  m.cert_pem = reply->cert_pem;
  m.key_pem = kc->key_pem;
  m.keyring = reply->keyring;
  auto info = VerifyNodeCert(m.cert_pem, m.ca_pem, now);
  if (!info.ok()) return info.status().WithContext("the certificate the cluster issued");
  if (info->node != node) return Status::InvalidArgument("the cluster issued a certificate for another node id");
  if (info->vantage != vantage)
    return Status::InvalidArgument("the cluster issued a certificate for vantage '" + info->vantage +
                                   "', not the one asked for ('" + vantage + "')");
  if (Status s = CheckKeyMatchesCert(m.key_pem, m.cert_pem); !s.ok()) return s;
  if (Status s = SaveClusterMaterial(dir, m); !s.ok()) return s;
  Log(LogLevel::kInfo, "enrolled",
      {{"id", node.Hex()}, {"cluster", info->cluster.Hex()}, {"through", seed.ToString()},
       {"serial", info->serial_hex}, {"role", NodeRoleName(info->role)}, {"vantage", info->vantage}});
  return Status::Ok();
}

}  // namespace

Result<NewCluster> InitCluster(const std::string& dir, const std::string& vantage, int64_t now_unix) {
  if (Status s = CheckVantageName(vantage); !s.ok()) return s.WithContext("--vantage");
  if (Status s = MakeDataDir(dir); !s.ok()) return s;
  if (HasClusterMaterial(dir))
    return Status::InvalidArgument("data dir " + dir + " already belongs to a cluster (" + ClusterDir(dir) +
                                   "); ndo init makes a new one and would not overwrite it");
  auto store = OpenDataDirStore(dir);
  if (!store.ok()) return store.status();
  auto material = NewClusterMaterial(**store, vantage, now_unix);
  if (!material.ok()) return material.status();
  // The hash before the files: a cluster written but not reported would
  // refuse the retry ("already belongs to a cluster").
  auto hash = SpkiSha256(material->ca_pem);
  if (!hash.ok()) return hash.status();
  if (Status s = SaveClusterMaterial(dir, *material); !s.ok()) return s;
  return NewCluster{material->cluster.Hex(), material->node.Hex(), *hash, ClusterDir(dir)};
}

Result<IssuedToken> IssueJoinToken(const std::string& dir, const TokenParams& params, int64_t now_unix,
                                   std::chrono::milliseconds control_timeout) {
  ControlRequest request(ControlCommand::kCreateToken);
  request.token = params;
  // A running agent holds the store: ask it. Otherwise write the token
  // into the store directly; the agent finds it when it starts.
  auto r = CallControl(dir, request, control_timeout);
  if (r.ok()) return IssuedToken{r->token, r->ca_hash, r->expires_unix};
  if (r.status().code() != Status::Code::kUnavailable) return r.status();  // no agent: Unavailable
  auto material = LoadClusterMaterial(dir, now_unix);
  if (!material.ok()) return material.status();
  if (!material->holds_ca_key())
    return Status::InvalidArgument("only a node that holds the cluster CA key (the one that ran ndo init) can "
                                   "issue tokens");
  auto store = OpenDataDirStore(dir);
  if (!store.ok()) return store.status();
  auto token = CreateToken(**store, params, now_unix);
  if (!token.ok()) return token.status();
  auto hash = SpkiSha256(material->ca_pem);
  if (!hash.ok()) return hash.status();
  return IssuedToken{FormatJoinToken({token->id, token->secret}), *hash, token->expires_unix};
}

Status SecureNode(const NodeSecurity& security, MeshNodeOptions& o) {
  bool enrolled = HasClusterMaterial(o.data_dir);
  if (security.insecure) {
    if (enrolled)
      return Status::InvalidArgument("data dir " + o.data_dir + " belongs to a secured cluster; --insecure is refused");
    if (!security.token.empty()) return Status::InvalidArgument("--token and --insecure exclude each other");
    Log(LogLevel::kWarn, "insecure mesh: datagrams and streams are neither authenticated nor encrypted");
    return Status::Ok();
  }
  if (!enrolled) {
    if (security.token.empty() || o.seeds.empty())
      return Status::InvalidArgument(
          "data dir " + o.data_dir +
          " belongs to no cluster: run `ndo init` on the first node, and `ndo join ADDR --token T --ca-hash H` on "
          "the others (or --insecure for an unauthenticated lab mesh)");
    if (security.ca_hash.empty())
      return Status::InvalidArgument("--token needs --ca-hash sha256:... (printed with the token): without it the "
                                     "seed's identity is unchecked");
    // As joining, enrolling is retried while the seed cannot be reached (a
    // node started before its seed); a refusal is final.
    auto backoff = std::chrono::seconds(1);
    for (int attempt = 1;; ++attempt) {
      auto now = std::chrono::duration_cast<std::chrono::seconds>(
                     std::chrono::system_clock::now().time_since_epoch()).count();
      Status s = EnrolNode(o, o.seeds.front(), security.token, security.ca_hash, now);
      if (s.ok()) break;
      if (s.code() != Status::Code::kIoError && s.code() != Status::Code::kUnavailable) return s;
      Log(attempt >= 3 ? LogLevel::kWarn : LogLevel::kInfo, "not enrolled yet, trying again",
          {{"attempt", attempt}, {"reason", s.message()}, {"retry_s", static_cast<uint64_t>(backoff.count())}});
      std::this_thread::sleep_for(backoff);
      backoff = std::min<std::chrono::seconds>(backoff * 2, std::chrono::seconds(30));
    }
  }
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch()).count();
  auto material = LoadClusterMaterial(o.data_dir, now);
  if (!material.ok()) return material.status();
  o.cluster = std::make_shared<const ClusterMaterial>(std::move(*material));
  return Status::Ok();
}

}  // namespace ndo::mesh
