// A shard's result bundle: canonical (order of the input and duplicates do
// not change the bytes, so neither the digest), round trip, and a decoder
// that refuses anything it would not have written; version 1 (results only)
// and version 2 (with the service evidence of open ports and the
// certificates it refers to).
#include "store/result_bundle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "scan/service/tls_session.h"
#include "store/evidence_codec.h"
#include "store/result_codec.h"
#include "support/test_certs.h"

namespace ndo {
namespace {

ProbeResult Make(uint32_t v4, uint16_t port, PortState s, int64_t t = 1'700'000'000'000'000) {
  ProbeResult r;
  r.address = IpAddress::FromV4(v4);
  r.port = port;
  r.state = s;
  r.attempts = 1;
  r.rtt_us = s == PortState::kFiltered ? 0 : 800;
  r.time_us = t;
  return r;
}

std::vector<ProbeResult> Sample() {
  std::vector<ProbeResult> v;
  v.push_back(Make(0x0a000002, 443, PortState::kOpen));
  v.push_back(Make(0x0a000001, 80, PortState::kClosed));
  v.push_back(Make(0x0a000001, 22, PortState::kFiltered));
  v.push_back(Make(0x0a000003, 22, PortState::kUnreachable));
  ProbeResult v6 = Make(0, 8443, PortState::kOpen, 5);
  v6.address = *IpAddress::Parse("2001:db8::7");
  v6.attempts = 3;
  v6.rtt_us = 123456;
  v.push_back(v6);
  return v;
}

bool Same(const ProbeResult& a, const ProbeResult& b) {
  return a.address == b.address && a.port == b.port && a.state == b.state && a.attempts == b.attempts &&
         a.rtt_us == b.rtt_us && a.time_us == b.time_us;
}

std::string MustEncode(std::vector<ProbeResult> v) {
  auto b = EncodeResultBundle(std::move(v));
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return b.ok() ? *b : std::string();
}

TEST(ResultBundle, RoundTripInCanonicalOrder) {
  std::string bytes = MustEncode(Sample());
  EXPECT_EQ(bytes.size(), kBundleHeaderSize + 5 * kBundleRecordSize);
  EXPECT_EQ(bytes.substr(0, 4), "ndob");
  auto back = DecodeResultBundle(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->evidence.empty());
  EXPECT_TRUE(back->certificates.empty());
  auto expected = Sample();
  std::sort(expected.begin(), expected.end(),
            [](const ProbeResult& a, const ProbeResult& b) { return std::tie(a.address, a.port) < std::tie(b.address, b.port); });
  ASSERT_EQ(back->results.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(Same(back->results[i], expected[i])) << i;
  EXPECT_EQ(MustEncode(back->results), bytes);
}

TEST(ResultBundle, EmptyBundle) {
  std::string bytes = MustEncode({});
  EXPECT_EQ(bytes.size(), kBundleHeaderSize);
  auto back = DecodeResultBundle(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->results.empty());
}

TEST(ResultBundle, BytesAndDigestDoNotDependOnInputOrder) {
  std::string bytes = MustEncode(Sample());
  auto digest = BundleDigest(bytes);
  std::mt19937_64 rng(0xb0b);
  for (int i = 0; i < 50; ++i) {
    auto v = Sample();
    std::shuffle(v.begin(), v.end(), rng);
    // Duplicates of a result that lose to it change nothing either.
    v.push_back(Make(0x0a000002, 443, PortState::kFiltered, 1));
    std::string again = MustEncode(v);
    EXPECT_EQ(again, bytes);
    EXPECT_EQ(BundleDigest(again), digest);
  }
  auto other = Sample();
  other[0].rtt_us += 1;
  EXPECT_NE(BundleDigest(MustEncode(other)), digest);
}

TEST(ResultBundle, DuplicatesKeepThePreferredResult) {
  std::vector<ProbeResult> dups = {
      Make(0x0a000001, 80, PortState::kFiltered, 900),  // silence, though later
      Make(0x0a000001, 80, PortState::kOpen, 100),
      Make(0x0a000001, 80, PortState::kClosed, 500),
      Make(0x0a000001, 80, PortState::kOpen, 200),  // open, and the later open
      Make(0x0a000001, 80, PortState::kUnreachable, 950),
  };
  std::mt19937_64 rng(0xd0b);
  for (int i = 0; i < 20; ++i) {
    std::shuffle(dups.begin(), dups.end(), rng);
    auto back = DecodeResultBundle(MustEncode(dups));
    ASSERT_TRUE(back.ok());
    ASSERT_EQ(back->results.size(), 1u);
    EXPECT_TRUE(Same(back->results[0], Make(0x0a000001, 80, PortState::kOpen, 200)));
    // The same rule as the store's merge operator.
    std::string preferred = EncodeResultValue(dups[0]);
    for (const ProbeResult& r : dups) preferred = std::string(PreferredResultValue(preferred, EncodeResultValue(r)));
    EXPECT_EQ(EncodeResultValue(back->results[0]), preferred);
  }
}

TEST(ResultBundle, EncodeRefusesUnknownStates) {
  auto v = Sample();
  v[2].state = static_cast<PortState>(9);
  EXPECT_EQ(EncodeResultBundle(v).status().code(), Status::Code::kInvalidArgument);
  v[2].state = static_cast<PortState>(0);
  EXPECT_EQ(EncodeResultBundle(v).status().code(), Status::Code::kInvalidArgument);
}

TEST(ResultBundle, DecodeRefusesHostileInput) {
  std::string bytes = MustEncode(Sample());
  auto corrupt = [](const std::string& b) { return DecodeResultBundle(b).status().code() == Status::Code::kCorruption; };
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_TRUE(corrupt(bytes.substr(0, n))) << n;
  EXPECT_TRUE(corrupt(bytes + "x"));
  std::string bad = bytes;
  bad[0] = 'N';
  EXPECT_TRUE(corrupt(bad));
  bad = bytes;
  for (char version : {0, 2, 3, 0x7f}) {
    bad[4] = version;
    EXPECT_TRUE(corrupt(bad)) << int(version);
  }

  auto record = [&](size_t i) { return kBundleHeaderSize + i * kBundleRecordSize; };
  // Unsorted: the first two records swapped; repeated: the first copied over the second.
  bad = bytes;
  std::swap_ranges(bad.begin() + record(0), bad.begin() + record(1), bad.begin() + record(1));
  EXPECT_TRUE(corrupt(bad));
  bad = bytes;
  std::copy(bytes.begin() + record(0), bytes.begin() + record(1), bad.begin() + record(1));
  EXPECT_TRUE(corrupt(bad));
  // A record's value: unknown state, other version, reserved byte set.
  for (size_t at : {size_t{18 + 1}, size_t{18 + 0}, size_t{18 + 3}}) {
    bad = bytes;
    bad[record(2) + at] = 9;
    EXPECT_TRUE(corrupt(bad)) << at;
  }
  // A huge count, with and without the bytes to match.
  bad = bytes;
  for (int b = 0; b < 4; ++b) bad[5 + b] = '\xff';
  EXPECT_TRUE(corrupt(bad));
  uint32_t over = kMaxBundleResults + 1;
  bad = bytes.substr(0, kBundleHeaderSize);
  for (int b = 0; b < 4; ++b) bad[5 + b] = static_cast<char>((over >> (8 * b)) & 0xff);
  EXPECT_TRUE(corrupt(bad));
  // A count that disagrees with the size.
  bad = bytes;
  bad[5] = static_cast<char>(bad[5] + 1);
  EXPECT_TRUE(corrupt(bad));

  // Random damage: refused or decoded, never a crash; whatever decodes re-encodes to the same bytes.
  std::mt19937_64 rng(0xbad);
  for (int i = 0; i < 3000; ++i) {
    std::string hostile = bytes;
    for (int k = 0; k < 2; ++k) hostile[rng() % hostile.size()] ^= static_cast<char>(1 + rng() % 255);
    auto d = DecodeResultBundle(hostile);
    if (d.ok()) {
      EXPECT_EQ(MustEncode(d->results), hostile);
    }
  }
}

TEST(ResultBundle, DigestIsSha256) {
  // SHA-256("abc"), FIPS 180-2.
  auto d = BundleDigest("abc");
  const uint8_t expected[] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                              0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                              0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
  EXPECT_TRUE(std::equal(d.begin(), d.end(), expected));
}

// ---------------------------------------------------------------------------
// Version 2: results with the evidence of open ports and its certificates.

using testing::MakeCert;
using testing::MakeKey;

// A CA and two leaves it signed, made once (EC keys: fast).
struct Pki {
  std::vector<CertificateInfo> certs;  // ca, leaf0, leaf1: parsed, with DER
  std::string ca_der, leaf0_der, leaf1_der;
};

const Pki& TestPki() {
  static const Pki pki = [] {
    Pki p;
    auto ca_key = MakeKey(testing::KeyType::kEcP256);
    testing::CertSpec ca;
    ca.cn = "Bundle Test CA";
    ca.o = "ndo tests";
    ca.key = ca_key.get();
    ca.not_before = testing::UnixTime(2020, 1, 1);
    ca.not_after = testing::UnixTime(2040, 1, 1);
    ca.is_ca = true;
    auto ca_cert = MakeCert(ca);
    p.ca_der = testing::ToDer(ca_cert.get());
    for (int i = 0; i < 2; ++i) {
      auto key = MakeKey(testing::KeyType::kEcP256);
      testing::CertSpec leaf;
      leaf.cn = "www" + std::to_string(i) + ".example.test";
      leaf.key = key.get();
      leaf.issuer = ca_cert.get();
      leaf.issuer_key = ca_key.get();
      leaf.not_before = testing::UnixTime(2024, 1, 1);
      leaf.not_after = testing::UnixTime(2030, 1, 1);
      leaf.sans = {"DNS:" + leaf.cn};
      leaf.serial_hex = std::to_string(10 + i);
      (i == 0 ? p.leaf0_der : p.leaf1_der) = testing::ToDer(MakeCert(leaf).get());
    }
    for (const std::string* der : {&p.ca_der, &p.leaf0_der, &p.leaf1_der}) {
      auto c = ParseCertificate(*der);
      if (!c.ok()) std::abort();
      p.certs.push_back(std::move(*c));
    }
    return p;
  }();
  return pki;
}

CertificateInfo FingerprintOf(const CertificateInfo& c) {
  CertificateInfo f;
  f.sha256 = c.sha256;
  return f;
}

// Sample() with one more open port, and evidence of the three open ports:
// TLS with a banner, TLS alone (the CA shared with the first), a banner alone.
std::vector<ProbeResult> SampleV2Results() {
  auto v = Sample();
  v.push_back(Make(0x0a000004, 22, PortState::kOpen));
  return v;
}

std::vector<ServiceEvidence> SampleEvidence() {
  const Pki& pki = TestPki();
  std::vector<ServiceEvidence> out;
  ServiceEvidence https;
  https.address = IpAddress::FromV4(0x0a000002);
  https.port = 443;
  https.service = "http";
  https.banner = BannerEvidence{"HTTP/1.1 200 OK\r\nServer: test\r\n\r\n", false, "GET / HTTP/1.0\r\n\r\n", ""};
  TlsEvidence t;
  t.version = "TLSv1.3";
  t.cipher = "TLS_AES_256_GCM_SHA384";
  t.sni = "www0.example.test";
  t.verdict = TlsVerdict::kTrusted;
  t.verify_detail = "ok";
  t.chain = {pki.certs[1], pki.certs[0]};
  https.tls = t;
  out.push_back(https);
  ServiceEvidence v6;
  v6.address = *IpAddress::Parse("2001:db8::7");
  v6.port = 8443;
  t.sni = "";
  t.verdict = TlsVerdict::kUntrustedIssuer;
  t.verify_detail = "unable to get local issuer certificate";
  t.chain = {pki.certs[2], pki.certs[0]};
  v6.tls = t;
  out.push_back(v6);
  ServiceEvidence ssh;
  ssh.address = IpAddress::FromV4(0x0a000004);
  ssh.port = 22;
  ssh.service = "ssh";
  ssh.banner = BannerEvidence{std::string("SSH-2.0-OpenSSH_9.2p1\r\n\0\xff", 25), true, "", "timeout"};
  out.push_back(ssh);
  return out;
}

ResultBundle SampleBundle() {
  ResultBundle b;
  b.results = SampleV2Results();
  b.evidence = SampleEvidence();
  return b;
}

std::string MustEncodeBundle(ResultBundle b) {
  auto bytes = EncodeResultBundle(std::move(b));
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return bytes.ok() ? *bytes : std::string();
}

bool SameEvidence(const ServiceEvidence& a, const ServiceEvidence& b) {
  return a.address == b.address && a.port == b.port && EncodeEvidence(a) == EncodeEvidence(b);
}

bool Before(const ServiceEvidence& a, const ServiceEvidence& b) {
  return std::tie(a.address, a.port) < std::tie(b.address, b.port);
}

TEST(ResultBundleV2, RoundTripWithEvidenceAndCertificates) {
  std::string bytes = MustEncodeBundle(SampleBundle());
  ASSERT_GT(bytes.size(), kBundleV2HeaderSize);
  EXPECT_EQ(bytes.substr(0, 4), "ndob");
  EXPECT_EQ(bytes[4], 2);
  auto back = DecodeResultBundle(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();

  auto results = SampleV2Results();
  std::sort(results.begin(), results.end(), [](const ProbeResult& a, const ProbeResult& b) {
    return std::tie(a.address, a.port) < std::tie(b.address, b.port);
  });
  ASSERT_EQ(back->results.size(), results.size());
  for (size_t i = 0; i < results.size(); ++i) EXPECT_TRUE(Same(back->results[i], results[i])) << i;

  auto evidence = SampleEvidence();
  std::sort(evidence.begin(), evidence.end(), Before);
  ASSERT_EQ(back->evidence.size(), evidence.size());
  for (size_t i = 0; i < evidence.size(); ++i) EXPECT_TRUE(SameEvidence(back->evidence[i], evidence[i])) << i;
  // Fields, not only their encoding: the banner's bytes (a NUL among them)
  // and flags, the TLS texts, the chain's fingerprints, leaf first.
  const ServiceEvidence& ssh = back->evidence[1];
  ASSERT_TRUE(ssh.banner.has_value());
  EXPECT_EQ(ssh.banner->bytes, evidence[1].banner->bytes);
  EXPECT_TRUE(ssh.banner->truncated);
  EXPECT_EQ(ssh.banner->error, "timeout");
  EXPECT_FALSE(ssh.tls.has_value());
  const ServiceEvidence& https = back->evidence[0];
  ASSERT_TRUE(https.tls.has_value());
  EXPECT_EQ(https.tls->sni, "www0.example.test");
  EXPECT_EQ(https.tls->verdict, TlsVerdict::kTrusted);
  ASSERT_EQ(https.tls->chain.size(), 2u);
  EXPECT_EQ(https.tls->chain[0].sha256, TestPki().certs[1].sha256);
  EXPECT_EQ(https.tls->chain[1].sha256, TestPki().certs[0].sha256);
  EXPECT_TRUE(https.tls->chain[0].der.empty());  // fingerprints only: the DER is in certificates

  // Each certificate once (the CA serves two chains), parsed, sorted by fingerprint.
  ASSERT_EQ(back->certificates.size(), 3u);
  for (size_t i = 1; i < back->certificates.size(); ++i)
    EXPECT_LT(back->certificates[i - 1].sha256, back->certificates[i].sha256);
  for (const CertificateInfo& c : back->certificates) {
    auto it = std::find_if(TestPki().certs.begin(), TestPki().certs.end(),
                           [&](const CertificateInfo& p) { return p.sha256 == c.sha256; });
    ASSERT_NE(it, TestPki().certs.end());
    EXPECT_EQ(c.der, it->der);
    EXPECT_EQ(c.subject_cn, it->subject_cn);
  }

  // The decoded form encodes back to the same bytes.
  EXPECT_EQ(MustEncodeBundle(*back), bytes);
}

TEST(ResultBundleV2, BytesDoNotDependOnInputOrderOrForm) {
  std::string bytes = MustEncodeBundle(SampleBundle());
  auto digest = BundleDigest(bytes);
  const Pki& pki = TestPki();
  std::mt19937_64 rng(0xe71d);
  for (int i = 0; i < 50; ++i) {
    ResultBundle b = SampleBundle();
    std::shuffle(b.results.begin(), b.results.end(), rng);
    b.results.push_back(Make(0x0a000002, 443, PortState::kFiltered, 1));  // loses to the open one
    std::shuffle(b.evidence.begin(), b.evidence.end(), rng);
    // Certificates given in the chains or beside them (some twice, one that
    // no evidence refers to), in any order.
    b.certificates = pki.certs;
    b.certificates.push_back(pki.certs[0]);
    b.certificates.push_back(pki.certs[1]);
    std::shuffle(b.certificates.begin(), b.certificates.end(), rng);
    for (auto& ev : b.evidence)
      if (ev.tls)
        for (auto& c : ev.tls->chain)
          if (rng() % 2) c = FingerprintOf(c);
    if (i % 5 == 0) {
      ServiceEvidence ssh = SampleEvidence()[2];
      b.evidence.erase(std::remove_if(b.evidence.begin(), b.evidence.end(),
                                      [](const ServiceEvidence& e) { return e.port == 22; }),
                       b.evidence.end());
      b.evidence.push_back(ssh);
      b.results.push_back(Make(0x0a000009, 22, PortState::kClosed));  // results only
      std::string other = MustEncodeBundle(b);
      EXPECT_NE(other, bytes);
      continue;
    }
    std::string again = MustEncodeBundle(b);
    EXPECT_EQ(again, bytes) << i;
    EXPECT_EQ(BundleDigest(again), digest);
  }
  // Any change of the evidence changes the digest.
  ResultBundle changed = SampleBundle();
  changed.evidence[2].banner->bytes += "x";
  EXPECT_NE(BundleDigest(MustEncodeBundle(changed)), digest);
}

TEST(ResultBundleV2, TwoAnswersForOnePortKeepOneWhateverTheOrder) {
  ResultBundle b = SampleBundle();
  ServiceEvidence other = b.evidence[2];
  other.banner->bytes = "SSH-2.0-dropbear\r\n";
  b.evidence.push_back(other);
  std::string bytes = MustEncodeBundle(b);
  std::swap(b.evidence[2], b.evidence[3]);
  EXPECT_EQ(MustEncodeBundle(b), bytes);
  auto back = DecodeResultBundle(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->evidence.size(), 3u);
}

TEST(ResultBundleV2, WithoutEvidenceItIsVersion1) {
  ResultBundle b;
  b.results = Sample();
  b.certificates = TestPki().certs;  // no evidence refers to them: left out
  std::string bytes = MustEncodeBundle(b);
  EXPECT_EQ(bytes[4], 1);
  EXPECT_EQ(bytes, MustEncode(Sample()));
}

TEST(ResultBundleV2, Version1AsWrittenBeforeStillDecodes) {
  // Written by hand as version 1 was specified: magic, version, count, records.
  std::string v1("ndob\x01\x02\x00\x00\x00", 9);
  for (auto [v4, port, state] : {std::tuple{0x0a000001u, uint16_t{80}, PortState::kOpen},
                                 std::tuple{0x0a000001u, uint16_t{443}, PortState::kClosed}}) {
    auto addr = IpAddress::FromV4(v4).bytes();
    v1.append(reinterpret_cast<const char*>(addr.data()), addr.size());
    v1.push_back(static_cast<char>(port >> 8));
    v1.push_back(static_cast<char>(port & 0xff));
    v1 += EncodeResultValue(Make(v4, port, state));
  }
  auto back = DecodeResultBundle(v1);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->results.size(), 2u);
  EXPECT_TRUE(Same(back->results[0], Make(0x0a000001, 80, PortState::kOpen)));
  EXPECT_TRUE(Same(back->results[1], Make(0x0a000001, 443, PortState::kClosed)));
  EXPECT_TRUE(back->evidence.empty());
  EXPECT_EQ(MustEncode(back->results), v1);
}

TEST(ResultBundleV2, EncodeRefusesWhatItCannotCarry) {
  auto refused = [](ResultBundle b) {
    return EncodeResultBundle(std::move(b)).status().code() == Status::Code::kInvalidArgument;
  };
  ResultBundle b = SampleBundle();
  b.evidence[2].address = IpAddress::FromV4(0x0a000001);  // 10.0.0.1:22 is filtered
  EXPECT_TRUE(refused(b));
  b = SampleBundle();
  b.evidence[2].port = 2222;  // no result at all
  EXPECT_TRUE(refused(b));
  b = SampleBundle();
  b.evidence[2].banner->bytes.assign(kMaxBannerBytes + 1, 'x');
  EXPECT_TRUE(refused(b));
  b = SampleBundle();
  b.evidence[0].tls->chain[1] = FingerprintOf(b.evidence[0].tls->chain[1]);
  b.evidence[1].tls->chain[1] = FingerprintOf(b.evidence[1].tls->chain[1]);  // the CA's DER nowhere
  EXPECT_TRUE(refused(b));
  b.certificates = {TestPki().certs[0]};  // ... now beside the chains
  EXPECT_TRUE(EncodeResultBundle(b).ok());
  b = SampleBundle();
  b.evidence[0].tls->chain[0].der = TestPki().leaf1_der;  // not the DER of its fingerprint
  EXPECT_TRUE(refused(b));
  b = SampleBundle();
  b.evidence[0].tls->chain[0].der = "not a certificate";  // its fingerprint, but no certificate
  b.evidence[0].tls->chain[0].sha256 = BundleDigest("not a certificate");
  EXPECT_TRUE(CheckBundleEvidence(b.evidence[0]).ok());
  EXPECT_TRUE(refused(b));
  EXPECT_TRUE(CheckBundleEvidence(SampleEvidence()[0]).ok());
}

// A version 2 bundle put together from its parts, to write what the encoder
// never would.
struct V2Parts {
  std::string results;  // records
  uint32_t n = 0;
  std::vector<std::string> certs;  // DERs
  struct Ev {
    IpAddress address;
    uint16_t port;
    std::string bytes;
  };
  std::vector<Ev> evidence;

  static V2Parts Of(const ResultBundle& sample) {
    V2Parts p;
    std::string v1 = MustEncode(sample.results);
    p.results = v1.substr(kBundleHeaderSize);
    p.n = static_cast<uint32_t>(p.results.size() / kBundleRecordSize);
    std::map<std::array<uint8_t, 32>, std::string> certs;
    auto evidence = sample.evidence;
    std::sort(evidence.begin(), evidence.end(), Before);
    for (const auto& ev : evidence) {
      p.evidence.push_back({ev.address, ev.port, EncodeEvidence(ev)});
      if (ev.tls)
        for (const auto& c : ev.tls->chain) certs[c.sha256] = c.der;
    }
    for (auto& [fp, der] : certs) p.certs.push_back(der);
    return p;
  }
  std::string Assemble() const { return Assemble(n, evidence.size(), certs.size()); }
  std::string Assemble(uint32_t n_, uint32_t m, uint32_t c) const {
    std::string out("ndob\x02", 5);
    for (uint32_t v : {n_, m, c})
      for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>((v >> (8 * b)) & 0xff));
    out += results;
    auto u32 = [&](size_t v) {
      for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>((v >> (8 * b)) & 0xff));
    };
    for (const auto& der : certs) {
      u32(der.size());
      out += der;
    }
    for (const auto& ev : evidence) {
      auto a = ev.address.bytes();
      out.append(reinterpret_cast<const char*>(a.data()), a.size());
      out.push_back(static_cast<char>(ev.port >> 8));
      out.push_back(static_cast<char>(ev.port & 0xff));
      u32(ev.bytes.size());
      out += ev.bytes;
    }
    return out;
  }
};

TEST(ResultBundleV2, DecodeRefusesHostileInput) {
  std::string bytes = MustEncodeBundle(SampleBundle());
  auto corrupt = [](const std::string& b) { return DecodeResultBundle(b).status().code() == Status::Code::kCorruption; };
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_TRUE(corrupt(bytes.substr(0, n))) << n;
  EXPECT_TRUE(corrupt(bytes + "x"));
  EXPECT_TRUE(corrupt(bytes + std::string(8, '\0')));

  const V2Parts good = V2Parts::Of(SampleBundle());
  ASSERT_EQ(good.Assemble(), bytes);  // the parts are right
  ASSERT_EQ(good.certs.size(), 3u);
  ASSERT_EQ(good.evidence.size(), 3u);
  V2Parts p = good;

  // Counts: no evidence (version 2 is only for bundles with evidence), more
  // evidence than results, huge counts, counts that disagree with the bytes.
  EXPECT_TRUE(corrupt(V2Parts{good.results, good.n, {}, {}}.Assemble()));
  EXPECT_TRUE(corrupt(good.Assemble(good.n, 0, 0)));
  EXPECT_TRUE(corrupt(good.Assemble(2, 3, 3)));
  EXPECT_TRUE(corrupt(good.Assemble(0xffffffff, 3, 3)));
  EXPECT_TRUE(corrupt(good.Assemble(good.n, 0xffffffff, 3)));
  EXPECT_TRUE(corrupt(good.Assemble(good.n, 3, 0xffffffff)));
  EXPECT_TRUE(corrupt(good.Assemble(good.n, 2, 3)));
  EXPECT_TRUE(corrupt(good.Assemble(good.n, 3, 2)));
  EXPECT_TRUE(corrupt(good.Assemble(good.n, 3, 4)));

  // Certificates: out of order, repeated, one no evidence refers to, one
  // missing, one damaged, one of length 0 or over the limit.
  p = good;
  std::swap(p.certs[0], p.certs[1]);
  EXPECT_TRUE(corrupt(p.Assemble()));
  p = good;
  p.certs.insert(p.certs.begin() + 1, p.certs[0]);
  EXPECT_TRUE(corrupt(p.Assemble()));
  p = good;
  {
    auto extra_key = MakeKey(testing::KeyType::kEcP256);
    testing::CertSpec spec;
    spec.cn = "unreferenced";
    spec.key = extra_key.get();
    spec.not_before = testing::UnixTime(2024, 1, 1);
    spec.not_after = testing::UnixTime(2030, 1, 1);
    std::string der = testing::ToDer(MakeCert(spec).get());
    auto fp = BundleDigest(der);
    auto at = std::find_if(p.certs.begin(), p.certs.end(), [&](const std::string& d) { return BundleDigest(d) > fp; });
    p.certs.insert(at, der);
    EXPECT_TRUE(corrupt(p.Assemble()));
  }
  for (size_t i = 0; i < 3; ++i) {
    p = good;
    p.certs.erase(p.certs.begin() + i);
    EXPECT_TRUE(corrupt(p.Assemble())) << i;
    p = good;
    p.certs[i][p.certs[i].size() / 2] ^= 0x40;
    EXPECT_TRUE(corrupt(p.Assemble())) << i;
    p = good;
    p.certs[i] += '\0';
    EXPECT_TRUE(corrupt(p.Assemble())) << i;
  }
  p = good;
  p.certs[0].clear();
  EXPECT_TRUE(corrupt(p.Assemble()));
  p = good;
  p.certs[2].assign(kMaxBundleCertificateBytes + 1, '0');
  EXPECT_TRUE(corrupt(p.Assemble()));

  // Evidence: out of order, repeated, of a closed, filtered or absent port,
  // not in the codec's encoding of its content, a banner over the limit, an
  // empty or oversized record, garbage.
  p = good;
  std::swap(p.evidence[0], p.evidence[1]);
  EXPECT_TRUE(corrupt(p.Assemble()));
  p = good;
  p.evidence[1] = p.evidence[0];
  EXPECT_TRUE(corrupt(p.Assemble()));
  for (uint16_t port : {uint16_t{80}, uint16_t{22}}) {  // 10.0.0.1: closed, filtered
    p = good;
    p.evidence[0].address = IpAddress::FromV4(0x0a000001);
    p.evidence[0].port = port;
    std::sort(p.evidence.begin(), p.evidence.end(),
              [](const V2Parts::Ev& a, const V2Parts::Ev& b) { return std::tie(a.address, a.port) < std::tie(b.address, b.port); });
    EXPECT_TRUE(corrupt(p.Assemble())) << port;
  }
  p = good;
  p.evidence[2].port = 8444;
  EXPECT_TRUE(corrupt(p.Assemble()));
  p = good;
  p.evidence[1].bytes += std::string(8, '\0');  // a word the codec would not write
  EXPECT_TRUE(corrupt(p.Assemble()));
  {
    ServiceEvidence big = SampleEvidence()[2];
    big.banner->bytes.assign(kMaxBannerBytes + 1, 'B');
    p = good;
    p.evidence[1].bytes = EncodeEvidence(big);
    EXPECT_TRUE(corrupt(p.Assemble()));
  }
  p = good;
  p.evidence[1].bytes.clear();
  EXPECT_TRUE(corrupt(p.Assemble()));
  p = good;
  p.evidence[1].bytes.assign(kMaxBundleEvidenceBytes + 8, '\0');
  EXPECT_TRUE(corrupt(p.Assemble()));
  p = good;
  p.evidence[1].bytes = std::string(64, '\xff');
  EXPECT_TRUE(corrupt(p.Assemble()));

  // Random damage: refused or decoded, never a crash; whatever decodes
  // re-encodes to the same bytes.
  std::mt19937_64 rng(0xbad2);
  for (int i = 0; i < 3000; ++i) {
    std::string hostile = bytes;
    for (int k = 0; k < 2; ++k) hostile[rng() % hostile.size()] ^= static_cast<char>(1 + rng() % 255);
    auto d = DecodeResultBundle(hostile);
    if (d.ok()) {
      EXPECT_EQ(MustEncodeBundle(*d), hostile);
    }
  }
}

}  // namespace
}  // namespace ndo
