#include "mesh/security/pki.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "base/file_io.h"

namespace ndo::mesh {
namespace {

using std::chrono::hours;
using std::chrono::seconds;

constexpr int64_t kNow = 1700000000;  // 2023-11-14T22:13:20Z
constexpr seconds kCaValidity = hours(24 * 365 * 10);
constexpr seconds kNodeValidity = hours(24 * 30);

const ClusterId kCluster{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
const ClusterId kOtherCluster{0x1111111111111111ULL, 0x2222222222222222ULL};
const NodeId kNode{0xaaaabbbbccccddddULL, 0x0000000000000042ULL};

// ---------------------------------------------------------------------------
// Test helpers, on OpenSSL directly (independent of the code under test).

struct Pem {
  std::string name;
  std::string der;
};

Pem DecodePem(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long len = 0;
  Pem out;
  if (PEM_read_bio(bio.get(), &name, &header, &data, &len) == 1) {
    out.name = name;
    out.der.assign(reinterpret_cast<const char*>(data), static_cast<size_t>(len));
  }
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_free(data);
  ERR_clear_error();
  return out;
}

std::string EncodePem(const Pem& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio(bio.get(), pem.name.c_str(), "", reinterpret_cast<const unsigned char*>(pem.der.data()),
                static_cast<long>(pem.der.size()));
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// The PEM with byte `at` of its DER xor-ed with `mask`.
std::string FlipDerByte(const std::string& pem, size_t at, unsigned char mask = 0x01) {
  Pem p = DecodePem(pem);
  p.der[at] = static_cast<char>(p.der[at] ^ mask);
  return EncodePem(p);
}

std::string Sha256Raw(const std::string& data) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(md), len);
}

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

PkeyPtr ParseKey(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  return PkeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
}

std::string KeyPem(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string P256KeyPem() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
  return KeyPem(key.get());
}

// A CSR made by hand: `uris` as URI SANs (none: no extension request),
// signed with key_pem (Ed25519 with no digest, anything else with SHA-256).
std::string RawCsr(const std::string& key_pem, const std::vector<std::string>& uris, const std::string& cn = "raw") {
  PkeyPtr key = ParseKey(key_pem);
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(X509_REQ_new(), X509_REQ_free);
  X509_REQ_set_version(req.get(), 0);
  X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req.get()), "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.data()), static_cast<int>(cn.size()), -1, 0);
  X509_REQ_set_pubkey(req.get(), key.get());
  if (!uris.empty()) {
    std::string san;
    for (const auto& u : uris) san += (san.empty() ? "URI:" : ",URI:") + u;
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str()));
    X509_REQ_add_extensions(req.get(), exts);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  }
  const EVP_MD* md = EVP_PKEY_get_id(key.get()) == EVP_PKEY_ED25519 ? nullptr : EVP_sha256();
  X509_REQ_sign(req.get(), key.get(), md);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_X509_REQ(bio.get(), req.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// Returns the value of a Result that must be ok (a test failure otherwise).
template <typename T>
T Must(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  return std::move(r).value();
}

struct NodeMaterial {
  std::string key_pem;
  std::string csr_pem;
  IssuedCert cert;
};

NodeMaterial Enrol(const CaMaterial& ca, const NodeId& node, const std::string& name, int64_t now = kNow,
                   seconds validity = kNodeValidity, const ClusterId& cluster = kCluster) {
  NodeMaterial m;
  m.key_pem = Must(GenerateKeyPem());
  m.csr_pem = Must(MakeCsr(m.key_pem, node, name));
  m.cert = Must(SignNodeCert(ca, cluster, m.csr_pem, NodeRole::kScanner, "lab", validity, now));
  return m;
}

bool IsLowerHex(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

class PkiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ca_ = new CaMaterial(Must(CreateClusterCa(kCluster, kCaValidity, kNow)));
    other_ca_ = new CaMaterial(Must(CreateClusterCa(kCluster, kCaValidity, kNow)));
  }
  static void TearDownTestSuite() {
    delete ca_;
    delete other_ca_;
    ca_ = other_ca_ = nullptr;
  }
  void TearDown() override {
    // Every call leaves this thread's OpenSSL error queue empty.
    EXPECT_EQ(ERR_peek_error(), 0u);
    ERR_clear_error();
  }
  static CaMaterial* ca_;
  static CaMaterial* other_ca_;  // same cluster id, another key
};
CaMaterial* PkiTest::ca_ = nullptr;
CaMaterial* PkiTest::other_ca_ = nullptr;

// ---------------------------------------------------------------------------
// Keys and the CA.

TEST_F(PkiTest, GeneratesDistinctEd25519Keys) {
  std::string a = Must(GenerateKeyPem()), b = Must(GenerateKeyPem());
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u) << a;  // PKCS#8, unencrypted
  PkeyPtr key = ParseKey(a);
  ASSERT_TRUE(key);
  EXPECT_EQ(EVP_PKEY_get_id(key.get()), EVP_PKEY_ED25519);
}

