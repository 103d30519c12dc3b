// TlsClientSession, ParseCertificate and EvaluateChain against a private PKI
// (tests/support/test_certs.h), with the handshake pumped in memory between
// the client and a TestTlsServerSession: no sockets, a fixed `now`.
#include "scan/service/tls_session.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdio>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "scan/service/evidence.h"
#include "support/test_certs.h"

// g++ 12 warns about members left out of a designated initializer (CertSpec).
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace ndo {
namespace {

using testing::CertSpec;
using testing::KeyType;
using testing::MakeCert;
using testing::MakeKey;
using testing::PkeyPtr;
using testing::TestTlsServerSession;
using testing::TlsServerOptions;
using testing::ToDer;
using testing::X509Ptr;
using State = TlsClientSession::State;

// Unix seconds (UTC midnight).
constexpr int64_t k2010 = 1262304000;       // 2010-01-01
constexpr int64_t k2015Jun = 1433116800;    // 2015-06-01
constexpr int64_t k2016Jun30 = 1467244800;  // 2016-06-30
constexpr int64_t k2018Mar = 1521072000;    // 2018-03-15
constexpr int64_t k2019Mar = 1552608000;    // 2019-03-15
constexpr int64_t k2020 = 1577836800;       // 2020-01-01
constexpr int64_t k2026 = 1767225600;       // 2026-01-01
constexpr int64_t kNow = 1795564800;        // 2026-11-25, the scan's time
constexpr int64_t k2027 = 1798761600;       // 2027-01-01
constexpr int64_t k2027Jun = 1811808000;    // 2027-06-01
constexpr int64_t k2028Jun = 1843430400;    // 2028-06-01
constexpr int64_t k2030 = 1893456000;       // 2030-01-01
constexpr int64_t k2040 = 2208988800;       // 2040-01-01

const char* const kDfnO = "Verein zur Foerderung eines Deutschen Forschungsnetzes e. V.";

int YearOf(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  return tm.tm_year + 1900;
}

std::array<uint8_t, 32> Sha256(const std::string& data) {
  std::array<uint8_t, 32> md{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md.data(), &len, EVP_sha256(), nullptr);
  return md;
}

// A private PKI, made once for the whole suite (RSA key generation is slow):
// three trusted roots of different organisations, one intermediate, and a
// rogue root that is not in the CA file.
struct Pki {
  PkeyPtr dfn_key, isrg_key, r3_key, unusual_key, rogue_key;
  X509Ptr dfn_root, isrg_root, r3, unusual_root, rogue_root;
  PkeyPtr rsa_leaf_key, ec_leaf_key, ed_leaf_key, rsa1024_key;
  std::string ca_file;

  Pki() {
    dfn_key = MakeKey(KeyType::kRsa2048);
    isrg_key = MakeKey(KeyType::kRsa2048);
    r3_key = MakeKey(KeyType::kEcP256);
    unusual_key = MakeKey(KeyType::kEd25519);
    rogue_key = MakeKey(KeyType::kEcP256);
    rsa_leaf_key = MakeKey(KeyType::kRsa2048);
    ec_leaf_key = MakeKey(KeyType::kEcP256);
    ed_leaf_key = MakeKey(KeyType::kEd25519);
    rsa1024_key = MakeKey(KeyType::kRsa1024);
    dfn_root = MakeCert({.cn = "DFN-Verein Global Issuing CA", .o = kDfnO, .ou = "DFN-PKI", .country = "DE",
                         .key = dfn_key.get(), .not_before = k2010, .not_after = k2040, .serial_hex = "D0F0",
                         .is_ca = true});
    isrg_root = MakeCert({.cn = "ISRG Test Root X1", .o = "Internet Security Research Group", .country = "US",
                          .key = isrg_key.get(), .not_before = k2010, .not_after = k2040, .serial_hex = "1524",
                          .is_ca = true});
    r3 = MakeCert({.cn = "R3 Test", .o = "Let's Encrypt", .country = "US", .key = r3_key.get(),
                   .issuer = isrg_root.get(), .issuer_key = isrg_key.get(), .not_before = k2020,
                   .not_after = k2030, .serial_hex = "0312", .is_ca = true});
    unusual_root = MakeCert({.cn = "Unusual CA Root", .o = "Unusual CA", .ou = "Odd Certificates Dept.",
                             .key = unusual_key.get(), .not_before = k2010, .not_after = k2040,
                             .serial_hex = "0DD0", .is_ca = true});
    rogue_root = MakeCert({.cn = "Rogue Root", .o = "Nobody Trusts Us", .key = rogue_key.get(),
                           .not_before = k2010, .not_after = k2040, .serial_hex = "BAD0", .is_ca = true});
    ca_file = ::testing::TempDir() + "ndo_tls_test_ca_" + std::to_string(getpid()) + ".pem";
    testing::WriteCaFile(ca_file, {dfn_root.get(), isrg_root.get(), unusual_root.get()});
  }
  ~Pki() { std::remove(ca_file.c_str()); }
};

Pki* pki = nullptr;

class TlsSessionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (pki == nullptr) pki = new Pki();
  }
  static void TearDownTestSuite() {
    delete pki;
    pki = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(pki->dfn_root && pki->isrg_root && pki->r3 && pki->unusual_root && pki->rogue_root)
        << testing::OpenSslErrors();
    auto ctx = TlsClientContext::Create(pki->ca_file);
    ASSERT_TRUE(ctx.ok()) << ctx.status().message();
    ctx_ = *ctx;
  }

  // A leaf of the Let's Encrypt-like hierarchy (EC key, signed by R3).
  X509Ptr LeLeaf(int64_t not_before = k2026, int64_t not_after = k2027,
                 std::vector<std::string> sans = {"DNS:www.example.test", "DNS:example.test"}) {
    return MakeCert({.cn = "www.example.test", .key = pki->ec_leaf_key.get(), .issuer = pki->r3.get(),
                     .issuer_key = pki->r3_key.get(), .not_before = not_before, .not_after = not_after,
                     .sans = std::move(sans), .serial_hex = "0452"});
  }

  struct Outcome {
    State state = State::kHandshaking;
    TlsEvidence ev;
    std::string server_name;  // the SNI the server saw
  };

  // Moves bytes between `client` and `server` until the client is done,
  // failed, or nobody has anything more to say.
  static void Pump(TlsClientSession& client, TestTlsServerSession& server) {
    for (int round = 0; round < 64; ++round) {
      std::string to_server = client.TakeOutput();
      if (!to_server.empty()) server.OnData(to_server);
      std::string to_client = server.TakeOutput();
      if (!to_client.empty()) client.OnData(to_client);
      if (client.state() != State::kHandshaking) {
        std::string last = client.TakeOutput();  // the client's Finished
        if (!last.empty()) server.OnData(last);
        return;
      }
      if (to_server.empty() && to_client.empty()) return;
    }
  }

  Outcome Handshake(EVP_PKEY* key, const std::vector<X509*>& chain, const std::string& sni,
                    const TlsServerOptions& options = {}, int64_t now = kNow) {
    Outcome out;
    auto server = TestTlsServerSession::Create(key, chain, options);
    EXPECT_TRUE(server) << testing::OpenSslErrors();
    if (!server) return out;
    auto client = TlsClientSession::Create(ctx_, sni);
    EXPECT_TRUE(client.ok()) << client.status().message();
    if (!client.ok()) return out;
    Pump(**client, *server);
    out.state = (*client)->state();
    out.ev = (*client)->Finish(static_cast<time_t>(now));
    out.server_name = server->servername();
    EXPECT_EQ(out.state, State::kDone) << out.ev.error << " / server: " << server->error();
    return out;
  }

  std::shared_ptr<TlsClientContext> ctx_;
};

