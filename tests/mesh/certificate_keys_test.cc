// CertificateKeys against a real cluster CA (pki.h): what it signs verifies
// by the signer's certificate, and nothing else does: another key, a
// revoked or expired signer, another cluster's certificate, an unknown
// signer (NotFound, so the work core fetches the certificate), garbage.
#include "mesh/security/certificate_keys.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "mesh/security/pki.h"

namespace ndo::mesh {
namespace {

using std::chrono::hours;

constexpr int64_t kNow = 1700000000;
constexpr auto kCaValidity = hours(24 * 365 * 10);
constexpr auto kNodeValidity = hours(24 * 30);

const ClusterId kCluster{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
const ClusterId kOtherCluster{0x1111111111111111ULL, 0x2222222222222222ULL};
const NodeId kA{0xaaULL, 1}, kB{0xbbULL, 2}, kC{0xccULL, 3};

template <typename T>
T Must(Result<T> r) {
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  return std::move(*r);
}

struct Member {
  std::string key_pem, cert_pem;
};

Member Enrol(const CaMaterial& ca, const ClusterId& cluster, const NodeId& node, NodeRole role,
             const std::string& vantage, int64_t now = kNow, std::string key = {}) {
  Member m;
  m.key_pem = key.empty() ? Must(GenerateKeyPem()) : key;
  std::string csr = Must(MakeCsr(m.key_pem, node, "n"));
  m.cert_pem = Must(SignNodeCert(ca, cluster, csr, role, vantage, kNodeValidity, now)).cert_pem;
  return m;
}

class CertificateKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = Must(CreateClusterCa(kCluster, kCaValidity, kNow));
    a_ = Enrol(ca_, kCluster, kA, NodeRole::kOperator, "internet");
    b_ = Enrol(ca_, kCluster, kB, NodeRole::kScanner, "dmz");
    c_ = Enrol(ca_, kCluster, kC, NodeRole::kScanner, "internet");
  }

  // The keys of `m` as its daemon would build them; learnt certificates
  // are recorded in learnt_.
  std::unique_ptr<CertificateKeys> KeysOf(const Member& m, size_t max = kMaxKnownCertificates) {
    CertificateKeysOptions o;
    o.key_pem = m.key_pem;
    o.cert_pem = m.cert_pem;
    o.ca_pem = ca_.cert_pem;
    o.now_unix = [this] { return now_; };
    o.is_revoked = [this](const NodeId& n) { return revoked_.count(n) > 0; };
    o.on_learn = [this](const NodeId& n, const std::string& pem) { learnt_.emplace_back(n, pem); };
    o.max_certificates = max;
    return Must(CertificateKeys::Create(std::move(o)));
  }