TEST_F(PkiTest, CaInspectsAsCaOfItsCluster) {
  CertInfo info = Must(InspectCert(ca_->cert_pem));
  EXPECT_TRUE(info.is_ca);
  EXPECT_EQ(info.cluster, kCluster);
  EXPECT_TRUE(info.node.empty());
  EXPECT_NE(info.subject.find("ndo cluster " + kCluster.Hex()), std::string::npos) << info.subject;
  EXPECT_EQ(info.not_before_unix, kNow - 3600);
  EXPECT_EQ(info.not_after_unix, kNow + kCaValidity.count());
  EXPECT_TRUE(IsLowerHex(info.serial_hex)) << info.serial_hex;
  EXPECT_NE(info.serial_hex[0], '0');
  EXPECT_FALSE(ca_->key_pem.empty());
  EXPECT_TRUE(CheckKeyMatchesCert(ca_->key_pem, ca_->cert_pem).ok());
}

TEST_F(PkiTest, CaCertificateHasTheRequiredExtensions) {
  Pem pem = DecodePem(ca_->cert_pem);
  const unsigned char* p = reinterpret_cast<const unsigned char*>(pem.der.data());
  std::unique_ptr<X509, decltype(&X509_free)> x(d2i_X509(nullptr, &p, static_cast<long>(pem.der.size())), X509_free);
  ASSERT_TRUE(x);
  EXPECT_EQ(X509_get_version(x.get()), X509_VERSION_3);
  EXPECT_EQ(X509_check_ca(x.get()), 1);
  EXPECT_EQ(X509_get_pathlen(x.get()), 0);
  uint32_t ku = X509_get_key_usage(x.get());
  EXPECT_TRUE(ku & KU_KEY_CERT_SIGN);
  EXPECT_TRUE(ku & KU_CRL_SIGN);
  EXPECT_NE(X509_get0_subject_key_id(x.get()), nullptr);
  int crit = 0;
  auto* bc = static_cast<BASIC_CONSTRAINTS*>(X509_get_ext_d2i(x.get(), NID_basic_constraints, &crit, nullptr));
  ASSERT_NE(bc, nullptr);
  EXPECT_EQ(crit, 1);
  BASIC_CONSTRAINTS_free(bc);
  EXPECT_EQ(X509_check_issued(x.get(), x.get()), X509_V_OK);  // self-signed
  ERR_clear_error();
}

TEST_F(PkiTest, CreateClusterCaRejectsBadArguments) {
  EXPECT_FALSE(CreateClusterCa(ClusterId{}, kCaValidity, kNow).ok());
  EXPECT_FALSE(CreateClusterCa(kCluster, seconds(0), kNow).ok());
  EXPECT_FALSE(CreateClusterCa(kCluster, seconds(-5), kNow).ok());
  EXPECT_FALSE(CreateClusterCa(kCluster, hours(24 * 366 * 1000), kNow).ok());
}

TEST_F(PkiTest, TwoCasHaveDifferentSerials) {
  EXPECT_NE(Must(InspectCert(ca_->cert_pem)).serial_hex, Must(InspectCert(other_ca_->cert_pem)).serial_hex);
}

// ---------------------------------------------------------------------------
// CA pins.

TEST_F(PkiTest, SpkiSha256IsStableAndDiffersBetweenCas) {
  std::string pin = Must(SpkiSha256(ca_->cert_pem));
  EXPECT_EQ(pin.size(), 7u + 64u);
  EXPECT_EQ(pin.rfind("sha256:", 0), 0u);
  EXPECT_TRUE(IsLowerHex(pin.substr(7))) << pin;
  EXPECT_EQ(Must(SpkiSha256(ca_->cert_pem)), pin);
  EXPECT_NE(Must(SpkiSha256(other_ca_->cert_pem)), pin);
  EXPECT_EQ(Must(ParseCaHash(pin)), pin);
}

TEST_F(PkiTest, SpkiSha256IsTheHashOfTheSubjectPublicKeyInfo) {
  Pem pem = DecodePem(ca_->cert_pem);
  const unsigned char* p = reinterpret_cast<const unsigned char*>(pem.der.data());
  std::unique_ptr<X509, decltype(&X509_free)> x(d2i_X509(nullptr, &p, static_cast<long>(pem.der.size())), X509_free);
  ASSERT_TRUE(x);
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(X509_get0_pubkey(x.get()), &der);
  ASSERT_GT(n, 0);
  std::string digest = Sha256Raw(std::string(reinterpret_cast<char*>(der), static_cast<size_t>(n)));
  OPENSSL_free(der);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : digest) {
    hex += kHex[c >> 4];
    hex += kHex[c & 15];
  }
  EXPECT_EQ(Must(SpkiSha256(ca_->cert_pem)), "sha256:" + hex);
  // Another key pins differently.
  NodeMaterial node = Enrol(*ca_, kNode, "n");
  EXPECT_NE(Must(SpkiSha256(node.cert.cert_pem)), "sha256:" + hex);
}

