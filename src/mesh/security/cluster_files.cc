#include "mesh/security/cluster_files.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/file_io.h"

namespace ndo::mesh {
namespace {

constexpr size_t kMaxKeyringFileBytes = 64 * 1024;

std::string FilePath(const std::string& data_dir, const char* name) { return ClusterDir(data_dir) + "/" + name; }

Result<std::string> ReadPem(const std::string& data_dir, const char* name) {
  auto r = ReadSmallFile(FilePath(data_dir, name), kMaxPemBytes);
  if (!r.ok()) return r.status().WithContext("cluster file " + FilePath(data_dir, name));
  return r;
}

Status MakeClusterDir(const std::string& data_dir) {
  std::string dir = ClusterDir(data_dir);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Status::IoError("cannot create " + dir + ": " + std::strerror(errno));
  return Status::Ok();
}

// Certificates are public, but written the same careful way: a half-written
// node.crt would make the node look unenrolled.
Status WriteFile(const std::string& data_dir, const char* name, std::string_view bytes) {
  return WritePrivateFile(FilePath(data_dir, name), bytes);
}

}  // namespace

std::string ClusterDir(const std::string& data_dir) {
  std::string dir = data_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir + "/cluster";
}

bool HasClusterMaterial(const std::string& data_dir) {
  std::error_code ec;
  return std::filesystem::exists(FilePath(data_dir, "node.crt"), ec);
}

Result<ClusterMaterial> LoadClusterMaterial(const std::string& data_dir, int64_t now_unix) {
  if (!HasClusterMaterial(data_dir))
    return Status::NotFound("data dir " + data_dir + " belongs to no cluster (no " + FilePath(data_dir, "node.crt") +
                            ")");
  ClusterMaterial m;
  auto ca = ReadPem(data_dir, "ca.crt");
  if (!ca.ok()) return ca.status();
  m.ca_pem = std::move(*ca);
  auto cert = ReadPem(data_dir, "node.crt");
  if (!cert.ok()) return cert.status();
  m.cert_pem = std::move(*cert);
  auto key = ReadPem(data_dir, "node.key");
  if (!key.ok()) return key.status();
  m.key_pem = std::move(*key);
  auto ca_key = ReadSmallFile(FilePath(data_dir, "ca.key"), kMaxPemBytes);
  if (ca_key.ok()) {
    m.ca_key_pem = std::move(*ca_key);
    if (Status s = CheckKeyMatchesCert(m.ca_key_pem, m.ca_pem); !s.ok()) return s.WithContext("ca.key");
  } else if (ca_key.status().code() != Status::Code::kNotFound) {
    return ca_key.status();
  }
  auto info = VerifyNodeCert(m.cert_pem, m.ca_pem, now_unix);
  if (!info.ok()) return info.status().WithContext("node.crt");
  if (Status s = CheckKeyMatchesCert(m.key_pem, m.cert_pem); !s.ok()) return s.WithContext("node.key");
  m.node = info->node;
  m.cluster = info->cluster;
  m.serial_hex = info->serial_hex;
  m.role = info->role;
  m.vantage = info->vantage;
  auto ring = ReadSmallFile(FilePath(data_dir, "keyring"), kMaxKeyringFileBytes);
  if (!ring.ok()) return ring.status().WithContext("cluster file " + FilePath(data_dir, "keyring"));
  auto decoded = DecodeKeyring(*ring);
  if (!decoded.ok()) return decoded.status().WithContext("cluster file " + FilePath(data_dir, "keyring"));
  m.keyring = std::move(*decoded);
  return m;
}

Status SaveClusterMaterial(const std::string& data_dir, const ClusterMaterial& m) {
  if (Status s = MakeClusterDir(data_dir); !s.ok()) return s;
  if (Status s = WriteFile(data_dir, "ca.crt", m.ca_pem); !s.ok()) return s;
  if (m.holds_ca_key())
    if (Status s = WriteFile(data_dir, "ca.key", m.ca_key_pem); !s.ok()) return s;
  if (Status s = SaveKeyring(data_dir, m.keyring); !s.ok()) return s;
  if (Status s = WriteFile(data_dir, "node.key", m.key_pem); !s.ok()) return s;
  // Last: its presence is what marks the data dir as enrolled.
  return WriteFile(data_dir, "node.crt", m.cert_pem);
}

Status SaveKeyring(const std::string& data_dir, const Keyring& ring) {
  if (Status s = MakeClusterDir(data_dir); !s.ok()) return s;
  auto bytes = EncodeKeyring(ring);
  if (!bytes.ok()) return bytes.status();
  return WriteFile(data_dir, "keyring", *bytes);
}

}  // namespace ndo::mesh