  CaMaterial ca_;
  Member a_, b_, c_;
  int64_t now_ = kNow;
  std::set<NodeId> revoked_;
  std::vector<std::pair<NodeId, std::string>> learnt_;
};

TEST_F(CertificateKeysTest, SignedByOneVerifiesAtAnotherWithTheSignersRoleAndVantage) {
  auto a = KeysOf(a_), b = KeysOf(b_);
  EXPECT_EQ(a->node(), kA);
  std::string sig = a->Sign("ndo-scan-definition-v1");
  ASSERT_EQ(sig.size(), 64u);
  ASSERT_TRUE(b->Learn(a_.cert_pem).ok());
  auto info = b->Verify(kA, "ndo-scan-definition-v1", sig);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_TRUE(info->is_operator);
  EXPECT_EQ(info->vantage, "internet");

  std::string by_b = b->Sign("done");
  ASSERT_TRUE(a->Learn(b_.cert_pem).ok());
  auto scanner = a->Verify(kB, "done", by_b);
  ASSERT_TRUE(scanner.ok()) << scanner.status().ToString();
  EXPECT_FALSE(scanner->is_operator);
  EXPECT_EQ(scanner->vantage, "dmz");
}

TEST_F(CertificateKeysTest, ItsOwnCertificateIsKnownFromTheStart) {
  auto a = KeysOf(a_);
  EXPECT_EQ(a->known(), 1u);
  EXPECT_TRUE(a->Verify(kA, "m", a->Sign("m")).ok());
  EXPECT_EQ(a->Certificate(kA), a_.cert_pem);
}

TEST_F(CertificateKeysTest, ASignatureByAnotherKeyOrOverOtherBytesDoesNotVerify) {
  auto a = KeysOf(a_), b = KeysOf(b_), c = KeysOf(c_);
  ASSERT_TRUE(a->Learn(b_.cert_pem).ok());
  ASSERT_TRUE(a->Learn(c_.cert_pem).ok());
  // c's signature presented as b's: the result in another node's name.
  auto r = a->Verify(kB, "done", c->Sign("done"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  // b's signature over other bytes.
  r = a->Verify(kB, "done 2", b->Sign("done 1"));
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  // Every single bit of the signature matters.
  std::string sig = b->Sign("done");
  for (size_t i = 0; i < sig.size(); ++i) {
    std::string bad = sig;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    EXPECT_EQ(a->Verify(kB, "done", bad).status().code(), Status::Code::kInvalidArgument) << i;
  }
  // Wrong lengths, empty included.
  EXPECT_EQ(a->Verify(kB, "done", "").status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(a->Verify(kB, "done", sig + "x").status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(a->Verify(kB, "done", sig.substr(0, 63)).status().code(), Status::Code::kInvalidArgument);
  EXPECT_TRUE(a->Verify(kB, "done", sig).ok());
}

TEST_F(CertificateKeysTest, ARevokedSignerIsRefusedFromTheMomentOfItsRevocation) {
  auto a = KeysOf(a_), b = KeysOf(b_);
  ASSERT_TRUE(a->Learn(b_.cert_pem).ok());
  std::string sig = b->Sign("done");
  ASSERT_TRUE(a->Verify(kB, "done", sig).ok());
  revoked_.insert(kB);  // learnt before the revocation: checked at every Verify
  auto r = a->Verify(kB, "done", sig);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kPermissionDenied);
  EXPECT_NE(r.status().message().find("revoked"), std::string::npos) << r.status().message();
  // And a revoked node's certificate is not learnt anew.
  auto c = KeysOf(c_);
  EXPECT_EQ(c->Learn(b_.cert_pem).code(), Status::Code::kPermissionDenied);
  EXPECT_EQ(c->Verify(kB, "done", sig).status().code(), Status::Code::kNotFound);
}

TEST_F(CertificateKeysTest, AnExpiredCertificateNoLongerVerifies) {
  auto a = KeysOf(a_), b = KeysOf(b_);
  ASSERT_TRUE(a->Learn(b_.cert_pem).ok());
  std::string sig = b->Sign("done");
  now_ = kNow + std::chrono::duration_cast<std::chrono::seconds>(kNodeValidity).count() - 1;
  EXPECT_TRUE(a->Verify(kB, "done", sig).ok());
  now_ += 2;
  auto r = a->Verify(kB, "done", sig);
  EXPECT_EQ(r.status().code(), Status::Code::kPermissionDenied);
  EXPECT_NE(r.status().message().find("expired"), std::string::npos) << r.status().message();
}

TEST_F(CertificateKeysTest, AnotherClustersCertificateIsNotLearnt) {
  CaMaterial other = Must(CreateClusterCa(kOtherCluster, kCaValidity, kNow));
  // Same node id, its own CA: what a member of another cluster (or an
  // attacker with a CA of its own) would hand over.
  Member foreign = Enrol(other, kOtherCluster, kB, NodeRole::kOperator, "dmz");
  auto a = KeysOf(a_);
  Status s = a->Learn(foreign.cert_pem);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(a->known(), 1u);
  EXPECT_TRUE(learnt_.empty());
  // A signature by its key then finds no certificate of kB.
  CertificateKeysOptions o;
  o.key_pem = foreign.key_pem;
  o.cert_pem = foreign.cert_pem;
  o.ca_pem = other.cert_pem;
  o.now_unix = [] { return kNow; };
  o.is_revoked = [](const NodeId&) { return false; };
  auto f = Must(CertificateKeys::Create(std::move(o)));
  EXPECT_EQ(a->Verify(kB, "x", f->Sign("x")).status().code(), Status::Code::kNotFound);
  // Nor is a CA certificate (ours) a node certificate.
  EXPECT_FALSE(a->Learn(ca_.cert_pem).ok());
}

TEST_F(CertificateKeysTest, AnUnknownSignerIsNotFound) {
  auto a = KeysOf(a_), b = KeysOf(b_);
  auto r = a->Verify(kB, "done", b->Sign("done"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kNotFound);
  EXPECT_EQ(a->Certificate(kB), std::nullopt);
  // Once learnt (what the certificate fetch brings), the same record verifies.
  ASSERT_TRUE(a->Learn(*b->Certificate(kB)).ok());
  EXPECT_TRUE(a->Verify(kB, "done", b->Sign("done")).ok());
}

TEST_F(CertificateKeysTest, GarbageIsAnErrorNeverACrash) {
  auto a = KeysOf(a_);
  for (std::string bad : {std::string(), std::string("not pem"), std::string(kMaxPemBytes + 1, 'A'),
                          std::string("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
                          a_.key_pem, b_.cert_pem.substr(0, b_.cert_pem.size() / 2)}) {
    Status s = a->Learn(bad);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.code(), Status::Code::kNotFound);
  }
  EXPECT_EQ(a->known(), 1u);
  EXPECT_TRUE(learnt_.empty());
}

TEST_F(CertificateKeysTest, CreateChecksTheKeyAndTheCertificate) {
  CertificateKeysOptions o;
  o.key_pem = b_.key_pem;  // not a's key
  o.cert_pem = a_.cert_pem;
  o.ca_pem = ca_.cert_pem;
  o.now_unix = [] { return kNow; };
  o.is_revoked = [](const NodeId&) { return false; };
  EXPECT_FALSE(CertificateKeys::Create(o).ok());
  o.key_pem = a_.key_pem;
  o.ca_pem = Must(CreateClusterCa(kOtherCluster, kCaValidity, kNow)).cert_pem;  // not a's CA
  EXPECT_FALSE(CertificateKeys::Create(o).ok());
  o.ca_pem = ca_.cert_pem;
  o.is_revoked = nullptr;
  EXPECT_FALSE(CertificateKeys::Create(o).ok());
  o.is_revoked = [](const NodeId&) { return false; };
  EXPECT_TRUE(CertificateKeys::Create(o).ok());
}

TEST_F(CertificateKeysTest, LearningIsIdempotentAndReportsEachNewCertificateOnce) {
  auto a = KeysOf(a_);
  ASSERT_TRUE(a->Learn(b_.cert_pem).ok());
  ASSERT_TRUE(a->Learn(b_.cert_pem).ok());
  ASSERT_TRUE(a->Learn(a_.cert_pem).ok());  // its own: known already
  ASSERT_EQ(learnt_.size(), 1u);
  EXPECT_EQ(learnt_[0].first, kB);
  EXPECT_EQ(learnt_[0].second, b_.cert_pem);
  EXPECT_EQ(a->known(), 2u);
}

TEST_F(CertificateKeysTest, OfTwoCertificatesOfOneNodeTheOneIssuedLaterIsKeptInAnyOrder) {
  Member renewed = Enrol(ca_, kCluster, kB, NodeRole::kScanner, "dmz2", kNow + 60);
  auto x = KeysOf(a_), y = KeysOf(c_);
  ASSERT_TRUE(x->Learn(b_.cert_pem).ok());
  ASSERT_TRUE(x->Learn(renewed.cert_pem).ok());
  ASSERT_TRUE(y->Learn(renewed.cert_pem).ok());
  ASSERT_TRUE(y->Learn(b_.cert_pem).ok());
  EXPECT_EQ(x->Certificate(kB), renewed.cert_pem);
  EXPECT_EQ(y->Certificate(kB), renewed.cert_pem);
  now_ = kNow + 120;
  auto r = CertificateKeys::Create([&] {
    CertificateKeysOptions o;
    o.key_pem = renewed.key_pem;
    o.cert_pem = renewed.cert_pem;
    o.ca_pem = ca_.cert_pem;
    o.now_unix = [this] { return now_; };
    o.is_revoked = [](const NodeId&) { return false; };
    return o;
  }());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto info = x->Verify(kB, "m", (*r)->Sign("m"));
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->vantage, "dmz2");
}

TEST_F(CertificateKeysTest, TheCacheIsBoundedAndMakesRoomByDroppingRevokedCertificates) {
  auto a = KeysOf(a_, /*max=*/2);
  ASSERT_TRUE(a->Learn(b_.cert_pem).ok());
  Status full = a->Learn(c_.cert_pem);
  EXPECT_EQ(full.code(), Status::Code::kUnavailable);
  EXPECT_EQ(a->known(), 2u);
  revoked_.insert(kB);
  EXPECT_TRUE(a->Learn(c_.cert_pem).ok());
  EXPECT_EQ(a->known(), 2u);
  EXPECT_EQ(a->Certificate(kB), std::nullopt);
  EXPECT_TRUE(a->Certificate(kC).has_value());
}

}  // namespace
}  // namespace ndo::mesh
