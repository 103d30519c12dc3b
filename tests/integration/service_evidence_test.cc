// Banners and TLS certificates end to end, with the real binary: loopback TLS
// servers whose certificates the test makes (a private PKI mirroring the
// seed's tables: DFN, Let's Encrypt, unusual CAs, certificates that expired in
// 2016 and 2019, a self-signed one, one not yet valid, an untrusted issuer, a
// wrong name), banner servers, and hostile servers. Scoped to 127.0.0.0/8.
#include <gtest/gtest.h>
#include <openssl/sha.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <thread>

#include "support/run_command.h"
#include "support/service_servers.h"
#include "support/test_certs.h"

namespace ndo {
namespace {

using namespace ndo::testing;

constexpr int64_t kJan2025 = 1735689600;
constexpr int64_t kDec2027 = 1830211200;

std::string Sha256Hex(const std::string& der) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(der.data()), der.size(), md);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : md) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

struct Ca {
  PkeyPtr key;
  X509Ptr cert;
};

Ca MakeCa(const std::string& cn, const std::string& o, int serial) {
  Ca ca;
  ca.key = MakeKey(KeyType::kEcP256);
  CertSpec s;
  s.cn = cn;
  s.o = o;
  s.key = ca.key.get();
  s.not_before = ndo::testing::UnixTime(2010, 1, 1);
  s.not_after = ndo::testing::UnixTime(2040, 1, 1);
  s.is_ca = true;
  s.serial_hex = std::to_string(serial);
  ca.cert = MakeCert(s);
  return ca;
}

struct Leaf {
  PkeyPtr key;
  X509Ptr cert;
};

Leaf MakeLeaf(const Ca* ca, const std::string& cn, int64_t from, int64_t to, const std::string& san, int serial) {
  Leaf l;
  l.key = MakeKey(KeyType::kEcP256);
  CertSpec s;
  s.cn = cn;
  s.o = "Example Site";
  s.key = l.key.get();
  if (ca) {
    s.issuer = ca->cert.get();
    s.issuer_key = ca->key.get();
  }
  s.not_before = from;
  s.not_after = to;
  s.sans = {san};
  s.serial_hex = std::to_string(serial);
  l.cert = MakeCert(s);
  return l;
}

class ServiceEvidence : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = ::testing::TempDir() + "/ndo-evidence-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(tmp_);
    std::filesystem::create_directories(tmp_);
    data_ = tmp_ + "/data";
  }
  void TearDown() override { std::filesystem::remove_all(tmp_); }

  // The JSON line of one address:port (a "hostname" may stand between them).
  static std::string Line(const std::string& jsonl, const std::string& address, uint16_t port) {
    std::regex row("\\{[^\\n]*\"address\":\"" + address + "\"(,\"hostname\":\"[^\"]*\")?,\"port\":" +
                   std::to_string(port) + ",[^\\n]*");
    std::smatch m;
    return std::regex_search(jsonl, m, row) ? m.str(0) : "";
  }
  static bool Has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

  std::string tmp_, data_;
};