// ---------------------------------------------------------------------------
// Handshakes and the recorded fields

TEST_F(TlsSessionTest, TrustedChainRecordsEveryField) {
  X509Ptr leaf = MakeCert({.cn = "www.example.test", .o = "Example GmbH", .ou = "Web Operations",
                           .key = pki->ec_leaf_key.get(), .issuer = pki->r3.get(), .issuer_key = pki->r3_key.get(),
                           .not_before = k2026, .not_after = k2027,
                           .sans = {"DNS:www.example.test", "DNS:example.test", "IP:192.0.2.10", "IP:2001:db8::1",
                                    "email:hostmaster@example.test", "URI:https://example.test/"},
                           .serial_hex = "7F3A9C00D1E2F30405060708090A0B0C"});
  ASSERT_TRUE(leaf);
  Outcome o = Handshake(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()}, "www.example.test");
  const TlsEvidence& ev = o.ev;
  EXPECT_EQ(ev.error, "");
  EXPECT_EQ(ev.version, "TLSv1.3");
  EXPECT_FALSE(ev.cipher.empty());
  EXPECT_EQ(ev.cipher.rfind("TLS_", 0), 0u) << ev.cipher;
  EXPECT_EQ(ev.sni, "www.example.test");
  EXPECT_EQ(o.server_name, "www.example.test");
  EXPECT_EQ(ev.verdict, TlsVerdict::kTrusted) << ev.verify_detail;
  EXPECT_EQ(ev.verify_detail, "ok");

  ASSERT_EQ(ev.chain.size(), 2u);  // leaf first, then the intermediate; the root is not sent
  const CertificateInfo& c = ev.chain[0];
  EXPECT_EQ(c.subject_cn, "www.example.test");
  EXPECT_EQ(c.subject_o, "Example GmbH");
  EXPECT_EQ(c.subject_ou, "Web Operations");
  EXPECT_EQ(c.issuer_cn, "R3 Test");
  EXPECT_EQ(c.issuer_o, "Let's Encrypt");
  EXPECT_EQ(c.issuer_ou, "");
  EXPECT_EQ(c.sans, (std::vector<std::string>{"DNS:www.example.test", "DNS:example.test", "IP:192.0.2.10",
                                              "IP:2001:db8::1", "email:hostmaster@example.test",
                                              "URI:https://example.test/"}));
  EXPECT_EQ(c.serial_hex, "7F3A9C00D1E2F30405060708090A0B0C");
  EXPECT_EQ(c.not_before, k2026);
  EXPECT_EQ(c.not_after, k2027);
  EXPECT_EQ(c.signature_algorithm, "ecdsa-with-SHA256");
  EXPECT_EQ(c.key_type, "EC");
  EXPECT_EQ(c.key_bits, 256);
  EXPECT_FALSE(c.self_signed);
  EXPECT_EQ(c.der, ToDer(leaf.get()));
  EXPECT_EQ(c.sha256, Sha256(ToDer(leaf.get())));
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  ASSERT_EQ(X509_digest(leaf.get(), EVP_sha256(), md, &md_len), 1);
  ASSERT_EQ(md_len, 32u);
  EXPECT_TRUE(std::equal(c.sha256.begin(), c.sha256.end(), md));

  const CertificateInfo& i = ev.chain[1];
  EXPECT_EQ(i.subject_cn, "R3 Test");
  EXPECT_EQ(i.subject_o, "Let's Encrypt");
  EXPECT_EQ(i.issuer_cn, "ISRG Test Root X1");
  EXPECT_EQ(i.issuer_o, "Internet Security Research Group");
  EXPECT_EQ(i.serial_hex, "0312");
  EXPECT_EQ(i.not_before, k2020);
  EXPECT_EQ(i.not_after, k2030);
  EXPECT_EQ(i.signature_algorithm, "sha256WithRSAEncryption");
  EXPECT_EQ(i.key_type, "EC");
  EXPECT_EQ(i.key_bits, 256);
  EXPECT_FALSE(i.self_signed);
  EXPECT_TRUE(i.sans.empty());
  EXPECT_EQ(i.der, ToDer(pki->r3.get()));
  EXPECT_EQ(i.sha256, Sha256(ToDer(pki->r3.get())));
}