TEST_F(PkiTest, ParseCaHashAcceptsUpperCaseAndLowersIt) {
  std::string hex(64, 'a');
  hex[0] = 'F';
  hex[63] = '9';
  auto r = ParseCaHash("sha256:" + hex);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string want = hex;
  want[0] = 'f';
  EXPECT_EQ(*r, "sha256:" + want);
  EXPECT_EQ(Must(ParseCaHash("sha256:" + std::string(64, 'A'))), "sha256:" + std::string(64, 'a'));
}

TEST_F(PkiTest, ParseCaHashRejectsWrongLengthPrefixOrDigits) {
  for (const std::string& bad : {
           std::string(),
           std::string("sha256:"),
           "sha256:" + std::string(63, 'a'),
           "sha256:" + std::string(65, 'a'),
           "sha1:" + std::string(64, 'a'),
           "sha512:" + std::string(64, 'a'),
           "sha256" + std::string(65, 'a'),
           std::string(71, 'a'),
           "sha256:" + std::string(63, 'a') + "g",
           "sha256:" + std::string(63, 'a') + " ",
           " sha256:" + std::string(64, 'a'),
       }) {
    auto r = ParseCaHash(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << bad;
  }
}

// ---------------------------------------------------------------------------
// CSRs.

TEST_F(PkiTest, CsrRoundTripsNodeNameAndDerHash) {
  std::string key = Must(GenerateKeyPem());
  std::string csr = Must(MakeCsr(key, kNode, "scanner-dmz-1"));
  EXPECT_EQ(csr.rfind("-----BEGIN CERTIFICATE REQUEST-----", 0), 0u);
  CsrInfo info = Must(CheckCsr(csr));
  EXPECT_EQ(info.node, kNode);
  EXPECT_EQ(info.name, "scanner-dmz-1");
  ASSERT_EQ(info.der_sha256.size(), 32u);
  EXPECT_EQ(info.der_sha256, Sha256Raw(DecodePem(csr).der));
}

TEST_F(PkiTest, CsrWithEmptyNameHasNoCommonName) {
  std::string csr = Must(MakeCsr(Must(GenerateKeyPem()), kNode, ""));
  CsrInfo info = Must(CheckCsr(csr));
  EXPECT_EQ(info.node, kNode);
  EXPECT_EQ(info.name, "");
}

TEST_F(PkiTest, MakeCsrRejectsBadArguments) {
  std::string key = Must(GenerateKeyPem());
  EXPECT_FALSE(MakeCsr(key, NodeId{}, "x").ok());
  EXPECT_FALSE(MakeCsr(key, kNode, std::string(kMaxNameBytes + 1, 'n')).ok());
  EXPECT_TRUE(MakeCsr(key, kNode, std::string(kMaxNameBytes, 'n')).ok());
  EXPECT_FALSE(MakeCsr(key, kNode, "new\nline").ok());
  EXPECT_FALSE(MakeCsr(P256KeyPem(), kNode, "x").ok());  // not Ed25519
  EXPECT_FALSE(MakeCsr(ca_->cert_pem, kNode, "x").ok());  // not a key
}

TEST_F(PkiTest, CsrWithTamperedSignatureIsRejected) {
  std::string csr = Must(MakeCsr(Must(GenerateKeyPem()), kNode, "n"));
  size_t der_size = DecodePem(csr).der.size();
  std::string tampered = FlipDerByte(csr, der_size - 1);  // the last signature byte
  auto r = CheckCsr(tampered);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(r.status().message().find("signature"), std::string::npos) << r.status().message();
  EXPECT_FALSE(SignNodeCert(*ca_, kCluster, tampered, NodeRole::kScanner, "lab", kNodeValidity, kNow).ok());
}

TEST_F(PkiTest, CsrWithAnyByteFlippedIsRejected) {
  std::string csr = Must(MakeCsr(Must(GenerateKeyPem()), kNode, "n"));
  size_t der_size = DecodePem(csr).der.size();
  for (size_t i = 0; i < der_size; ++i) {
    EXPECT_FALSE(CheckCsr(FlipDerByte(csr, i)).ok()) << "byte " << i;
    EXPECT_EQ(ERR_peek_error(), 0u);
  }
}

TEST_F(PkiTest, CsrWithoutNodeSanIsRejected) {
  std::string key = Must(GenerateKeyPem());
  // The hand-made CSR is otherwise sound: with a node URI it passes.
  ASSERT_TRUE(CheckCsr(RawCsr(key, {"urn:ndo:node:" + kNode.Hex()})).ok());
  for (const auto& uris : std::vector<std::vector<std::string>>{
           {},
           {"https://example.com/"},
           {"urn:ndo:cluster:" + kCluster.Hex()},
           {"urn:ndo:node:" + kNode.Hex(), "urn:ndo:node:" + kCluster.Hex()},  // two node ids
           {"urn:ndo:node:1234"},                                              // short id
           {"urn:ndo:node:" + std::string(32, '0')},                            // zero id
           {"urn:ndo:node:" + std::string(31, 'a') + "x"},
       }) {
    std::string csr = RawCsr(key, uris);
    auto r = CheckCsr(csr);
    EXPECT_FALSE(r.ok()) << (uris.empty() ? "(no SAN)" : uris[0]);
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
    EXPECT_FALSE(SignNodeCert(*ca_, kCluster, csr, NodeRole::kScanner, "lab", kNodeValidity, kNow).ok());
  }
}

TEST_F(PkiTest, CsrWithNonEd25519KeyIsRejected) {
  std::string csr = RawCsr(P256KeyPem(), {"urn:ndo:node:" + kNode.Hex()});
  auto r = CheckCsr(csr);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("Ed25519"), std::string::npos) << r.status().message();
  EXPECT_FALSE(SignNodeCert(*ca_, kCluster, csr, NodeRole::kScanner, "lab", kNodeValidity, kNow).ok());
}

