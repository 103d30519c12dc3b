// The daemon's record keys over a real store: a certificate learnt is kept
// and known again after a restart (no fetch needed), one revoked or broken
// meanwhile is dropped at start, and reloading writes nothing back.
#include "mesh/agent/record_keys_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <string>

#include "mesh/security/pki.h"

namespace ndo::mesh {
namespace {

constexpr int64_t kNow = 1700000000;
const ClusterId kCluster{7, 8};
const NodeId kSelf{1, 1}, kPeer{2, 2}, kOther{3, 3};

template <typename T>
T Must(Result<T> r) {
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  return std::move(*r);
}

class RecordKeysStore : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/ndo-record-keys-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    ca_ = Must(CreateClusterCa(kCluster, std::chrono::hours(24 * 365), kNow));
    self_ = Enrol(kSelf, NodeRole::kScanner);
    peer_ = Enrol(kPeer, NodeRole::kOperator);
    other_ = Enrol(kOther, NodeRole::kScanner);
    store_ = Must(Store::Open(dir_));
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  ClusterMaterial Enrol(const NodeId& node, NodeRole role) {
    ClusterMaterial m;
    m.cluster = kCluster;
    m.node = node;
    m.ca_pem = ca_.cert_pem;
    m.key_pem = Must(GenerateKeyPem());
    m.cert_pem = Must(SignNodeCert(ca_, kCluster, Must(MakeCsr(m.key_pem, node, "n")), role, "lab",
                                   std::chrono::hours(24), kNow))
                     .cert_pem;
    return m;
  }

  std::unique_ptr<CertificateKeys> Open(StoredKeysReport* report = nullptr) {
    return Must(OpenRecordKeys(
        *store_, self_, [this](const NodeId& n) { return revoked_.count(n) > 0; }, [] { return kNow; }, report));
  }

  size_t Kept() {
    size_t n = 0;
    EXPECT_TRUE(store_->ForEachMeta(kCertKeyPrefix, [&](std::string_view, std::string_view) { return ++n, true; }).ok());
    return n;
  }

  void Restart() {
    store_.reset();
    store_ = Must(Store::Open(dir_));
  }

  std::string dir_;
  CaMaterial ca_;
  ClusterMaterial self_, peer_, other_;
  std::set<NodeId> revoked_;
  std::unique_ptr<Store> store_;
};

TEST_F(RecordKeysStore, ALearntCertificateIsKnownAgainAfterARestart) {
  auto peer = Must(OpenRecordKeys(*store_, peer_, [](const NodeId&) { return false; }, [] { return kNow; }));
  std::string sig = peer->Sign("record");
  {
    auto keys = Open();
    EXPECT_EQ(keys->Verify(kPeer, "record", sig).status().code(), Status::Code::kNotFound);
    ASSERT_TRUE(keys->Learn(peer_.cert_pem).ok());
    EXPECT_TRUE(keys->Verify(kPeer, "record", sig).ok());
  }
  // peer's own keys wrote nothing: it learnt nothing.
  EXPECT_EQ(store_->GetMeta(std::string(kCertKeyPrefix) + kPeer.Hex()).value(), peer_.cert_pem);
  EXPECT_EQ(Kept(), 1u);
  Restart();
  StoredKeysReport report;
  auto keys = Open(&report);
  EXPECT_EQ(report.reloaded, 1u);
  EXPECT_EQ(report.dropped, 0u);
  EXPECT_EQ(keys->known(), 2u);
  auto info = keys->Verify(kPeer, "record", sig);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_TRUE(info->is_operator);
  EXPECT_EQ(Kept(), 1u);  // reloading wrote nothing more
}

TEST_F(RecordKeysStore, KeptCertificatesThatNoLongerCheckOutAreDroppedAtStart) {
  {
    auto keys = Open();
    ASSERT_TRUE(keys->Learn(peer_.cert_pem).ok());
    ASSERT_TRUE(keys->Learn(other_.cert_pem).ok());
  }
  ASSERT_TRUE(store_->PutMeta(std::string(kCertKeyPrefix) + "garbage", "not a certificate").ok());
  ASSERT_EQ(Kept(), 3u);
  revoked_.insert(kOther);
  Restart();
  StoredKeysReport report;
  auto keys = Open(&report);
  EXPECT_EQ(report.reloaded, 1u);
  EXPECT_EQ(report.dropped, 2u);
  EXPECT_EQ(Kept(), 1u);
  EXPECT_TRUE(keys->Certificate(kPeer).has_value());
  EXPECT_FALSE(keys->Certificate(kOther).has_value());
}

// The CA holder's store records each issued serial under "mesh.cert.<id>"
// (enrolment.cc): the record keys neither read nor drop those.
TEST_F(RecordKeysStore, TheEnrolmentAuthoritysIssuedSerialsAreLeftAlone) {
  const std::string issued = "mesh.cert." + kOther.Hex();
  ASSERT_TRUE(store_->PutMeta(issued, "1f2e3d").ok());
  StoredKeysReport report;
  {
    auto keys = Open(&report);
    ASSERT_TRUE(keys->Learn(peer_.cert_pem).ok());
  }
  EXPECT_EQ(report.dropped, 0u);
  Restart();
  auto keys = Open(&report);
  EXPECT_EQ(report.reloaded, 1u);
  EXPECT_EQ(report.dropped, 0u);
  EXPECT_EQ(store_->GetMeta(issued).value(), "1f2e3d");
}

TEST_F(RecordKeysStore, ABadOwnKeyIsAnErrorAtStart) {
  ClusterMaterial broken = self_;
  broken.key_pem = peer_.key_pem;
  auto keys = OpenRecordKeys(*store_, broken, [](const NodeId&) { return false; }, [] { return kNow; });
  EXPECT_FALSE(keys.ok());
}

}  // namespace
}  // namespace ndo::mesh