TEST_F(TlsSessionTest, DfnRsaLeafOverTls12) {
  X509Ptr leaf = MakeCert({.cn = "idp.uni-example.de", .o = "Universitaet Example", .ou = "Rechenzentrum",
                           .key = pki->rsa_leaf_key.get(), .issuer = pki->dfn_root.get(),
                           .issuer_key = pki->dfn_key.get(), .not_before = k2026, .not_after = k2027,
                           .sans = {"DNS:idp.uni-example.de"}, .serial_hex = "2BAD1DEA"});
  ASSERT_TRUE(leaf);
  Outcome o = Handshake(pki->rsa_leaf_key.get(), {leaf.get()}, "idp.uni-example.de",
                        {.max_version = TLS1_2_VERSION});
  EXPECT_EQ(o.ev.version, "TLSv1.2");
  EXPECT_NE(o.ev.cipher.find("RSA"), std::string::npos) << o.ev.cipher;
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kTrusted) << o.ev.verify_detail;
  ASSERT_EQ(o.ev.chain.size(), 1u);
  const CertificateInfo& c = o.ev.chain[0];
  EXPECT_EQ(c.issuer_cn, "DFN-Verein Global Issuing CA");
  EXPECT_EQ(c.issuer_o, kDfnO);
  EXPECT_EQ(c.issuer_ou, "DFN-PKI");
  EXPECT_EQ(c.subject_ou, "Rechenzentrum");
  EXPECT_EQ(c.serial_hex, "2BAD1DEA");
  EXPECT_EQ(c.signature_algorithm, "sha256WithRSAEncryption");
  EXPECT_EQ(c.key_type, "RSA");
  EXPECT_EQ(c.key_bits, 2048);
  EXPECT_EQ(c.sans, std::vector<std::string>{"DNS:idp.uni-example.de"});
}

TEST_F(TlsSessionTest, UnusualCaWithEd25519) {
  X509Ptr leaf = MakeCert({.cn = "odd.example.test", .key = pki->ed_leaf_key.get(),
                           .issuer = pki->unusual_root.get(), .issuer_key = pki->unusual_key.get(),
                           .not_before = k2026, .not_after = k2027, .sans = {"DNS:odd.example.test"},
                           .serial_hex = "0D"});
  ASSERT_TRUE(leaf);
  Outcome o = Handshake(pki->ed_leaf_key.get(), {leaf.get()}, "odd.example.test");
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kTrusted) << o.ev.verify_detail;
  ASSERT_EQ(o.ev.chain.size(), 1u);
  const CertificateInfo& c = o.ev.chain[0];
  EXPECT_EQ(c.issuer_cn, "Unusual CA Root");
  EXPECT_EQ(c.issuer_o, "Unusual CA");
  EXPECT_EQ(c.issuer_ou, "Odd Certificates Dept.");
  EXPECT_EQ(c.subject_o, "");
  EXPECT_EQ(c.signature_algorithm, "ED25519");
  EXPECT_EQ(c.key_type, "Ed25519");
  EXPECT_EQ(c.key_bits, 256);  // OpenSSL 3's EVP_PKEY_get_bits for Ed25519
  EXPECT_EQ(c.serial_hex, "0D");
}

// Old servers still hand over their certificates: TLS 1.0, RSA-1024, SHA-1.
TEST_F(TlsSessionTest, OldServerTls10Sha1) {
  X509Ptr leaf = MakeCert({.cn = "legacy.example.test", .key = pki->rsa1024_key.get(),
                           .issuer = pki->dfn_root.get(), .issuer_key = pki->dfn_key.get(), .not_before = k2026,
                           .not_after = k2027, .sans = {"DNS:legacy.example.test"}, .digest = EVP_sha1()});
  ASSERT_TRUE(leaf);
  Outcome o = Handshake(pki->rsa1024_key.get(), {leaf.get()}, "legacy.example.test",
                        {.min_version = TLS1_VERSION, .max_version = TLS1_VERSION});
  EXPECT_EQ(o.ev.version, "TLSv1");
  EXPECT_FALSE(o.ev.cipher.empty());
  ASSERT_EQ(o.ev.chain.size(), 1u);
  EXPECT_EQ(o.ev.chain[0].signature_algorithm, "sha1WithRSAEncryption");
  EXPECT_EQ(o.ev.chain[0].key_bits, 1024);
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kTrusted) << o.ev.verify_detail;
}