TEST_F(ServiceEvidence, CertificatesBannersVerdictsAndTheSeedsReports) {
  Ca dfn = MakeCa("DFN-Verein Global Issuing CA", "DFN-Verein", 11);
  Ca le = MakeCa("R3", "Let's Encrypt", 12);
  Ca unusual = MakeCa("Cheap Certs CA", "Cheap Certs Inc", 13);
  Ca hidden = MakeCa("Hidden CA", "Nobody Trusts Us", 14);
  ASSERT_TRUE(WriteCaFile(tmp_ + "/ca.pem", {dfn.cert.get(), le.cert.get(), unusual.cert.get()}));

  std::vector<Leaf> leaves;
  leaves.push_back(MakeLeaf(&dfn, "www1.test", kJan2025, kDec2027, "DNS:www1.test", 101));          // .1 trusted
  leaves.push_back(MakeLeaf(&dfn, "www2.test", kJan2025, kDec2027, "DNS:www2.test", 102));          // .2 trusted
  leaves.push_back(MakeLeaf(&dfn, "old.test", ndo::testing::UnixTime(2014, 1, 1), ndo::testing::UnixTime(2016, 6, 30), "DNS:old.test", 103));  // .3 expired 2016
  leaves.push_back(MakeLeaf(&le, "le.test", kJan2025, kDec2027, "DNS:le.test", 104));               // .4 trusted
  leaves.push_back(MakeLeaf(&le, "le-old.test", ndo::testing::UnixTime(2018, 12, 1), ndo::testing::UnixTime(2019, 3, 1), "DNS:le-old.test", 105));  // .5 expired 2019
  leaves.push_back(MakeLeaf(&unusual, "odd.test", kJan2025, kDec2027, "DNS:odd.test", 106));        // .6 trusted
  leaves.push_back(MakeLeaf(nullptr, "self.test", kJan2025, kDec2027, "DNS:self.test", 107));       // .7 self-signed
  leaves.push_back(MakeLeaf(&dfn, "future.test", ndo::testing::UnixTime(2030, 1, 1), ndo::testing::UnixTime(2031, 1, 1), "DNS:future.test", 108));  // .8 not yet valid
  leaves.push_back(MakeLeaf(&hidden, "hidden.test", kJan2025, kDec2027, "DNS:hidden.test", 109));   // .9 untrusted issuer
  for (const auto& l : leaves) ASSERT_TRUE(l.cert) << OpenSslErrors();

  uint16_t tls_port = UnusedPort("127.93.0.1"), banner_port = UnusedPort("127.93.0.2");
  ASSERT_NE(tls_port, banner_port);
  ServiceServers servers;
  const Ca* issuers[] = {&dfn, &dfn, &dfn, &le, &le, &unusual, nullptr, &dfn, &hidden};
  for (int i = 0; i < 9; ++i) {
    std::vector<X509*> chain = {leaves[i].cert.get()};
    if (issuers[i]) chain.push_back(issuers[i]->cert.get());
    ASSERT_TRUE(servers.Tls("127.93.0." + std::to_string(i + 1), tls_port, leaves[i].key.get(), chain));
  }
  ASSERT_TRUE(servers.Banner("127.93.0.10", tls_port, std::string("\x15\x03\x01garbage, not TLS\r\n")));  // hostile
  ASSERT_TRUE(servers.Silent("127.93.0.11", tls_port));                                                   // stalls
  ASSERT_TRUE(servers.Banner("127.93.0.1", banner_port, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"));
  ASSERT_TRUE(servers.Banner("127.93.0.2", banner_port, "220 mail.example.test ESMTP Postfix (Debian/GNU)\r\n"));
  ASSERT_TRUE(servers.Endless("127.93.0.3", banner_port, std::string(4096, 'A')));
  ASSERT_TRUE(servers.Silent("127.93.0.4", banner_port));

  auto start = std::chrono::steady_clock::now();
  auto r = RunNdo({"scan", "127.93.0.1-12", "-p", std::to_string(tls_port) + "," + std::to_string(banner_port),
                   "--scope", "127.0.0.0/8", "--data-dir", data_, "--tls", "--banners", "--tls-ports",
                   std::to_string(tls_port), "--tls-ca-file", tmp_ + "/ca.pem", "--service-timeout", "1500",
                   "--format", "json", "-oX", tmp_ + "/out.xml", "--no-progress"},
                  tmp_);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The stalled handshake and the silent banner cost their bound, not the scan.
  EXPECT_LT(seconds, 8.0);

  const char* verdicts[] = {"trusted", "trusted", "expired", "trusted", "expired",
                            "trusted", "self_signed", "not_yet_valid", "untrusted_issuer"};
  for (int i = 0; i < 9; ++i) {
    std::string line = Line(r.out, "127.93.0." + std::to_string(i + 1), tls_port);
    ASSERT_FALSE(line.empty()) << i;
    EXPECT_TRUE(Has(line, "\"verdict\":\"" + std::string(verdicts[i]) + "\"")) << line;
    EXPECT_TRUE(Has(line, "\"sha256\":\"" + Sha256Hex(ToDer(leaves[i].cert.get())) + "\"")) << line;
    EXPECT_TRUE(Has(line, "\"key_type\":\"EC\",\"key_bits\":256")) << line;
  }
  std::string first = Line(r.out, "127.93.0.1", tls_port);
  EXPECT_TRUE(Has(first, "\"subject\":{\"cn\":\"www1.test\",\"o\":\"Example Site\",\"ou\":\"\"}")) << first;
  EXPECT_TRUE(Has(first, "\"issuer\":{\"cn\":\"DFN-Verein Global Issuing CA\",\"o\":\"DFN-Verein\"")) << first;
  EXPECT_TRUE(Has(first, "\"sans\":[\"DNS:www1.test\"]")) << first;
  EXPECT_TRUE(Has(first, "\"not_after\":\"2027-12-31T00:00:00.000000Z\"")) << first;
  EXPECT_TRUE(Has(first, "\"signature_algorithm\":\"ecdsa-with-SHA256\"")) << first;
  EXPECT_TRUE(Has(first, "\"version\":\"TLSv1.3\"")) << first;
  EXPECT_TRUE(Has(Line(r.out, "127.93.0.7", tls_port), "\"self_signed\":true"));

  std::string garbage = Line(r.out, "127.93.0.10", tls_port);
  EXPECT_TRUE(Has(garbage, "\"verdict\":\"no_certificate\"")) << garbage;
  EXPECT_TRUE(Has(garbage, "\"error\":")) << garbage;
  EXPECT_TRUE(Has(garbage, "garbage, not TLS")) << garbage;  // the banner grab that followed
  std::string stalled = Line(r.out, "127.93.0.11", tls_port);
  EXPECT_TRUE(Has(stalled, "\"error\":\"timeout\"")) << stalled;

  std::string ssh = Line(r.out, "127.93.0.1", banner_port);
  EXPECT_TRUE(Has(ssh, "\"service\":\"ssh\"")) << ssh;
  EXPECT_TRUE(Has(ssh, "SSH-2.0-OpenSSH_9.2p1 Debian-2\\\\r\\\\n")) << ssh;
  EXPECT_TRUE(Has(Line(r.out, "127.93.0.2", banner_port), "\"service\":\"smtp\""));
  std::string endless = Line(r.out, "127.93.0.3", banner_port);
  EXPECT_TRUE(Has(endless, "\"truncated\":true")) << endless.substr(0, 300);
  EXPECT_TRUE(Has(endless, std::string(2048, 'A')));
  EXPECT_FALSE(Has(endless, std::string(2049, 'A')));
  EXPECT_TRUE(Has(Line(r.out, "127.93.0.4", banner_port), "\"error\":\"timeout\""));

  // The seed's Tables 5 and 6, from the store.
  std::smatch m;
  auto scans = RunNdo({"scans", "--data-dir", data_}, tmp_);
  ASSERT_TRUE(std::regex_search(scans.out, m, std::regex(R"(\n([0-9a-f]{16})\s+done)")));
  std::string id = m[1];
  auto issuers_report = RunNdo({"report", "tls", "issuers", id, "--data-dir", data_, "--group", "DFN/TUM/LRZ=DFN|TUM|LRZ",
                                "--group", "Let's Encrypt=Let's Encrypt", "--format", "csv"},
                               tmp_);
  ASSERT_EQ(issuers_report.exit_code, 0) << issuers_report.err;
  EXPECT_EQ(issuers_report.out, "ISSUER,local\nDFN/TUM/LRZ,4\nLet's Encrypt,2\nother CAs,3\nTotal,9\n");
  auto expired = RunNdo({"report", "tls", "expired", id, "--data-dir", data_, "--format", "csv"}, tmp_);
  EXPECT_EQ(expired.out, "YEAR,local\n2016,1\n2017,0\n2018,0\n2019,1\nTotal,2\n");
  auto services = RunNdo({"report", "services", id, "--data-dir", data_, "--format", "csv"}, tmp_);
  EXPECT_TRUE(Has(services.out, std::to_string(banner_port) + ",ssh,1\n")) << services.out;
  EXPECT_TRUE(Has(services.out, std::to_string(banner_port) + ",smtp,1\n")) << services.out;

  // Evidence survives in the store: `ndo results` prints the same lines.
  auto again = RunNdo({"results", id, "--data-dir", data_, "--format", "json"}, tmp_);
  EXPECT_EQ(again.out, r.out);
  // And the XML, with ssl-cert script output, is still valid Nmap XML.
  if (std::system("command -v xmllint >/dev/null") == 0 && std::filesystem::exists("/usr/share/nmap/nmap.dtd")) {
    std::string xml = Slurp(tmp_ + "/out.xml");
    EXPECT_TRUE(Has(xml, "<script id=\"ssl-cert\"")) << xml.substr(0, 2000);
    EXPECT_EQ(std::system(("xmllint --noout --dtdvalid /usr/share/nmap/nmap.dtd " + ShellQuote(tmp_ + "/out.xml")).c_str()), 0);
  }
}

TEST_F(ServiceEvidence, NameMismatchWhenTheTargetWasGivenByName) {
  Ca dfn = MakeCa("DFN-Verein Global Issuing CA", "DFN-Verein", 21);
  ASSERT_TRUE(WriteCaFile(tmp_ + "/ca.pem", {dfn.cert.get()}));
  Leaf wrong = MakeLeaf(&dfn, "other.test", kJan2025, kDec2027, "DNS:other.test", 201);
  uint16_t port = UnusedPort("127.0.0.1");
  ServiceServers servers;
  ASSERT_TRUE(servers.Tls("127.0.0.1", port, wrong.key.get(), {wrong.cert.get(), dfn.cert.get()}));
  auto r = RunNdo({"scan", "localhost", "-p", std::to_string(port), "--scope", "127.0.0.0/8,::1", "--data-dir", data_,
                   "--tls", "--tls-ports", "all", "--tls-ca-file", tmp_ + "/ca.pem", "--format", "json", "--no-progress"},
                  tmp_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string line = Line(r.out, "127.0.0.1", port);
  EXPECT_TRUE(Has(line, "\"verdict\":\"name_mismatch\"")) << line;
  EXPECT_TRUE(Has(line, "\"sni\":\"localhost\"")) << line;
}

TEST_F(ServiceEvidence, ResumeFollowsUpOnOpenPortsThatHadNoEvidenceYet) {
  uint16_t port = UnusedPort("127.94.0.1");
  ServiceServers servers;
  for (int h = 1; h <= 6; ++h) ASSERT_TRUE(servers.Silent("127.94.0." + std::to_string(h), port));
  std::vector<std::string> args = {"scan", "127.94.0.1-6", "-p", std::to_string(port), "--scope", "127.0.0.0/8",
                                   "--data-dir", data_, "--banners", "--service-timeout", "4000", "-q"};
  pid_t pid = SpawnNdo(args, tmp_ + "/first.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // ports found, follow-ups still waiting
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  auto scans = RunNdo({"scans", "--data-dir", data_}, tmp_);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(scans.out, m, std::regex(R"(\n([0-9a-f]{16})\s+\w+)"))) << scans.out;
  std::string id = m[1];
  auto before = RunNdo({"results", id, "--data-dir", data_, "--format", "json"}, tmp_);
  EXPECT_FALSE(Has(before.out, "\"banner\"")) << before.out;
  auto resumed = RunNdo({"scan", "--resume", id, "--data-dir", data_, "--format", "json", "--no-progress"}, tmp_);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  for (int h = 1; h <= 6; ++h)
    EXPECT_TRUE(Has(Line(resumed.out, "127.94.0." + std::to_string(h), port), "\"banner\":{")) << resumed.out;
}

}  // namespace
}  // namespace ndo

namespace ndo {
namespace {

// An enormous certificate (thousands of SANs, beyond OpenSSL's 100 KiB bound
// on a peer's certificate list) is refused with an error, and a well-behaved
// server beside it is still recorded in full.
TEST_F(ServiceEvidence, EnormousCertificateIsAnErrorNotACrash) {
  Ca ca = MakeCa("Big CA", "Big Org", 31);
  ASSERT_TRUE(WriteCaFile(tmp_ + "/ca.pem", {ca.cert.get()}));
  PkeyPtr big_key = MakeKey(KeyType::kEcP256);
  CertSpec s;
  s.cn = "huge.test";
  s.key = big_key.get();
  s.issuer = ca.cert.get();
  s.issuer_key = ca.key.get();
  s.not_before = kJan2025;
  s.not_after = kDec2027;
  for (int i = 0; i < 6000; ++i) s.sans.push_back("DNS:host-" + std::to_string(i) + ".a-rather-long-name.example.test");
  X509Ptr huge = MakeCert(s);
  ASSERT_TRUE(huge) << OpenSslErrors();
  ASSERT_GT(ToDer(huge.get()).size(), 200'000u);
  Leaf normal = MakeLeaf(&ca, "normal.test", kJan2025, kDec2027, "DNS:normal.test", 301);

  uint16_t port = UnusedPort("127.95.0.1");
  ServiceServers servers;
  ASSERT_TRUE(servers.Tls("127.95.0.1", port, big_key.get(), {huge.get(), ca.cert.get()}));
  ASSERT_TRUE(servers.Tls("127.95.0.2", port, normal.key.get(), {normal.cert.get(), ca.cert.get()}));
  auto r = RunNdo({"scan", "127.95.0.1-2", "-p", std::to_string(port), "--scope", "127.0.0.0/8", "--data-dir", data_,
                   "--tls", "--tls-ports", std::to_string(port), "--tls-ca-file", tmp_ + "/ca.pem",
                   "--service-timeout", "3000", "--format", "json", "--no-progress"},
                  tmp_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string big_line = Line(r.out, "127.95.0.1", port);
  EXPECT_TRUE(Has(big_line, "\"verdict\":\"no_certificate\"")) << big_line.substr(0, 500);
  EXPECT_TRUE(Has(big_line, "\"error\":")) << big_line.substr(0, 500);
  EXPECT_TRUE(Has(Line(r.out, "127.95.0.2", port), "\"verdict\":\"trusted\""));
}

}  // namespace
}  // namespace ndo
