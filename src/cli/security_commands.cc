#include "cli/security_commands.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>

#include "cli/command_table.h"
#include "cli/exit_codes.h"
#include "cli/output/json.h"
#include "mesh/security/cluster_files.h"
#include "mesh/agent/control.h"
#include "mesh/transport/enrol_client.h"
#include "mesh/security/enrolment.h"
#include "base/log.h"
#include "mesh/agent/node_identity.h"
#include "store/store.h"

namespace ndo {
namespace {

constexpr auto kControlTimeout = std::chrono::seconds(5);
constexpr auto kEnrolTimeout = std::chrono::seconds(10);
constexpr std::chrono::seconds kCaValidity{10LL * 365 * 24 * 3600};
constexpr std::chrono::seconds kNodeCertValidity{365LL * 24 * 3600};

int64_t NowUnix() { return static_cast<int64_t>(std::time(nullptr)); }

std::string DataDirOrDefault(const std::string& d) { return d.empty() ? DefaultDataDir() : d; }

Status MakeDataDir(const std::string& dir) {
  if (Status s = mesh::CheckDataDir(dir); !s.ok()) return s;
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Status::IoError("cannot create data dir " + dir + ": " + std::strerror(errno));
  return Status::Ok();
}

Result<std::unique_ptr<Store>> OpenStore(const std::string& dir) {
  auto store = Store::Open(dir + "/db");
  if (!store.ok() && store.status().code() == Status::Code::kUnavailable)
    return Status::Unavailable("another ndo process (an agent?) is using data dir " + dir);
  return store;
}

// The node id this data dir's node has, or a new one.
Result<mesh::NodeId> NodeIdFor(Store& store) {
  auto saved = mesh::LoadNodeState(store);
  if (saved.ok()) return saved->self.id;
  if (saved.status().code() != Status::Code::kNotFound) return saved.status();
  return mesh::RandomNodeId();
}

// A key, a CSR for `node`, and the key's PEM.
struct KeyAndCsr {
  std::string key_pem, csr_pem;
};
Result<KeyAndCsr> MakeKeyAndCsr(const mesh::NodeId& node, const std::string& name) {
  auto key = mesh::GenerateKeyPem();
  if (!key.ok()) return key.status();
  auto csr = mesh::MakeCsr(*key, node, name);
  if (!csr.ok()) return csr.status();
  return KeyAndCsr{std::move(*key), std::move(*csr)};
}

// The certificate's CN is only for people reading it; the mesh knows the
// node by the id in its SAN and by the name its agent is given.
Result<mesh::ClusterMaterial> InitCluster(Store& store) {
  auto node = NodeIdFor(store);
  if (!node.ok()) return node.status();
  auto cluster = mesh::RandomNodeId();
  if (!cluster.ok()) return cluster.status();
  int64_t now = NowUnix();
  auto ca = mesh::CreateClusterCa(*cluster, kCaValidity, now);
  if (!ca.ok()) return ca.status();
  auto kc = MakeKeyAndCsr(*node, mesh::DefaultNodeName());
  if (!kc.ok()) return kc.status();
  auto cert = mesh::SignNodeCert(*ca, *cluster, kc->csr_pem, kNodeCertValidity, now);
  if (!cert.ok()) return cert.status();
  auto ring = mesh::NewKeyring(now);
  if (!ring.ok()) return ring.status();
  if (Status s = mesh::RecordIssued(store, *node, cert->serial_hex); !s.ok()) return s;
  mesh::ClusterMaterial m;
  m.cluster = *cluster;
  m.node = *node;
  m.ca_pem = ca->cert_pem;
  m.ca_key_pem = ca->key_pem;
  m.cert_pem = cert->cert_pem;
  m.key_pem = kc->key_pem;
  m.serial_hex = cert->serial_hex;
  m.keyring = std::move(*ring);
  return m;
}

void PrintToken(const mesh::ControlResponse& r, const TokenCommand& cmd) {
  if (cmd.format == "json") {
    JsonObject o;
    o.Str("token", r.token).Str("ca_hash", r.ca_hash).Int("expires_unix", r.expires_unix).UInt("uses", cmd.uses);
    if (cmd.vantage.empty()) o.Null("vantage");
    else o.Str("vantage", cmd.vantage);
    std::printf("%s\n", o.str().c_str());
    return;
  }
  std::printf("token:   %s\nca hash: %s\n", r.token.c_str(), r.ca_hash.c_str());
  std::fprintf(stderr, "ndo: valid until unix time %lld, for %s%s%s; on the new node:\n  ndo join ADDR --token %s --ca-hash %s --listen IP:PORT --vantage %s\n",
               static_cast<long long>(r.expires_unix),
               cmd.uses == 0 ? "any number of uses" : (std::to_string(cmd.uses) + (cmd.uses == 1 ? " use" : " uses")).c_str(),
               cmd.vantage.empty() ? "" : " by vantage ", cmd.vantage.c_str(), r.token.c_str(), r.ca_hash.c_str(),
               cmd.vantage.empty() ? "NAME" : cmd.vantage.c_str());
}

}  // namespace

int RunInitCommand(const std::string& data_dir_arg) {
  std::string dir = DataDirOrDefault(data_dir_arg);
  if (Status s = MakeDataDir(dir); !s.ok()) return Fail(s);
  if (mesh::HasClusterMaterial(dir))
    return Fail(Status::InvalidArgument("data dir " + dir + " already belongs to a cluster (" + mesh::ClusterDir(dir) +
                                        "); ndo init makes a new one and would not overwrite it"));
  auto store = OpenStore(dir);
  if (!store.ok()) return Fail(store.status());
  auto material = InitCluster(**store);
  if (!material.ok()) return Fail(material.status());
  if (Status s = mesh::SaveClusterMaterial(dir, *material); !s.ok()) return Fail(s);
  auto hash = mesh::SpkiSha256(material->ca_pem);
  std::printf("cluster: %s\nnode:    %s\nca hash: %s\n", material->cluster.Hex().c_str(), material->node.Hex().c_str(),
              hash.ok() ? hash->c_str() : "?");
  std::fprintf(stderr,
               "ndo: a new cluster in %s (CA key in %s/ca.key: keep it safe). Next:\n"
               "  ndo agent --data-dir %s --listen IP:PORT --vantage NAME\n"
               "  ndo token create --data-dir %s [--ttl 24h] [--uses 1] [--vantage NAME]\n",
               dir.c_str(), mesh::ClusterDir(dir).c_str(), dir.c_str(), dir.c_str());
  return kExitOk;
}

int RunTokenCreateCommand(const TokenCommand& cmd) {
  if (Status s = CheckFormat(cmd.format, {"table", "json"}); !s.ok()) return Fail(s);
  std::string dir = DataDirOrDefault(cmd.data_dir);
  auto ttl = mesh::ParseTtlSeconds(cmd.ttl);
  if (!ttl.ok()) return Fail(ttl.status().WithContext("--ttl"));
  if (cmd.vantage.size() > mesh::kMaxVantageBytes)
    return Fail(Status::InvalidArgument("--vantage is longer than " + std::to_string(mesh::kMaxVantageBytes) + " bytes"));
  mesh::ControlRequest request(mesh::ControlCommand::kCreateToken);
  request.token = {*ttl, cmd.uses, cmd.vantage};
  // A running agent holds the store: ask it. Otherwise write the token
  // into the store directly; the agent finds it when it starts.
  auto r = mesh::CallControl(dir, request, kControlTimeout);
  if (r.ok()) {
    PrintToken(*r, cmd);
    return kExitOk;
  }
  if (r.status().code() != Status::Code::kUnavailable) return Fail(r.status());  // no agent: Unavailable
  auto material = mesh::LoadClusterMaterial(dir, NowUnix());
  if (!material.ok()) return Fail(material.status());
  if (!material->holds_ca_key())
    return Fail(Status::InvalidArgument("only a node that holds the cluster CA key (the one that ran ndo init) can "
                                        "issue tokens"));
  auto store = OpenStore(dir);
  if (!store.ok()) return Fail(store.status());
  auto token = mesh::CreateToken(**store, request.token, NowUnix());
  if (!token.ok()) return Fail(token.status());
  auto hash = mesh::SpkiSha256(material->ca_pem);
  if (!hash.ok()) return Fail(hash.status());
  mesh::ControlResponse created;
  created.token = mesh::FormatJoinToken({token->id, token->secret});
  created.ca_hash = *hash;
  created.expires_unix = token->expires_unix;
  PrintToken(created, cmd);
  return kExitOk;
}

Status EnrolNode(const mesh::MeshNodeOptions& options, const mesh::HostPort& seed, const std::string& token_text,
                 const std::string& ca_hash_text) {
  auto token = mesh::ParseJoinToken(token_text);
  if (!token.ok()) return token.status().WithContext("--token");
  auto ca_hash = mesh::ParseCaHash(ca_hash_text);
  if (!ca_hash.ok()) return ca_hash.status().WithContext("--ca-hash");
  const std::string& dir = options.data_dir;
  if (Status s = MakeDataDir(dir); !s.ok()) return s;
  mesh::NodeId node;
  std::string vantage = options.identity.vantage, name = options.identity.name;
  {
    auto store = OpenStore(dir);
    if (!store.ok()) return store.status();
    auto saved = mesh::LoadNodeState(**store);
    if (saved.ok()) {
      node = saved->self.id;
      if (vantage.empty()) vantage = saved->self.vantage;
      if (name.empty()) name = saved->self.name;
    } else if (saved.status().code() == Status::Code::kNotFound) {
      auto id = mesh::RandomNodeId();
      if (!id.ok()) return id.status();
      node = *id;
    } else {
      return saved.status();
    }
  }  // the store closes: the node opens it again
  if (vantage.empty()) return Status::InvalidArgument("give --vantage NAME (this data directory has no node yet)");
  if (name.empty()) name = mesh::DefaultNodeName();
  auto kc = MakeKeyAndCsr(node, name);
  if (!kc.ok()) return kc.status();
  auto reply = mesh::EnrolThrough(
      seed, options.identity.listen, *ca_hash,
      [&](std::string_view exporter) -> Result<mesh::EnrolRequest> {
        auto csr = mesh::CheckCsr(kc->csr_pem);
        if (!csr.ok()) return csr.status();
        mesh::EnrolRequest req;
        req.token_id = token->id;
        req.csr_pem = kc->csr_pem;
        req.vantage = vantage;
        req.name = name;
        req.proof = mesh::EnrolmentProof(token->secret, exporter, csr->der_sha256, vantage, name);
        return req;
      },
      kEnrolTimeout);
  if (!reply.ok()) return reply.status().WithContext("enrolment through " + seed.ToString());
  mesh::ClusterMaterial m;
  m.ca_pem = reply->ca_pem;
  m.cert_pem = reply->cert_pem;
  m.key_pem = kc->key_pem;
  m.keyring = reply->keyring;
  auto info = mesh::VerifyNodeCert(m.cert_pem, m.ca_pem, NowUnix());
  if (!info.ok()) return info.status().WithContext("the certificate the cluster issued");
  if (info->node != node) return Status::InvalidArgument("the cluster issued a certificate for another node id");
  if (Status s = mesh::CheckKeyMatchesCert(m.key_pem, m.cert_pem); !s.ok()) return s;
  if (Status s = mesh::SaveClusterMaterial(dir, m); !s.ok()) return s;
  Log(LogLevel::kInfo, "enrolled",
            {{"id", node.Hex()}, {"cluster", info->cluster.Hex()}, {"through", seed.ToString()},
             {"serial", info->serial_hex}});
  return Status::Ok();
}

namespace {

CommandRun SetupInit(CLI::App& cmd) {
  auto data_dir = std::make_shared<std::string>();
  AddDataDirOption(cmd, *data_dir, "The node's data dir");
  return [data_dir](const std::vector<std::string>&) { return RunInitCommand(*data_dir); };
}

CommandRun SetupToken(CLI::App& cmd) {
  auto st = std::make_shared<TokenCommand>();
  cmd.require_subcommand(1);
  auto* create = cmd.add_subcommand("create", "Create a join token (on the node that ran ndo init)");
  AddDataDirOption(*create, st->data_dir, "The node's data dir");
  create->add_option("--ttl", st->ttl, "Lifetime: 90s, 15m, 24h, 7d (at most 365d)")->capture_default_str();
  create->add_option("--uses", st->uses, "How many nodes it may enrol (0: any number until it expires)")
      ->capture_default_str();
  create->add_option("--vantage", st->vantage, "The only vantage it may enrol (default: any)");
  AddFormatOption(*create, st->format, {"table", "json"},
                  "json: one record: token, ca_hash, expires_unix, uses, vantage");
  // --json: the old spelling of --format json, kept for scripts (hidden).
  create->add_flag_callback("--json", [st] { st->format = "json"; }, "Same as --format json")->group("");
  return [st](const std::vector<std::string>&) { return RunTokenCreateCommand(*st); };
}

}  // namespace

std::vector<CommandEntry> SecurityCommands() {
  return {
      {"init", "Make a new secured cluster on its first node: a CA, this node's certificate, a gossip keyring",
       SetupInit},
      {"token", "Join tokens", SetupToken},
  };
}

}  // namespace ndo