TEST_F(TlsSessionTest, IpLiteralIsNotSentAsSni) {
  X509Ptr leaf = LeLeaf(k2026, k2027, {"DNS:www.example.test", "IP:192.0.2.10"});
  Outcome o = Handshake(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()}, "192.0.2.10");
  EXPECT_EQ(o.ev.sni, "");
  EXPECT_EQ(o.server_name, "");
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kTrusted) << o.ev.verify_detail;

  Outcome o6 = Handshake(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()}, "2001:db8::7");
  EXPECT_EQ(o6.ev.sni, "");
  EXPECT_EQ(o6.server_name, "");
}

TEST_F(TlsSessionTest, NoSniWithoutName) {
  X509Ptr leaf = LeLeaf();
  Outcome o = Handshake(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()}, "");
  EXPECT_EQ(o.ev.sni, "");
  EXPECT_EQ(o.server_name, "");
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kTrusted) << o.ev.verify_detail;  // no name: no name check
}

// ---------------------------------------------------------------------------
// Verdicts

TEST_F(TlsSessionTest, ExpiredIn2016) {
  X509Ptr leaf = LeLeaf(k2015Jun, k2016Jun30);
  Outcome o = Handshake(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()}, "www.example.test");
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kExpired);
  EXPECT_EQ(o.ev.verify_detail, "certificate has expired");
  ASSERT_EQ(o.ev.chain.size(), 2u);
  EXPECT_EQ(YearOf(o.ev.chain[0].not_after), 2016);
}

TEST_F(TlsSessionTest, ExpiredIn2019) {
  X509Ptr leaf = MakeCert({.cn = "old.uni-example.de", .key = pki->rsa_leaf_key.get(),
                           .issuer = pki->dfn_root.get(), .issuer_key = pki->dfn_key.get(),
                           .not_before = k2018Mar, .not_after = k2019Mar, .sans = {"DNS:old.uni-example.de"}});
  Outcome o = Handshake(pki->rsa_leaf_key.get(), {leaf.get()}, "old.uni-example.de");
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kExpired);
  ASSERT_EQ(o.ev.chain.size(), 1u);
  EXPECT_EQ(YearOf(o.ev.chain[0].not_after), 2019);
  EXPECT_EQ(o.ev.chain[0].not_after, k2019Mar);
}

TEST_F(TlsSessionTest, ExpiredIntermediate) {
  X509Ptr old_r3 = MakeCert({.cn = "R3 Test", .o = "Let's Encrypt", .country = "US", .key = pki->r3_key.get(),
                             .issuer = pki->isrg_root.get(), .issuer_key = pki->isrg_key.get(),
                             .not_before = k2015Jun, .not_after = k2020, .serial_hex = "0313", .is_ca = true});
  X509Ptr leaf = LeLeaf();
  Outcome o = Handshake(pki->ec_leaf_key.get(), {leaf.get(), old_r3.get()}, "www.example.test");
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kExpired) << o.ev.verify_detail;
}

TEST_F(TlsSessionTest, NotYetValid) {
  X509Ptr leaf = LeLeaf(k2027Jun, k2028Jun);
  Outcome o = Handshake(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()}, "www.example.test");
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kNotYetValid);
  EXPECT_EQ(o.ev.verify_detail, "certificate is not yet valid");
}

TEST_F(TlsSessionTest, SelfSignedServerCertificate) {
  // As appliances make them: no keyCertSign, not a CA.
  X509Ptr leaf = MakeCert({.cn = "printer.local", .o = "ACME Printers", .key = pki->ec_leaf_key.get(),
                           .not_before = k2026, .not_after = k2027, .sans = {"DNS:printer.local"},
                           .key_usage = "critical,digitalSignature"});
  ASSERT_TRUE(leaf);
  Outcome o = Handshake(pki->ec_leaf_key.get(), {leaf.get()}, "printer.local");
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kSelfSigned);
  EXPECT_FALSE(o.ev.verify_detail.empty());
  ASSERT_EQ(o.ev.chain.size(), 1u);
  EXPECT_TRUE(o.ev.chain[0].self_signed);
  EXPECT_EQ(o.ev.chain[0].issuer_cn, "printer.local");
  EXPECT_EQ(o.ev.chain[0].issuer_o, "ACME Printers");
}

TEST_F(TlsSessionTest, SelfSignedComesBeforeExpiredAndNameMismatch) {
  X509Ptr leaf = MakeCert({.cn = "router", .key = pki->rsa_leaf_key.get(), .not_before = k2015Jun,
                           .not_after = k2016Jun30, .is_ca = true});
  Outcome o = Handshake(pki->rsa_leaf_key.get(), {leaf.get()}, "www.example.test");
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kSelfSigned);
  ASSERT_EQ(o.ev.chain.size(), 1u);
  EXPECT_TRUE(o.ev.chain[0].self_signed);
}

