// A node's cluster files: what SaveClusterMaterial writes LoadClusterMaterial
// reads back, with private modes, and files that do not belong together are
// refused with a message naming the file.
#include "mesh/security/cluster_files.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "base/file_io.h"
#include "mesh/agent/node_identity.h"

namespace ndo::mesh {
namespace {

using std::chrono::hours;

constexpr int64_t kNow = 1700000000;
const NodeId kNode{0x1234, 0x5678};

template <typename T>
T Must(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  return std::move(r).value();
}

bool Contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

// As `ndo init` makes it.
ClusterMaterial MakeMaterial(const NodeId& node = kNode, int64_t now = kNow) {
  ClusterMaterial m;
  m.cluster = Must(RandomNodeId());
  m.node = node;
  CaMaterial ca = Must(CreateClusterCa(m.cluster, hours(24 * 365 * 10), now));
  m.ca_pem = ca.cert_pem;
  m.ca_key_pem = ca.key_pem;
  m.key_pem = Must(GenerateKeyPem());
  IssuedCert cert = Must(SignNodeCert(ca, m.cluster, Must(MakeCsr(m.key_pem, node, "n")), NodeRole::kScanner, "lab", hours(24 * 30), now));
  m.cert_pem = cert.cert_pem;
  m.serial_hex = cert.serial_hex;
  m.keyring = Must(NewKeyring(now));
  m.keyring.keys.push_back(Must(NewGossipKey(m.keyring, now + 1)));
  return m;
}

void ExpectSameKeyring(const Keyring& a, const Keyring& b) {
  EXPECT_EQ(a.primary, b.primary);
  ASSERT_EQ(a.keys.size(), b.keys.size());
  for (size_t i = 0; i < a.keys.size(); ++i) {
    EXPECT_EQ(a.keys[i].id, b.keys[i].id);
    EXPECT_EQ(a.keys[i].key, b.keys[i].key);
    EXPECT_EQ(a.keys[i].created_unix, b.keys[i].created_unix);
  }
}

void ExpectSameMaterial(const ClusterMaterial& a, const ClusterMaterial& b) {
  EXPECT_EQ(a.cluster, b.cluster);
  EXPECT_EQ(a.node, b.node);
  EXPECT_EQ(a.ca_pem, b.ca_pem);
  EXPECT_EQ(a.ca_key_pem, b.ca_key_pem);
  EXPECT_EQ(a.cert_pem, b.cert_pem);
  EXPECT_EQ(a.key_pem, b.key_pem);
  EXPECT_EQ(a.serial_hex, b.serial_hex);
  EXPECT_EQ(a.holds_ca_key(), b.holds_ca_key());
  ExpectSameKeyring(a.keyring, b.keyring);
}

class ClusterFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "ndo_cluster_files_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::string File(const char* name) const { return ClusterDir(dir_) + "/" + name; }