// ---------------------------------------------------------------------------
// Node certificates.

TEST_F(PkiTest, IssuedCertVerifiesAndNamesTheNode) {
  NodeMaterial n = Enrol(*ca_, kNode, "scanner-1");
  EXPECT_EQ(n.cert.not_after_unix, kNow + kNodeValidity.count());
  EXPECT_TRUE(IsLowerHex(n.cert.serial_hex)) << n.cert.serial_hex;
  EXPECT_NE(n.cert.serial_hex[0], '0');
  EXPECT_LE(n.cert.serial_hex.size(), 32u);

  CertInfo info = Must(VerifyNodeCert(n.cert.cert_pem, ca_->cert_pem, kNow));
  EXPECT_EQ(info.node, kNode);
  EXPECT_EQ(info.cluster, kCluster);
  EXPECT_FALSE(info.is_ca);
  EXPECT_EQ(info.serial_hex, n.cert.serial_hex);
  EXPECT_EQ(info.not_before_unix, kNow - 3600);
  EXPECT_EQ(info.not_after_unix, n.cert.not_after_unix);
  EXPECT_NE(info.subject.find("scanner-1"), std::string::npos) << info.subject;

  CertInfo inspected = Must(InspectCert(n.cert.cert_pem));
  EXPECT_EQ(inspected.node, kNode);
  EXPECT_EQ(inspected.cluster, kCluster);
  EXPECT_FALSE(inspected.is_ca);
  EXPECT_EQ(inspected.serial_hex, n.cert.serial_hex);
  EXPECT_TRUE(CheckKeyMatchesCert(n.key_pem, n.cert.cert_pem).ok());
}

TEST_F(PkiTest, NodeCertHasTheRequiredExtensions) {
  NodeMaterial n = Enrol(*ca_, kNode, "scanner-1");
  Pem pem = DecodePem(n.cert.cert_pem);
  const unsigned char* p = reinterpret_cast<const unsigned char*>(pem.der.data());
  std::unique_ptr<X509, decltype(&X509_free)> x(d2i_X509(nullptr, &p, static_cast<long>(pem.der.size())), X509_free);
  ASSERT_TRUE(x);
  EXPECT_EQ(X509_check_ca(x.get()), 0);
  EXPECT_EQ(X509_get_key_usage(x.get()), static_cast<uint32_t>(KU_DIGITAL_SIGNATURE));
  uint32_t xku = X509_get_extended_key_usage(x.get());
  EXPECT_TRUE(xku & XKU_SSL_SERVER);
  EXPECT_TRUE(xku & XKU_SSL_CLIENT);
  EXPECT_NE(X509_get0_authority_key_id(x.get()), nullptr);
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x.get(), NID_subject_alt_name, nullptr, nullptr));
  ASSERT_NE(names, nullptr);
  std::vector<std::string> uris;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    ASSERT_EQ(gn->type, GEN_URI);
    uris.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier)),
                      ASN1_STRING_length(gn->d.uniformResourceIdentifier));
  }
  GENERAL_NAMES_free(names);
  EXPECT_EQ(uris, (std::vector<std::string>{"urn:ndo:node:" + kNode.Hex(), "urn:ndo:cluster:" + kCluster.Hex(),
                                            "urn:ndo:role:scanner", "urn:ndo:vantage:lab"}));
  ERR_clear_error();
}