TEST_F(TlsSessionTest, UntrustedIssuer) {
  X509Ptr leaf = MakeCert({.cn = "www.example.test", .key = pki->ec_leaf_key.get(),
                           .issuer = pki->rogue_root.get(), .issuer_key = pki->rogue_key.get(),
                           .not_before = k2026, .not_after = k2027, .sans = {"DNS:www.example.test"}});
  Outcome o = Handshake(pki->ec_leaf_key.get(), {leaf.get()}, "www.example.test");
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kUntrustedIssuer);
  EXPECT_FALSE(o.ev.verify_detail.empty());
  ASSERT_EQ(o.ev.chain.size(), 1u);
  EXPECT_EQ(o.ev.chain[0].issuer_o, "Nobody Trusts Us");
  EXPECT_FALSE(o.ev.chain[0].self_signed);

  // The rogue root sent along does not help: it is not in the store.
  Outcome with_root = Handshake(pki->ec_leaf_key.get(), {leaf.get(), pki->rogue_root.get()}, "www.example.test");
  EXPECT_EQ(with_root.ev.verdict, TlsVerdict::kUntrustedIssuer);
  EXPECT_EQ(with_root.ev.chain.size(), 2u);
  EXPECT_TRUE(with_root.ev.chain[1].self_signed);
}

TEST_F(TlsSessionTest, MissingIntermediateIsUntrusted) {
  X509Ptr leaf = LeLeaf();
  Outcome o = Handshake(pki->ec_leaf_key.get(), {leaf.get()}, "www.example.test");
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kUntrustedIssuer);
  EXPECT_EQ(o.ev.verify_detail, "unable to get local issuer certificate");
}

TEST_F(TlsSessionTest, ExpiredBeforeUntrusted) {
  // OpenSSL alone stops at the missing issuer; ndo still sees the expiry.
  X509Ptr leaf = MakeCert({.cn = "www.example.test", .key = pki->ec_leaf_key.get(),
                           .issuer = pki->rogue_root.get(), .issuer_key = pki->rogue_key.get(),
                           .not_before = k2015Jun, .not_after = k2016Jun30, .sans = {"DNS:www.example.test"}});
  Outcome o = Handshake(pki->ec_leaf_key.get(), {leaf.get()}, "www.example.test");
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kExpired);
}

TEST_F(TlsSessionTest, NameMismatch) {
  X509Ptr leaf = LeLeaf();
  Outcome o = Handshake(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()}, "mail.example.test");
  EXPECT_EQ(o.ev.sni, "mail.example.test");
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kNameMismatch);
  EXPECT_EQ(o.ev.verify_detail, "hostname mismatch");
}

TEST_F(TlsSessionTest, ExpiredBeforeNameMismatch) {
  X509Ptr leaf = LeLeaf(k2015Jun, k2016Jun30);
  Outcome o = Handshake(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()}, "mail.example.test");
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kExpired);
}

TEST_F(TlsSessionTest, UntrustedBeforeNameMismatch) {
  X509Ptr leaf = LeLeaf();
  Outcome o = Handshake(pki->ec_leaf_key.get(), {leaf.get()}, "mail.example.test");
  EXPECT_EQ(o.ev.verdict, TlsVerdict::kUntrustedIssuer);
}

TEST_F(TlsSessionTest, Wildcards) {
  X509Ptr leaf = LeLeaf(k2026, k2027, {"DNS:*.example.test"});
  EXPECT_EQ(Handshake(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()}, "www.example.test").ev.verdict,
            TlsVerdict::kTrusted);
  EXPECT_EQ(Handshake(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()}, "a.b.example.test").ev.verdict,
            TlsVerdict::kNameMismatch);
  EXPECT_EQ(Handshake(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()}, "example.test").ev.verdict,
            TlsVerdict::kNameMismatch);
}

TEST_F(TlsSessionTest, VerdictDependsOnlyOnTheGivenTime) {
  X509Ptr leaf = LeLeaf();
  Outcome o = Handshake(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()}, "www.example.test");
  ASSERT_EQ(o.ev.chain.size(), 2u);
  X509_STORE* store = ctx_->trust_store();
  std::string detail;
  EXPECT_EQ(EvaluateChain(o.ev.chain, store, "www.example.test", kNow, &detail), TlsVerdict::kTrusted);
  EXPECT_EQ(EvaluateChain(o.ev.chain, store, "www.example.test", k2030, &detail), TlsVerdict::kExpired);
  EXPECT_EQ(EvaluateChain(o.ev.chain, store, "www.example.test", k2020, &detail), TlsVerdict::kNotYetValid);
  EXPECT_EQ(EvaluateChain(o.ev.chain, store, "", kNow, nullptr), TlsVerdict::kTrusted);
  EXPECT_EQ(EvaluateChain(o.ev.chain, nullptr, "www.example.test", kNow, &detail), TlsVerdict::kUntrustedIssuer);
  EXPECT_EQ(EvaluateChain({}, store, "", kNow, &detail), TlsVerdict::kNoCertificate);
  std::vector<CertificateInfo> broken = o.ev.chain;
  broken[0].der = "not a certificate";
  EXPECT_EQ(EvaluateChain(broken, store, "", kNow, &detail), TlsVerdict::kNoCertificate);
  // An undecodable intermediate is just not offered.
  broken = o.ev.chain;
  broken[1].der.resize(10);
  EXPECT_EQ(EvaluateChain(broken, store, "", kNow, &detail), TlsVerdict::kUntrustedIssuer);
}