  std::vector<std::string> Entries() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(ClusterDir(dir_).c_str())) {
      while (dirent* e = ::readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.push_back(e->d_name);
      ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  static mode_t Mode(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st.st_mode & 07777;
  }

  void Overwrite(const char* name, const std::string& bytes) { ASSERT_TRUE(WritePrivateFile(File(name), bytes).ok()); }

  // Loading fails, and the message names `file`. A file that is there but
  // wrong is no NotFound (that means "no cluster"); a missing one may be.
  void ExpectLoadFails(std::string_view file, bool missing = false) {
    auto loaded = LoadClusterMaterial(dir_, kNow);
    ASSERT_FALSE(loaded.ok()) << "loaded although " << file << " is wrong";
    if (!missing) {
      EXPECT_NE(loaded.status().code(), Status::Code::kNotFound);
    }
    EXPECT_TRUE(Contains(loaded.status().message(), file)) << loaded.status().ToString();
  }

  std::string dir_;
};

TEST_F(ClusterFilesTest, RoundTripWithTheCaKey) {
  ClusterMaterial m = MakeMaterial();
  ASSERT_TRUE(m.holds_ca_key());
  EXPECT_FALSE(HasClusterMaterial(dir_));
  ASSERT_TRUE(SaveClusterMaterial(dir_, m).ok());
  EXPECT_TRUE(HasClusterMaterial(dir_));
  EXPECT_EQ(Entries(), (std::vector<std::string>{"ca.crt", "ca.key", "keyring", "node.crt", "node.key"}));
  ClusterMaterial loaded = Must(LoadClusterMaterial(dir_, kNow));
  ExpectSameMaterial(loaded, m);
  // A trailing slash on the data dir names the same place.
  ExpectSameMaterial(Must(LoadClusterMaterial(dir_ + "/", kNow)), m);
  EXPECT_EQ(ClusterDir(dir_ + "//"), ClusterDir(dir_));
}

TEST_F(ClusterFilesTest, RoundTripWithoutTheCaKey) {
  ClusterMaterial m = MakeMaterial();
  m.ca_key_pem.clear();
  ASSERT_FALSE(m.holds_ca_key());
  ASSERT_TRUE(SaveClusterMaterial(dir_, m).ok());
  EXPECT_EQ(Entries(), (std::vector<std::string>{"ca.crt", "keyring", "node.crt", "node.key"}));
  ClusterMaterial loaded = Must(LoadClusterMaterial(dir_, kNow));
  ExpectSameMaterial(loaded, m);
  EXPECT_FALSE(loaded.holds_ca_key());
}

TEST_F(ClusterFilesTest, DirectoryIs0700AndEveryFile0600) {
  for (mode_t umask : {mode_t{022}, mode_t{0}}) {
    SCOPED_TRACE(umask);
    std::filesystem::remove_all(ClusterDir(dir_));
    mode_t old = ::umask(umask);
    Status saved = SaveClusterMaterial(dir_, MakeMaterial());
    ::umask(old);
    ASSERT_TRUE(saved.ok()) << saved.ToString();
    EXPECT_EQ(Mode(ClusterDir(dir_)), 0700u);
    std::vector<std::string> entries = Entries();
    EXPECT_EQ(entries.size(), 5u);  // no temporary left behind
    for (const std::string& name : entries) EXPECT_EQ(Mode(ClusterDir(dir_) + "/" + name), 0600u) << name;
  }
  // Saved again over existing files: still 0600.
  ASSERT_TRUE(SaveClusterMaterial(dir_, MakeMaterial()).ok());
  for (const std::string& name : Entries()) EXPECT_EQ(Mode(ClusterDir(dir_) + "/" + name), 0600u) << name;
  EXPECT_EQ(Entries().size(), 5u);
}

TEST_F(ClusterFilesTest, NotFoundWithoutNodeCrt) {
  auto none = LoadClusterMaterial(dir_, kNow);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Status::Code::kNotFound);
  auto no_dir = LoadClusterMaterial(dir_ + "/does-not-exist", kNow);
  EXPECT_EQ(no_dir.status().code(), Status::Code::kNotFound);
  // Every other file present, node.crt missing (as after a crash before the
  // last write): not enrolled.
  ASSERT_TRUE(SaveClusterMaterial(dir_, MakeMaterial()).ok());
  ASSERT_EQ(::unlink(File("node.crt").c_str()), 0);
  EXPECT_FALSE(HasClusterMaterial(dir_));
  auto partial = LoadClusterMaterial(dir_, kNow);
  ASSERT_FALSE(partial.ok());
  EXPECT_EQ(partial.status().code(), Status::Code::kNotFound);
  EXPECT_TRUE(Contains(partial.status().message(), "node.crt")) << partial.status().ToString();
}

TEST_F(ClusterFilesTest, RefusesANodeKeyThatDoesNotMatchNodeCrt) {
  ClusterMaterial m = MakeMaterial();
  ASSERT_TRUE(SaveClusterMaterial(dir_, m).ok());
  Overwrite("node.key", Must(GenerateKeyPem()));
  ExpectLoadFails("node.key");
  // The CA's key in node.key does not pass either.
  Overwrite("node.key", m.ca_key_pem);
  ExpectLoadFails("node.key");
  Overwrite("node.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  ExpectLoadFails("node.key");
  ASSERT_EQ(::unlink(File("node.key").c_str()), 0);
  ExpectLoadFails("node.key", /*missing=*/true);
}

TEST_F(ClusterFilesTest, RefusesANodeCrtFromAnotherCa) {
  ClusterMaterial m = MakeMaterial();
  ASSERT_TRUE(SaveClusterMaterial(dir_, m).ok());
  // The same key and node id, signed by another cluster's CA.
  ClusterId other_cluster = Must(RandomNodeId());
  CaMaterial other = Must(CreateClusterCa(other_cluster, hours(24 * 365), kNow));
  IssuedCert foreign = Must(SignNodeCert(other, other_cluster, Must(MakeCsr(m.key_pem, kNode, "n")), NodeRole::kScanner, "lab", hours(24), kNow));
  Overwrite("node.crt", foreign.cert_pem);
  ExpectLoadFails("node.crt");
  // A node.crt that is the CA itself, or no certificate at all.
  Overwrite("node.crt", m.ca_pem);
  ExpectLoadFails("node.crt");
  Overwrite("node.crt", "garbage");
  ExpectLoadFails("node.crt");
}

TEST_F(ClusterFilesTest, RefusesAnExpiredNodeCrt) {
  ClusterMaterial m = MakeMaterial();
  ASSERT_TRUE(SaveClusterMaterial(dir_, m).ok());
  auto later = LoadClusterMaterial(dir_, kNow + 31LL * 24 * 3600);
  ASSERT_FALSE(later.ok());
  EXPECT_TRUE(Contains(later.status().message(), "node.crt")) << later.status().ToString();
}

TEST_F(ClusterFilesTest, RefusesACaKeyThatDoesNotMatchCaCrt) {
  ASSERT_TRUE(SaveClusterMaterial(dir_, MakeMaterial()).ok());
  Overwrite("ca.key", Must(GenerateKeyPem()));
  ExpectLoadFails("ca.key");
}

TEST_F(ClusterFilesTest, RefusesACorruptedKeyring) {
  ClusterMaterial m = MakeMaterial();
  ASSERT_TRUE(SaveClusterMaterial(dir_, m).ok());
  std::string good = Must(ReadSmallFile(File("keyring"), 1 << 20));
  for (const std::string& bad : {std::string("garbage!"), std::string(), good.substr(0, good.size() - 8),
                                 good.substr(0, 5), good + "12345678", std::string(128 * 1024, '\0')}) {
    SCOPED_TRACE(bad.size());
    Overwrite("keyring", bad);
    ExpectLoadFails("keyring");
  }
  // One byte changed somewhere: refused or a valid keyring, never a crash.
  for (size_t at = 0; at < good.size(); ++at) {
    std::string flipped = good;
    flipped[at] = static_cast<char>(flipped[at] ^ 0x80);
    Overwrite("keyring", flipped);
    auto loaded = LoadClusterMaterial(dir_, kNow);
    if (loaded.ok()) {
      EXPECT_TRUE(loaded->keyring.Validate().ok());
    } else {
      EXPECT_TRUE(Contains(loaded.status().message(), "keyring")) << loaded.status().ToString();
    }
  }
  ASSERT_EQ(::unlink(File("keyring").c_str()), 0);
  ExpectLoadFails("keyring", /*missing=*/true);
  Overwrite("keyring", good);
  ExpectSameMaterial(Must(LoadClusterMaterial(dir_, kNow)), m);
}

TEST_F(ClusterFilesTest, SaveKeyringReplacesTheKeyring) {
  ClusterMaterial m = MakeMaterial();
  ASSERT_TRUE(SaveClusterMaterial(dir_, m).ok());
  Keyring rotated = Must(NewKeyring(kNow + 100));
  rotated.keys.push_back(m.keyring.keys[0]);
  ASSERT_TRUE(SaveKeyring(dir_, rotated).ok());
  EXPECT_EQ(Mode(File("keyring")), 0600u);
  EXPECT_EQ(Entries().size(), 5u);
  ClusterMaterial loaded = Must(LoadClusterMaterial(dir_, kNow));
  ExpectSameKeyring(loaded.keyring, rotated);
  // Everything else as it was.
  m.keyring = rotated;
  ExpectSameMaterial(loaded, m);
  // An invalid keyring is not written; the last one stays.
  EXPECT_FALSE(SaveKeyring(dir_, Keyring{}).ok());
  Keyring bad_primary = rotated;
  bad_primary.primary = 0;
  EXPECT_FALSE(SaveKeyring(dir_, bad_primary).ok());
  ExpectSameKeyring(Must(LoadClusterMaterial(dir_, kNow)).keyring, rotated);
}

}  // namespace
}  // namespace ndo::mesh