// A node certificate made by hand, signed by `ca`'s key with `uris` as its
// only SANs (as one made before roles existed, or a malformed one).
std::string RawNodeCert(const CaMaterial& ca, const std::string& node_key_pem, const std::vector<std::string>& uris) {
  PkeyPtr ca_key = ParseKey(ca.key_pem);
  PkeyPtr key = ParseKey(node_key_pem);
  std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_mem_buf(ca.cert_pem.data(), static_cast<int>(ca.cert_pem.size())),
                                               BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> ca_cert(PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr), X509_free);
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), X509_free);
  X509_set_version(x.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 4242);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x.get()), "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("raw"), 3, -1, 0);
  X509_set_issuer_name(x.get(), X509_get_subject_name(ca_cert.get()));
  ASN1_TIME_set(X509_getm_notBefore(x.get()), kNow - 3600);
  ASN1_TIME_set(X509_getm_notAfter(x.get()), kNow + 86400);
  X509_set_pubkey(x.get(), key.get());
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca_cert.get(), x.get(), nullptr, nullptr, 0);
  std::string san;
  for (const auto& u : uris) san += (san.empty() ? "URI:" : ",URI:") + u;
  for (const auto& [nid, value] : std::vector<std::pair<int, std::string>>{
           {NID_basic_constraints, "critical,CA:FALSE"},
           {NID_key_usage, "critical,digitalSignature"},
           {NID_ext_key_usage, "serverAuth,clientAuth"},
           {NID_subject_alt_name, san},
           {NID_subject_key_identifier, "hash"},
           {NID_authority_key_identifier, "keyid:always"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x.get(), ca_key.get(), nullptr);
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_X509(out.get(), x.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(out.get(), &data);
  ERR_clear_error();
  return std::string(data, static_cast<size_t>(n));
}

TEST_F(PkiTest, RoleAndVantageRoundTripThroughTheCertificate) {
  std::string key = Must(GenerateKeyPem());
  std::string csr = Must(MakeCsr(key, kNode, "n"));
  // A vantage with bytes a URI may not hold as they are (space, comma,
  // percent, UTF-8) comes back exactly.
  const std::vector<std::string> vantages = {"dmz", "office wifi,2", "100%", "caf\xc3\xa9",
                                             std::string(kMaxVantageBytes, 'v')};
  for (const std::string& vantage : vantages) {
    for (NodeRole role : {NodeRole::kScanner, NodeRole::kOperator}) {
      IssuedCert cert = Must(SignNodeCert(*ca_, kCluster, csr, role, vantage, kNodeValidity, kNow));
      CertInfo verified = Must(VerifyNodeCert(cert.cert_pem, ca_->cert_pem, kNow));
      EXPECT_EQ(verified.role, role) << vantage;
      EXPECT_EQ(verified.vantage, vantage);
      CertInfo inspected = Must(InspectCert(cert.cert_pem));
      EXPECT_EQ(inspected.role, role);
      EXPECT_EQ(inspected.vantage, vantage);
    }
  }
  // The CA binds neither.
  CertInfo ca = Must(InspectCert(ca_->cert_pem));
  EXPECT_EQ(ca.role, NodeRole::kScanner);
  EXPECT_EQ(ca.vantage, "");
}

TEST_F(PkiTest, ACertificateWithoutRoleOrVantageReadsAsAScannerBoundToNoVantage) {
  // As SignNodeCert made them before roles existed: node and cluster only.
  std::string key = Must(GenerateKeyPem());
  std::string old = RawNodeCert(*ca_, key, {"urn:ndo:node:" + kNode.Hex(), "urn:ndo:cluster:" + kCluster.Hex()});
  CertInfo info = Must(VerifyNodeCert(old, ca_->cert_pem, kNow));
  EXPECT_EQ(info.node, kNode);
  EXPECT_EQ(info.role, NodeRole::kScanner);
  EXPECT_EQ(info.vantage, "");
  // A role alone: that role, still no vantage.
  std::string role_only = RawNodeCert(*ca_, key, {"urn:ndo:node:" + kNode.Hex(), "urn:ndo:cluster:" + kCluster.Hex(),
                                                  "urn:ndo:role:operator"});
  info = Must(VerifyNodeCert(role_only, ca_->cert_pem, kNow));
  EXPECT_EQ(info.role, NodeRole::kOperator);
  EXPECT_EQ(info.vantage, "");
}

TEST_F(PkiTest, ABadVantageIsRefusedWhenSigningAndWhenReading) {
  std::string key = Must(GenerateKeyPem());
  std::string csr = Must(MakeCsr(key, kNode, "n"));
  for (const std::string& bad : {std::string(), std::string(kMaxVantageBytes + 1, 'v'), std::string("a\nb"),
                                std::string("a\x7f"), std::string("a\0b", 3)}) {
    auto r = SignNodeCert(*ca_, kCluster, csr, NodeRole::kScanner, bad, kNodeValidity, kNow);
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << bad.size();
    EXPECT_NE(r.status().message().find("vantage"), std::string::npos) << r.status().message();
  }
  EXPECT_FALSE(SignNodeCert(*ca_, kCluster, csr, static_cast<NodeRole>(7), "dmz", kNodeValidity, kNow).ok());
  // Certificates the CA signed but whose role or vantage no ndo CA would
  // write are refused whole, never read as some other role or vantage.
  const std::string base_node = "urn:ndo:node:" + kNode.Hex(), base_cluster = "urn:ndo:cluster:" + kCluster.Hex();
  for (const std::vector<std::string>& extra : std::vector<std::vector<std::string>>{
           {"urn:ndo:role:root"},
           {"urn:ndo:role:"},
           {"urn:ndo:role:scanner", "urn:ndo:role:operator"},
           {"urn:ndo:vantage:"},
           {"urn:ndo:vantage:a%0Ab"},             // a control character
           {"urn:ndo:vantage:a%2"},               // a truncated escape
           {"urn:ndo:vantage:a%zz"},              // not hex
           {"urn:ndo:vantage:" + std::string(kMaxVantageBytes + 1, 'v')},
           {"urn:ndo:vantage:dmz", "urn:ndo:vantage:wifi"}}) {
    std::vector<std::string> uris = {base_node, base_cluster};
    uris.insert(uris.end(), extra.begin(), extra.end());
    std::string cert = RawNodeCert(*ca_, key, uris);
    EXPECT_FALSE(InspectCert(cert).ok()) << extra.front();
    EXPECT_FALSE(VerifyNodeCert(cert, ca_->cert_pem, kNow).ok()) << extra.front();
  }
}

TEST_F(PkiTest, CertWithoutNameUsesNodeHexAsCommonName) {
  NodeMaterial n = Enrol(*ca_, kNode, "");
  CertInfo info = Must(InspectCert(n.cert.cert_pem));
  EXPECT_NE(info.subject.find(kNode.Hex()), std::string::npos) << info.subject;
}

TEST_F(PkiTest, SerialsAreRandomPerCert) {
  NodeMaterial a = Enrol(*ca_, kNode, "a"), b = Enrol(*ca_, kNode, "b");
  EXPECT_NE(a.cert.serial_hex, b.cert.serial_hex);
}

TEST_F(PkiTest, SerialHexIsTheSerialWithoutLeadingZeros) {
  // One serial in 16 has a top byte below 0x10: with 64 certificates that
  // case is all but certainly among them.
  std::string key = Must(GenerateKeyPem());
  std::string csr = Must(MakeCsr(key, kNode, "n"));
  for (int i = 0; i < 64; ++i) {
    IssuedCert cert = Must(SignNodeCert(*ca_, kCluster, csr, NodeRole::kScanner, "lab", kNodeValidity, kNow));
    Pem pem = DecodePem(cert.cert_pem);
    const unsigned char* p = reinterpret_cast<const unsigned char*>(pem.der.data());
    std::unique_ptr<X509, decltype(&X509_free)> x(d2i_X509(nullptr, &p, static_cast<long>(pem.der.size())),
                                                  X509_free);
    ASSERT_TRUE(x);
    const ASN1_INTEGER* serial = X509_get0_serialNumber(x.get());
    EXPECT_EQ(serial->type, V_ASN1_INTEGER);  // positive
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    for (int b = 0; b < ASN1_STRING_length(serial); ++b) {
      hex += kHex[ASN1_STRING_get0_data(serial)[b] >> 4];
      hex += kHex[ASN1_STRING_get0_data(serial)[b] & 15];
    }
    hex.erase(0, hex.find_first_not_of('0'));
    EXPECT_EQ(cert.serial_hex, hex);
    EXPECT_LE(hex.size(), 32u);
    EXPECT_GE(hex.size(), 8u);  // random, not small
    EXPECT_EQ(Must(InspectCert(cert.cert_pem)).serial_hex, cert.serial_hex);
  }
}

TEST_F(PkiTest, CertVerifyFailsForAnotherCa) {
  NodeMaterial n = Enrol(*other_ca_, kNode, "n");
  ASSERT_TRUE(VerifyNodeCert(n.cert.cert_pem, other_ca_->cert_pem, kNow).ok());
  auto r = VerifyNodeCert(n.cert.cert_pem, ca_->cert_pem, kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
}

TEST_F(PkiTest, CertVerifyFailsOutsideTheValidityPeriod) {
  NodeMaterial n = Enrol(*ca_, kNode, "n");
  const std::string& cert = n.cert.cert_pem;
  EXPECT_TRUE(VerifyNodeCert(cert, ca_->cert_pem, kNow - 3600).ok());  // clock skew allowance
  // (OpenSSL counts a certificate as expired from its notAfter second on.)
  EXPECT_TRUE(VerifyNodeCert(cert, ca_->cert_pem, n.cert.not_after_unix - 1).ok());
  auto expired = VerifyNodeCert(cert, ca_->cert_pem, n.cert.not_after_unix + 1);
  ASSERT_FALSE(expired.ok());
  EXPECT_NE(expired.status().message().find("expired"), std::string::npos) << expired.status().message();
  auto early = VerifyNodeCert(cert, ca_->cert_pem, kNow - 3601);
  ASSERT_FALSE(early.ok());
  EXPECT_NE(early.status().message().find("not yet valid"), std::string::npos) << early.status().message();
}

TEST_F(PkiTest, CertVerifyFailsWhenTheCaHasExpired) {
  CaMaterial short_ca = Must(CreateClusterCa(kCluster, hours(2), kNow));
  NodeMaterial n = Enrol(short_ca, kNode, "n", kNow, kNodeValidity);
  EXPECT_TRUE(VerifyNodeCert(n.cert.cert_pem, short_ca.cert_pem, kNow).ok());
  EXPECT_FALSE(VerifyNodeCert(n.cert.cert_pem, short_ca.cert_pem, kNow + 3 * 3600).ok());
}

TEST_F(PkiTest, CertVerifyFailsForTheCaItselfOrACaAsNode) {
  EXPECT_FALSE(VerifyNodeCert(ca_->cert_pem, ca_->cert_pem, kNow).ok());
}

TEST_F(PkiTest, CertWithAnyByteFlippedFailsVerification) {
  NodeMaterial n = Enrol(*ca_, kNode, "n");
  size_t der_size = DecodePem(n.cert.cert_pem).der.size();
  for (size_t i = 0; i < der_size; ++i) {
    EXPECT_FALSE(VerifyNodeCert(FlipDerByte(n.cert.cert_pem, i), ca_->cert_pem, kNow).ok()) << "byte " << i;
    EXPECT_EQ(ERR_peek_error(), 0u);
  }
}

TEST_F(PkiTest, CertVerifyRequiresTheCaToBeACa) {
  // A node certificate offered as the CA does not make its own node valid,
  // nor one it could not have signed.
  NodeMaterial n = Enrol(*ca_, kNode, "n");
  EXPECT_FALSE(VerifyNodeCert(n.cert.cert_pem, n.cert.cert_pem, kNow).ok());
}

TEST_F(PkiTest, SignNodeCertRefusesMismatchedOrMissingCaKey) {
  std::string csr = Must(MakeCsr(Must(GenerateKeyPem()), kNode, "n"));
  CaMaterial mixed{ca_->cert_pem, other_ca_->key_pem};
  auto r = SignNodeCert(mixed, kCluster, csr, NodeRole::kScanner, "lab", kNodeValidity, kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  CaMaterial no_key{ca_->cert_pem, ""};
  EXPECT_FALSE(SignNodeCert(no_key, kCluster, csr, NodeRole::kScanner, "lab", kNodeValidity, kNow).ok());
  // The CA does not sign for another cluster than its own.
  EXPECT_FALSE(SignNodeCert(*ca_, kOtherCluster, csr, NodeRole::kScanner, "lab", kNodeValidity, kNow).ok());
  EXPECT_FALSE(SignNodeCert(*ca_, ClusterId{}, csr, NodeRole::kScanner, "lab", kNodeValidity, kNow).ok());
  EXPECT_FALSE(SignNodeCert(*ca_, kCluster, csr, NodeRole::kScanner, "lab", seconds(0), kNow).ok());
}

TEST_F(PkiTest, CertVerifyFailsAcrossClusters) {
  CaMaterial other_cluster_ca = Must(CreateClusterCa(kOtherCluster, kCaValidity, kNow));
  NodeMaterial n = Enrol(other_cluster_ca, kNode, "n", kNow, kNodeValidity, kOtherCluster);
  CertInfo info = Must(VerifyNodeCert(n.cert.cert_pem, other_cluster_ca.cert_pem, kNow));
  EXPECT_EQ(info.cluster, kOtherCluster);
  EXPECT_FALSE(VerifyNodeCert(n.cert.cert_pem, ca_->cert_pem, kNow).ok());
}

TEST_F(PkiTest, CheckKeyMatchesCertDetectsMismatch) {
  NodeMaterial n = Enrol(*ca_, kNode, "n");
  EXPECT_TRUE(CheckKeyMatchesCert(n.key_pem, n.cert.cert_pem).ok());
  EXPECT_FALSE(CheckKeyMatchesCert(Must(GenerateKeyPem()), n.cert.cert_pem).ok());
  EXPECT_FALSE(CheckKeyMatchesCert(ca_->key_pem, n.cert.cert_pem).ok());
  EXPECT_FALSE(CheckKeyMatchesCert(other_ca_->key_pem, ca_->cert_pem).ok());
  EXPECT_FALSE(CheckKeyMatchesCert(n.cert.cert_pem, n.key_pem).ok());  // swapped
}

// ---------------------------------------------------------------------------
// Hostile PEM.

std::vector<std::string> GarbageInputs(const std::string& some_valid_pem) {
  std::vector<std::string> out = {
      "",
      "garbage",
      std::string("\0\0\0\0\xff\xfe", 6),
      "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
      "-----BEGIN CERTIFICATE-----\n!!!!not base64!!!!\n-----END CERTIFICATE-----\n",
      "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
      "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----\n",
      "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAi\n-----END ENCRYPTED "
      "PRIVATE KEY-----\n",
      "-----BEGIN CERTIFICATE-----\n",
      some_valid_pem.substr(0, some_valid_pem.size() / 2),
      std::string(kMaxPemBytes + 1, 'A'),
  };
  // A valid PEM made too long by trailing blank space.
  out.push_back(some_valid_pem + std::string(kMaxPemBytes, '\n'));
  // Random bytes, and random bytes between PEM armour of each kind.
  uint32_t x = 12345;
  for (const char* label : {"CERTIFICATE", "CERTIFICATE REQUEST", "PRIVATE KEY"}) {
    std::string der;
    for (int i = 0; i < 300; ++i) {
      x = x * 1103515245u + 12345u;
      der += static_cast<char>(x >> 24);
    }
    out.push_back(der);
    out.push_back(EncodePem({label, der}));
    // A DER SEQUENCE header claiming more than there is.
    out.push_back(EncodePem({label, std::string("\x30\x82\xff\xff\x30\x00", 6)}));
  }
  return out;
}

TEST_F(PkiTest, GarbagePemIsRejectedEverywhere) {
  NodeMaterial n = Enrol(*ca_, kNode, "n");
  std::vector<std::string> garbage = GarbageInputs(n.cert.cert_pem);
  for (const std::string& g : GarbageInputs(n.csr_pem)) garbage.push_back(g);
  for (const std::string& g : GarbageInputs(n.key_pem)) garbage.push_back(g);
  for (size_t i = 0; i < garbage.size(); ++i) {
    const std::string& g = garbage[i];
    SCOPED_TRACE("garbage input " + std::to_string(i));
    EXPECT_FALSE(SpkiSha256(g).ok());
    EXPECT_FALSE(InspectCert(g).ok());
    EXPECT_FALSE(VerifyNodeCert(g, ca_->cert_pem, kNow).ok());
    EXPECT_FALSE(VerifyNodeCert(n.cert.cert_pem, g, kNow).ok());
    EXPECT_FALSE(CheckCsr(g).ok());
    EXPECT_FALSE(MakeCsr(g, kNode, "n").ok());
    EXPECT_FALSE(SignNodeCert(*ca_, kCluster, g, NodeRole::kScanner, "lab", kNodeValidity, kNow).ok());
    EXPECT_FALSE(SignNodeCert(CaMaterial{g, ca_->key_pem}, kCluster, n.csr_pem, NodeRole::kScanner, "lab", kNodeValidity, kNow).ok());
    EXPECT_FALSE(SignNodeCert(CaMaterial{ca_->cert_pem, g}, kCluster, n.csr_pem, NodeRole::kScanner, "lab", kNodeValidity, kNow).ok());
    EXPECT_FALSE(CheckKeyMatchesCert(g, n.cert.cert_pem).ok());
    EXPECT_FALSE(CheckKeyMatchesCert(n.key_pem, g).ok());
    EXPECT_EQ(ERR_peek_error(), 0u);
  }
  // Valid PEM of the wrong kind.
  EXPECT_FALSE(InspectCert(n.csr_pem).ok());
  EXPECT_FALSE(InspectCert(n.key_pem).ok());
  EXPECT_FALSE(CheckCsr(n.cert.cert_pem).ok());
  EXPECT_FALSE(CheckCsr(n.key_pem).ok());
  EXPECT_FALSE(SpkiSha256(n.key_pem).ok());
  EXPECT_FALSE(MakeCsr(n.csr_pem, kNode, "n").ok());
  // The same inputs, with the valid one still accepted afterwards.
  EXPECT_TRUE(VerifyNodeCert(n.cert.cert_pem, ca_->cert_pem, kNow).ok());
}

TEST_F(PkiTest, EncryptedKeyIsRejectedWithoutPrompting) {
  PkeyPtr key = ParseKey(Must(GenerateKeyPem()));
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  static const char kPass[] = "secret";
  ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(bio.get(), key.get(), EVP_aes_256_cbc(), kPass, 6, nullptr, nullptr), 1);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  std::string encrypted(data, static_cast<size_t>(len));
  ASSERT_NE(encrypted.find("ENCRYPTED"), std::string::npos);
  EXPECT_FALSE(MakeCsr(encrypted, kNode, "n").ok());
  EXPECT_FALSE(SignNodeCert(CaMaterial{ca_->cert_pem, encrypted}, kCluster, Must(MakeCsr(ca_->key_pem, kNode, "n")), NodeRole::kScanner, "lab",
                            kNodeValidity, kNow)
                   .ok());
}

// ---------------------------------------------------------------------------
// Files.

class PkiFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "ndo_pki_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const std::string& name : Entries()) ::unlink((dir_ + "/" + name).c_str());
    ::rmdir(dir_.c_str());
  }
  std::vector<std::string> Entries() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(dir_.c_str())) {
      while (dirent* e = ::readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.push_back(e->d_name);
      ::closedir(d);
    }
    return out;
  }
  std::string dir_;
};

TEST_F(PkiFilesTest, PkiMaterialSurvivesAFileRoundTrip) {
  CaMaterial ca = Must(CreateClusterCa(kCluster, kCaValidity, kNow));
  ASSERT_TRUE(WritePrivateFile(dir_ + "/ca.key", ca.key_pem).ok());
  ASSERT_TRUE(WritePrivateFile(dir_ + "/ca.crt", ca.cert_pem).ok());
  CaMaterial back{Must(ReadSmallFile(dir_ + "/ca.crt", kMaxPemBytes)), Must(ReadSmallFile(dir_ + "/ca.key", kMaxPemBytes))};
  EXPECT_TRUE(CheckKeyMatchesCert(back.key_pem, back.cert_pem).ok());
  NodeMaterial n = Enrol(back, kNode, "n");
  EXPECT_TRUE(VerifyNodeCert(n.cert.cert_pem, ca.cert_pem, kNow).ok());
}

}  // namespace
}  // namespace ndo::mesh