TEST_F(TlsSessionTest, WithoutTheExtraCaFileNothingPrivateIsTrusted) {
  auto plain = TlsClientContext::Create();
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  X509Ptr leaf = LeLeaf();
  std::vector<CertificateInfo> chain;
  for (X509* x : {leaf.get(), pki->r3.get()}) {
    auto info = ParseCertificate(ToDer(x));
    ASSERT_TRUE(info.ok());
    chain.push_back(*info);
  }
  std::string detail;
  EXPECT_EQ(EvaluateChain(chain, (*plain)->trust_store(), "www.example.test", kNow, &detail),
            TlsVerdict::kUntrustedIssuer);
  EXPECT_EQ(EvaluateChain(chain, ctx_->trust_store(), "www.example.test", kNow, &detail), TlsVerdict::kTrusted);
}

// ---------------------------------------------------------------------------
// Byte-level behaviour and hostile peers

TEST_F(TlsSessionTest, ClientHelloFirstAndOneByteAtATime) {
  X509Ptr leaf = LeLeaf();
  auto server = TestTlsServerSession::Create(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()});
  ASSERT_TRUE(server);
  auto client = TlsClientSession::Create(ctx_, "www.example.test");
  ASSERT_TRUE(client.ok());
  std::string hello = (*client)->TakeOutput();
  ASSERT_GT(hello.size(), 5u);
  EXPECT_EQ(static_cast<uint8_t>(hello[0]), 0x16);  // a handshake record
  EXPECT_EQ((*client)->TakeOutput(), "");            // drained
  server->OnData(hello);
  std::string flight = server->TakeOutput();
  ASSERT_FALSE(flight.empty());
  for (size_t i = 0; i + 1 < flight.size(); ++i) {
    ASSERT_EQ((*client)->OnData(flight.substr(i, 1)), State::kHandshaking) << "at byte " << i;
  }
  EXPECT_EQ((*client)->OnData(flight.substr(flight.size() - 1)), State::kDone);
  EXPECT_EQ(server->OnData((*client)->TakeOutput()), TestTlsServerSession::State::kDone) << server->error();
  // Whatever comes after the handshake (session tickets, data) changes nothing.
  ASSERT_TRUE(server->Write("hello"));
  EXPECT_EQ((*client)->OnData(server->TakeOutput()), State::kDone);
  EXPECT_EQ((*client)->OnData("garbage"), State::kDone);
  EXPECT_EQ((*client)->OnEof(), State::kDone);
  TlsEvidence ev = (*client)->Finish(kNow);
  EXPECT_EQ(ev.error, "");
  EXPECT_EQ(ev.verdict, TlsVerdict::kTrusted);
}

TEST_F(TlsSessionTest, GarbageInsteadOfServerHello) {
  for (std::string garbage : {std::string("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
                              std::string("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"),
                              std::string("220 mail.example.test ESMTP Postfix\r\n"),
                              std::string("\x15\x03\x01\x00\x02\x02\x28", 7),  // a fatal alert
                              std::string(64, '\0'), std::string(64, '\xff')}) {
    auto client = TlsClientSession::Create(ctx_, "www.example.test");
    ASSERT_TRUE(client.ok());
    (*client)->TakeOutput();
    State s = (*client)->OnData(garbage);
    EXPECT_EQ(s, State::kFailed) << ::testing::PrintToString(garbage);
    TlsEvidence ev = (*client)->Finish(kNow);
    EXPECT_FALSE(ev.error.empty());
    EXPECT_EQ(ev.verdict, TlsVerdict::kNoCertificate);
    EXPECT_TRUE(ev.chain.empty());
    EXPECT_EQ(ev.version, "");
    EXPECT_EQ(ev.cipher, "");
    EXPECT_EQ(ev.sni, "www.example.test");
    // Once failed, more bytes change nothing.
    EXPECT_EQ((*client)->OnData("more"), State::kFailed);
    EXPECT_EQ((*client)->OnEof(), State::kFailed);
  }
}

TEST_F(TlsSessionTest, OpenSslErrorIsKept) {
  auto client = TlsClientSession::Create(ctx_, "");
  ASSERT_TRUE(client.ok());
  ASSERT_EQ((*client)->OnData("HTTP/1.1 400 Bad Request\r\n\r\n"), State::kFailed);
  TlsEvidence ev = (*client)->Finish(kNow);
  EXPECT_EQ(ev.error.rfind("error:", 0), 0u) << ev.error;  // ERR_error_string_n's format
}

TEST_F(TlsSessionTest, RandomGarbageNeverCrashesOrHangs) {
  std::mt19937 rng(20261125);
  for (int iter = 0; iter < 300; ++iter) {
    auto client = TlsClientSession::Create(ctx_, "www.example.test");
    ASSERT_TRUE(client.ok());
    (*client)->TakeOutput();
    std::string bytes(1 + rng() % 3000, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    if (iter % 3 == 0) bytes[0] = 0x16;  // looks like a handshake record
    if (iter % 3 == 0 && bytes.size() > 2) bytes[1] = 0x03;
    // In pieces of random size.
    size_t pos = 0;
    while (pos < bytes.size() && (*client)->state() == State::kHandshaking) {
      size_t n = 1 + rng() % 500;
      (*client)->OnData(std::string_view(bytes).substr(pos, n));
      pos += n;
    }
    (*client)->TakeOutput();
    EXPECT_EQ((*client)->OnEof(), State::kFailed);
    TlsEvidence ev = (*client)->Finish(kNow);
    EXPECT_FALSE(ev.error.empty());
  }
}

// A real server flight with random bytes flipped: certificates and records
// that are almost right.
TEST_F(TlsSessionTest, MutatedServerFlightNeverCrashes) {
  X509Ptr leaf = LeLeaf();
  testing::SslCtxPtr tls12 = testing::MakeServerCtx(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()},
                                                    {.max_version = TLS1_2_VERSION});
  testing::SslCtxPtr tls13 = testing::MakeServerCtx(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()});
  ASSERT_TRUE(tls12 && tls13);
  std::mt19937 rng(42);
  for (int iter = 0; iter < 200; ++iter) {
    auto server = TestTlsServerSession::Create(iter % 2 ? tls13.get() : tls12.get());
    ASSERT_TRUE(server);
    auto client = TlsClientSession::Create(ctx_, "www.example.test");
    ASSERT_TRUE(client.ok());
    server->OnData((*client)->TakeOutput());
    std::string flight = server->TakeOutput();
    ASSERT_FALSE(flight.empty());
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) flight[rng() % flight.size()] ^= static_cast<char>(1 + rng() % 255);
    if (iter % 5 == 0) flight.resize(rng() % flight.size());
    (*client)->OnData(flight);
    State s = (*client)->OnEof();
    EXPECT_NE(s, State::kHandshaking);
    TlsEvidence ev = (*client)->Finish(kNow);
    if (s == State::kFailed) {
      EXPECT_FALSE(ev.error.empty());
    }
  }
}

TEST_F(TlsSessionTest, EofMidHandshake) {
  X509Ptr leaf = LeLeaf();
  auto server = TestTlsServerSession::Create(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()});
  ASSERT_TRUE(server);
  auto client = TlsClientSession::Create(ctx_, "www.example.test");
  ASSERT_TRUE(client.ok());
  server->OnData((*client)->TakeOutput());
  std::string flight = server->TakeOutput();
  ASSERT_EQ((*client)->OnData(flight.substr(0, flight.size() / 2)), State::kHandshaking);
  EXPECT_EQ((*client)->OnEof(), State::kFailed);
  TlsEvidence ev = (*client)->Finish(kNow);
  EXPECT_EQ(ev.error, "connection closed during handshake");
  EXPECT_EQ(ev.verdict, TlsVerdict::kNoCertificate);
  EXPECT_TRUE(ev.chain.empty());

  // EOF before anything at all.
  auto silent = TlsClientSession::Create(ctx_, "");
  ASSERT_TRUE(silent.ok());
  EXPECT_EQ((*silent)->OnEof(), State::kFailed);
  EXPECT_EQ((*silent)->Finish(kNow).error, "connection closed during handshake");
}

// TLS 1.2 sends the certificates in the clear: a server that hangs up after
// its first flight has still shown its chain.
TEST_F(TlsSessionTest, ChainKeptWhenTls12HandshakeBreaksOffLate) {
  X509Ptr leaf = LeLeaf();
  auto server = TestTlsServerSession::Create(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()},
                                             {.max_version = TLS1_2_VERSION});
  ASSERT_TRUE(server);
  auto client = TlsClientSession::Create(ctx_, "www.example.test");
  ASSERT_TRUE(client.ok());
  server->OnData((*client)->TakeOutput());
  ASSERT_EQ((*client)->OnData(server->TakeOutput()), State::kHandshaking);
  EXPECT_EQ((*client)->OnEof(), State::kFailed);
  TlsEvidence ev = (*client)->Finish(kNow);
  EXPECT_EQ(ev.error, "connection closed during handshake");
  EXPECT_EQ(ev.version, "");
  ASSERT_EQ(ev.chain.size(), 2u);
  EXPECT_EQ(ev.chain[0].subject_cn, "www.example.test");
  EXPECT_EQ(ev.verdict, TlsVerdict::kTrusted);
}

TEST_F(TlsSessionTest, CallersReasonWins) {
  auto client = TlsClientSession::Create(ctx_, "www.example.test");
  ASSERT_TRUE(client.ok());
  EXPECT_FALSE((*client)->TakeOutput().empty());
  EXPECT_EQ((*client)->state(), State::kHandshaking);
  TlsEvidence ev = (*client)->Finish(kNow, "timeout");
  EXPECT_EQ(ev.error, "timeout");
  EXPECT_EQ(ev.verdict, TlsVerdict::kNoCertificate);

  auto unfinished = TlsClientSession::Create(ctx_, "");
  ASSERT_TRUE(unfinished.ok());
  EXPECT_FALSE((*unfinished)->Finish(kNow).error.empty());  // never "" for an unfinished handshake
}

// ---------------------------------------------------------------------------
// Contexts

TEST_F(TlsSessionTest, ExtraCaFileMustBeReadable) {
  auto missing = TlsClientContext::Create("/nonexistent/ndo-ca.pem");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/ndo-ca.pem"), std::string::npos)
      << missing.status().message();

  std::string junk = ::testing::TempDir() + "ndo_tls_test_junk_" + std::to_string(getpid()) + ".pem";
  ASSERT_TRUE(testing::WriteFile(junk, "this is not a PEM file\n"));
  auto bad = TlsClientContext::Create(junk);
  std::remove(junk.c_str());
  EXPECT_FALSE(bad.ok());

  EXPECT_TRUE(TlsClientContext::Create().ok());
  EXPECT_NE(ctx_->trust_store(), nullptr);
}

TEST_F(TlsSessionTest, SessionsShareOneContext) {
  X509Ptr leaf = LeLeaf();
  std::vector<std::unique_ptr<TlsClientSession>> sessions;
  for (int i = 0; i < 4; ++i) {
    auto s = TlsClientSession::Create(ctx_, "www.example.test");
    ASSERT_TRUE(s.ok());
    sessions.push_back(std::move(*s));
  }
  std::weak_ptr<TlsClientContext> weak = ctx_;
  ctx_.reset();  // the sessions keep it alive
  EXPECT_FALSE(weak.expired());
  for (auto& s : sessions) {
    auto server = TestTlsServerSession::Create(pki->ec_leaf_key.get(), {leaf.get(), pki->r3.get()});
    Pump(*s, *server);
    EXPECT_EQ(s->Finish(kNow).verdict, TlsVerdict::kTrusted);
  }
  sessions.clear();
  EXPECT_TRUE(weak.expired());
}

// ---------------------------------------------------------------------------
// ParseCertificate on hostile input

TEST_F(TlsSessionTest, ParseCertificateRejectsMalformedInput) {
  X509Ptr leaf = LeLeaf();
  std::string der = ToDer(leaf.get());
  ASSERT_TRUE(ParseCertificate(der).ok());

  EXPECT_EQ(ParseCertificate("").status().code(), Status::Code::kCorruption);
  EXPECT_EQ(ParseCertificate(der.substr(0, der.size() - 1)).status().code(), Status::Code::kCorruption);
  EXPECT_EQ(ParseCertificate(der.substr(0, der.size() / 2)).status().code(), Status::Code::kCorruption);
  EXPECT_EQ(ParseCertificate(der.substr(0, 4)).status().code(), Status::Code::kCorruption);
  EXPECT_EQ(ParseCertificate(der + "X").status().code(), Status::Code::kCorruption);  // trailing bytes

  std::string blob(1 << 20, '\0');  // 1 MiB, starting like a certificate
  std::copy(der.begin(), der.end(), blob.begin());
  EXPECT_EQ(ParseCertificate(blob).status().code(), Status::Code::kCorruption);
  std::string huge_header("\x30\x84\x00\x10\x00\x00", 6);  // SEQUENCE claiming 1 MiB
  huge_header.resize(1000, 'A');
  EXPECT_EQ(ParseCertificate(huge_header).status().code(), Status::Code::kCorruption);

  std::mt19937 rng(7);
  for (int i = 0; i < 500; ++i) {
    std::string bytes(1 + rng() % 2000, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    if (i % 2) bytes[0] = 0x30;
    EXPECT_EQ(ParseCertificate(bytes).status().code(), Status::Code::kCorruption);
  }
  // Bit flips in a real certificate: parsed or rejected, never a crash.
  for (int i = 0; i < 500; ++i) {
    std::string mutated = der;
    mutated[rng() % mutated.size()] ^= static_cast<char>(1 + rng() % 255);
    auto r = ParseCertificate(mutated);
    if (r.ok()) {
      EXPECT_EQ(r->der, mutated);
    } else {
      EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
    }
  }
}

// ---------------------------------------------------------------------------
// evidence.h helpers

TEST(EvidenceTest, FingerprintHex) {
  std::array<uint8_t, 32> fp{};
  for (size_t i = 0; i < fp.size(); ++i) fp[i] = static_cast<uint8_t>(i * 17 + 1);
  std::string hex = FingerprintHex(fp);
  EXPECT_EQ(hex.size(), 64u);
  EXPECT_EQ(hex.substr(0, 8), "01122334");
  EXPECT_EQ(hex.substr(56), "ddeeff10");
  EXPECT_EQ(FingerprintHex({}), std::string(64, '0'));
  // SHA-256 of "abc".
  EXPECT_EQ(FingerprintHex(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(EvidenceTest, TlsVerdictNames) {
  EXPECT_EQ(TlsVerdictName(TlsVerdict::kTrusted), "trusted");
  EXPECT_EQ(TlsVerdictName(TlsVerdict::kUntrustedIssuer), "untrusted_issuer");
  EXPECT_EQ(TlsVerdictName(TlsVerdict::kExpired), "expired");
  EXPECT_EQ(TlsVerdictName(TlsVerdict::kNotYetValid), "not_yet_valid");
  EXPECT_EQ(TlsVerdictName(TlsVerdict::kSelfSigned), "self_signed");
  EXPECT_EQ(TlsVerdictName(TlsVerdict::kNameMismatch), "name_mismatch");
  EXPECT_EQ(TlsVerdictName(TlsVerdict::kNoCertificate), "no_certificate");
}

}  // namespace
}  // namespace ndo
