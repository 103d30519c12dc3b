#include "mesh/security/join_token.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <string>
#include <vector>

#include "mesh/membership/messages.h"
#include "mesh/security/security.capnp.h"

namespace ndo::mesh {
namespace {

constexpr int64_t kNow = 1700000000;
const std::string kId = "0123456789abcdef";
const std::string kSecret = "00112233445566778899aabbccddeeff";
const std::string kToken = "ndo1." + kId + "." + kSecret;

bool IsLowerHex(const std::string& s, size_t n) {
  return s.size() == n && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// ---------------------------------------------------------------------------
// Tokens.

TEST(JoinTokenTest, NewTokensAreRandomLowercaseHex) {
  auto a = NewJoinToken(), b = NewJoinToken();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(IsLowerHex(a->id, kTokenIdHexDigits)) << a->id;
  EXPECT_TRUE(IsLowerHex(a->secret, kTokenSecretHexDigits));
  EXPECT_NE(a->id, b->id);
  EXPECT_NE(a->secret, b->secret);
  std::string text = FormatJoinToken(*a);
  auto back = ParseJoinToken(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->id, a->id);
  EXPECT_EQ(back->secret, a->secret);
}

TEST(JoinTokenTest, FormatAndParseRoundTrip) {
  EXPECT_EQ(FormatJoinToken(JoinToken{kId, kSecret}), kToken);
  auto t = ParseJoinToken(kToken);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->id, kId);
  EXPECT_EQ(t->secret, kSecret);
}

TEST(JoinTokenTest, ParseTrimsWhitespaceAndLowersHex) {
  auto t = ParseJoinToken(" \t\r\n" + std::string("ndo1.0123456789ABCDEF.00112233445566778899AABBCCDDEEFF") + "\n\v\f ");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->id, kId);
  EXPECT_EQ(t->secret, kSecret);
}

TEST(JoinTokenTest, ParseRejectsMalformedTokensWithoutEchoingTheSecret) {
  const std::string secret2 = "ffeeddccbbaa99887766554433221100";
  for (const std::string& bad : {
           std::string(),
           std::string("   "),
           "ndo2." + kId + "." + kSecret,
           "NDO1." + kId + "." + kSecret,
           "ndo1" + kId + "." + kSecret,
           "ndo." + kId + "." + kSecret,
           "." + kId + "." + kSecret,
           kId + "." + kSecret,
           "ndo1." + kId + kSecret,                               // no dot between
           "ndo1." + kId.substr(1) + "." + kSecret,               // id 15
           "ndo1." + kId + "0." + kSecret,                        // id 17
           "ndo1." + kId + "." + kSecret.substr(1),               // secret 31
           "ndo1." + kId + "." + kSecret + "0",                   // secret 33
           "ndo1." + kId.substr(0, 15) + "g." + kSecret,          // non-hex id
           "ndo1." + kId + "." + kSecret.substr(0, 31) + "x",     // non-hex secret
           "ndo1." + kId + "." + kSecret + ".",                   // extra dot
           "ndo1." + kId + "." + kSecret.substr(0, 16) + "." + kSecret.substr(16),
           "ndo1." + kId + ".." + kSecret,
           "ndo1.." + kId + "." + kSecret,
           "ndo1." + kId + "." + kSecret + "." + secret2,
           "ndo1." + kId + ". " + kSecret.substr(1),              // inner space
           "ndo1." + kId + "." + kSecret.substr(0, 31) + std::string(1, '\0'),
           "ndo1." + kId + "." + kSecret + " x",
       }) {
    auto r = ParseJoinToken(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << bad;
    const std::string& msg = r.status().message();
    EXPECT_NE(msg.find("join token"), std::string::npos) << msg;
    // Neither the secret nor a recognisable part of it is ever echoed.
    EXPECT_EQ(msg.find(kSecret.substr(0, 8)), std::string::npos) << msg;
    EXPECT_EQ(msg.find(kSecret.substr(16, 8)), std::string::npos) << msg;
    EXPECT_EQ(msg.find(secret2.substr(0, 8)), std::string::npos) << msg;
  }
}

// ---------------------------------------------------------------------------
// Enrolment proofs.

const std::string kExporter(32, '\x5a');
const std::string kCsrHash(32, '\x17');

TEST(JoinTokenProofTest, ProofIsHmacSha256OverLengthPrefixedFields) {
  std::string proof = EnrolmentProof(kSecret, kExporter, kCsrHash, "dmz", "scanner-1");
  ASSERT_EQ(proof.size(), 32u);
  // Recomputed here from the documented layout.
  std::string msg = "ndo-enrol-v1";
  for (const std::string& field : {kExporter, kCsrHash, std::string("dmz"), std::string("scanner-1")}) {
    uint32_t n = static_cast<uint32_t>(field.size());
    msg += static_cast<char>(n >> 24);
    msg += static_cast<char>(n >> 16);
    msg += static_cast<char>(n >> 8);
    msg += static_cast<char>(n);
    msg += field;
  }
  unsigned char md[32];
  unsigned int len = 0;
  ASSERT_NE(HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
                 reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), md, &len),
            nullptr);
  EXPECT_EQ(proof, std::string(reinterpret_cast<const char*>(md), len));
  EXPECT_EQ(EnrolmentProof(kSecret, kExporter, kCsrHash, "dmz", "scanner-1"), proof);  // deterministic
}

TEST(JoinTokenProofTest, ProofVerifies) {
  std::string proof = EnrolmentProof(kSecret, kExporter, kCsrHash, "dmz", "scanner-1");
  EXPECT_TRUE(VerifyEnrolmentProof(kSecret, kExporter, kCsrHash, "dmz", "scanner-1", proof));
  std::string empty_fields = EnrolmentProof(kSecret, kExporter, kCsrHash, "", "");
  EXPECT_TRUE(VerifyEnrolmentProof(kSecret, kExporter, kCsrHash, "", "", empty_fields));
}

TEST(JoinTokenProofTest, ProofFailsForAnyChangedInput) {
  std::string proof = EnrolmentProof(kSecret, kExporter, kCsrHash, "dmz", "scanner-1");
  std::string other_exporter = kExporter;
  other_exporter[31] ^= 1;
  std::string other_hash = kCsrHash;
  other_hash[0] ^= 0x80;
  std::string other_secret = kSecret;
  other_secret[31] = 'e';
  EXPECT_FALSE(VerifyEnrolmentProof(kSecret, other_exporter, kCsrHash, "dmz", "scanner-1", proof));
  EXPECT_FALSE(VerifyEnrolmentProof(kSecret, kExporter, other_hash, "dmz", "scanner-1", proof));
  EXPECT_FALSE(VerifyEnrolmentProof(kSecret, kExporter, kCsrHash, "wifi", "scanner-1", proof));
  EXPECT_FALSE(VerifyEnrolmentProof(kSecret, kExporter, kCsrHash, "", "scanner-1", proof));
  EXPECT_FALSE(VerifyEnrolmentProof(kSecret, kExporter, kCsrHash, "dmz", "scanner-2", proof));
  EXPECT_FALSE(VerifyEnrolmentProof(other_secret, kExporter, kCsrHash, "dmz", "scanner-1", proof));
  EXPECT_FALSE(VerifyEnrolmentProof("", kExporter, kCsrHash, "dmz", "scanner-1", proof));
  for (size_t i = 0; i < proof.size(); ++i) {
    std::string p = proof;
    p[i] ^= 0x01;
    EXPECT_FALSE(VerifyEnrolmentProof(kSecret, kExporter, kCsrHash, "dmz", "scanner-1", p)) << "byte " << i;
  }
  EXPECT_FALSE(VerifyEnrolmentProof(kSecret, kExporter, kCsrHash, "dmz", "scanner-1", proof.substr(0, 31)));
  EXPECT_FALSE(VerifyEnrolmentProof(kSecret, kExporter, kCsrHash, "dmz", "scanner-1", proof + "x"));
  EXPECT_FALSE(VerifyEnrolmentProof(kSecret, kExporter, kCsrHash, "dmz", "scanner-1", ""));
}

TEST(JoinTokenProofTest, FieldBoundariesDoNotCollide) {
  // Moving bytes from one field to the next changes the proof.
  EXPECT_NE(EnrolmentProof(kSecret, kExporter, kCsrHash, "dm", "zscanner"),
            EnrolmentProof(kSecret, kExporter, kCsrHash, "dmz", "scanner"));
  EXPECT_NE(EnrolmentProof(kSecret, kExporter, kCsrHash, "", "dmz"), EnrolmentProof(kSecret, kExporter, kCsrHash, "dmz", ""));
  EXPECT_NE(EnrolmentProof(kSecret, kExporter + "x", kCsrHash, "", ""),
            EnrolmentProof(kSecret, kExporter, "x" + kCsrHash, "", ""));
}

// ---------------------------------------------------------------------------
// Token records.

TokenRecord UsableRecord() {
  TokenRecord r;
  r.id = kId;
  r.secret = kSecret;
  r.created_unix = kNow - 60;
  r.expires_unix = kNow + 3600;
  r.max_uses = 2;
  r.uses = 1;
  return r;
}

TEST(JoinTokenRecordTest, CheckTokenUsableAcceptsAGoodToken) {
  TokenRecord r = UsableRecord();
  EXPECT_TRUE(CheckTokenUsable(r, "", kNow).ok());
  EXPECT_TRUE(CheckTokenUsable(r, "anything", kNow).ok());  // no vantage: any
  EXPECT_TRUE(CheckTokenUsable(r, "dmz", r.expires_unix - 1).ok());
  r.vantage = "dmz";
  EXPECT_TRUE(CheckTokenUsable(r, "dmz", kNow).ok());
  r.max_uses = 0;  // unlimited
  r.uses = 4000000000u;
  EXPECT_TRUE(CheckTokenUsable(r, "dmz", kNow).ok());
}

TEST(JoinTokenRecordTest, CheckTokenUsableGivesEachReason) {
  auto reason = [](const TokenRecord& r, std::string_view vantage, int64_t now) {
    Status s = CheckTokenUsable(r, vantage, now);
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument);
    return s.message();
  };
  TokenRecord r = UsableRecord();
  r.revoked = true;
  EXPECT_EQ(reason(r, "", kNow), "token revoked");
  r = UsableRecord();
  EXPECT_EQ(reason(r, "", r.expires_unix), "token expired");  // refused from that second on
  EXPECT_EQ(reason(r, "", r.expires_unix + 100), "token expired");
  r.uses = r.max_uses;
  EXPECT_EQ(reason(r, "", kNow), "token used up");
  r.uses = r.max_uses + 5;
  EXPECT_EQ(reason(r, "", kNow), "token used up");
  r = UsableRecord();
  r.vantage = "dmz";
  EXPECT_EQ(reason(r, "wifi", kNow), "token not valid for vantage wifi");
  EXPECT_NE(reason(r, "", kNow).find("token not valid for vantage"), std::string::npos);
  EXPECT_NE(reason(r, "DMZ", kNow).find("token not valid for vantage"), std::string::npos);
}

TEST(JoinTokenRecordTest, CheckTokenUsableChecksInOrder) {
  TokenRecord r = UsableRecord();
  r.vantage = "dmz";
  r.uses = r.max_uses;
  EXPECT_EQ(CheckTokenUsable(r, "wifi", kNow).message(), "token used up");
  EXPECT_EQ(CheckTokenUsable(r, "wifi", r.expires_unix).message(), "token expired");
  r.revoked = true;
  EXPECT_EQ(CheckTokenUsable(r, "wifi", r.expires_unix).message(), "token revoked");
}

void ExpectSameRecord(const TokenRecord& a, const TokenRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.secret, b.secret);
  EXPECT_EQ(a.created_unix, b.created_unix);
  EXPECT_EQ(a.expires_unix, b.expires_unix);
  EXPECT_EQ(a.max_uses, b.max_uses);
  EXPECT_EQ(a.uses, b.uses);
  EXPECT_EQ(a.vantage, b.vantage);
  EXPECT_EQ(a.used_by, b.used_by);
  EXPECT_EQ(a.revoked, b.revoked);
  EXPECT_EQ(a.role, b.role);
}

TokenRecord FullRecord() {
  TokenRecord r = UsableRecord();
  r.created_unix = -5;
  r.expires_unix = INT64_MAX;
  r.max_uses = UINT32_MAX;
  r.uses = 7;
  r.vantage = std::string(kMaxVantageBytes, 'v');
  r.used_by = {NodeId{1, 2}.Hex(), NodeId{0xffffffffffffffffULL, 0xabcdefULL}.Hex()};
  r.revoked = true;
  r.role = NodeRole::kOperator;
  return r;
}

TEST(JoinTokenRecordTest, EncodeDecodeRoundTrip) {
  for (const TokenRecord& r : {UsableRecord(), FullRecord()}) {
    auto bytes = EncodeTokenRecord(r);
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    auto back = DecodeTokenRecord(*bytes);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    ExpectSameRecord(*back, r);
  }
  // Many users, at the limit.
  TokenRecord many = UsableRecord();
  for (uint64_t i = 1; i <= 100000; ++i) many.used_by.push_back(NodeId{i, ~i}.Hex());
  auto bytes = EncodeTokenRecord(many);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  auto back = DecodeTokenRecord(*bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->used_by, many.used_by);
  many.used_by.push_back(NodeId{0, 1}.Hex());
  EXPECT_FALSE(EncodeTokenRecord(many).ok());
}

TEST(JoinTokenRecordTest, EncodeRejectsInvalidRecords) {
  auto invalid = [](void (*mutate)(TokenRecord&)) {
    TokenRecord r = UsableRecord();
    mutate(r);
    auto e = EncodeTokenRecord(r);
    EXPECT_EQ(e.status().code(), Status::Code::kInvalidArgument);
    return !e.ok();
  };
  EXPECT_TRUE(invalid([](TokenRecord& r) { r.id = ""; }));
  EXPECT_TRUE(invalid([](TokenRecord& r) { r.id += "0"; }));
  EXPECT_TRUE(invalid([](TokenRecord& r) { r.id = "0123456789ABCDEF"; }));
  EXPECT_TRUE(invalid([](TokenRecord& r) { r.secret = r.secret.substr(1); }));
  EXPECT_TRUE(invalid([](TokenRecord& r) { r.secret[3] = 'g'; }));
  EXPECT_TRUE(invalid([](TokenRecord& r) { r.vantage = std::string(kMaxVantageBytes + 1, 'v'); }));
  EXPECT_TRUE(invalid([](TokenRecord& r) { r.vantage = std::string("a\0b", 3); }));
  EXPECT_TRUE(invalid([](TokenRecord& r) { r.used_by = {"not a node id"}; }));
  EXPECT_TRUE(invalid([](TokenRecord& r) { r.used_by = {std::string(33, 'a')}; }));
}

TEST(JoinTokenRecordTest, DecodeRejectsGarbageAndTruncations) {
  std::string bytes = *EncodeTokenRecord(FullRecord());
  ASSERT_EQ(bytes.size() % 8, 0u);
  EXPECT_FALSE(DecodeTokenRecord("").ok());
  EXPECT_FALSE(DecodeTokenRecord("garbage").ok());
  EXPECT_FALSE(DecodeTokenRecord(std::string(8, '\0')).ok());  // an empty message: no id, no secret
  EXPECT_FALSE(DecodeTokenRecord(std::string(64, '\xff')).ok());
  EXPECT_FALSE(DecodeTokenRecord(bytes + std::string(8, '\0')).ok());  // trailing words
  EXPECT_FALSE(DecodeTokenRecord(bytes + "x").ok());
  EXPECT_FALSE(DecodeTokenRecord(std::string(9u << 20, '\0')).ok());  // above the size bound
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto r = DecodeTokenRecord(std::string_view(bytes).substr(0, n));
    EXPECT_FALSE(r.ok()) << "truncated to " << n;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
    }
  }
  // Random bytes and single flipped bits never crash; whatever decodes is valid.
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (int round = 0; round < 2000; ++round) {
    std::string junk = bytes;
    for (int k = 0; k < 3; ++k) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      junk[x % junk.size()] ^= static_cast<char>(1u << ((x >> 32) % 8));
    }
    auto r = DecodeTokenRecord(junk);
    if (r.ok()) {
      EXPECT_TRUE(EncodeTokenRecord(*r).ok());
    }
  }
}

capnp::Text::Reader Text(const std::string& s) { return capnp::Text::Reader(s.c_str(), s.size()); }

// Records a foreign writer might have produced, built with Cap'n Proto directly.
std::string RawRecord(void (*fill)(schema::TokenRecord::Builder)) {
  capnp::MallocMessageBuilder builder;
  auto root = builder.initRoot<schema::TokenRecord>();
  root.setId(Text(kId));
  root.setSecret(Text(kSecret));
  root.setExpiresUnix(kNow);
  fill(root);
  auto flat = capnp::messageToFlatArray(builder);
  auto b = flat.asBytes();
  return std::string(reinterpret_cast<const char*>(b.begin()), b.size());
}

TEST(JoinTokenRecordTest, TheRoleRoundTripsAndAnOldRecordReadsAsScanner) {
  for (NodeRole role : {NodeRole::kScanner, NodeRole::kOperator}) {
    TokenRecord r = UsableRecord();
    r.role = role;
    auto bytes = EncodeTokenRecord(r);
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    auto back = DecodeTokenRecord(*bytes);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->role, role);
  }
  // A record written before roles existed has no role field.
  auto old = DecodeTokenRecord(RawRecord([](schema::TokenRecord::Builder) {}));
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(old->role, NodeRole::kScanner);
  // A role this version does not know is refused, never read as another.
  auto unknown = DecodeTokenRecord(
      RawRecord([](schema::TokenRecord::Builder b) { b.setRole(static_cast<schema::NodeRole>(7)); }));
  EXPECT_EQ(unknown.status().code(), Status::Code::kCorruption);
  TokenRecord bad = UsableRecord();
  bad.role = static_cast<NodeRole>(7);
  EXPECT_FALSE(EncodeTokenRecord(bad).ok());
}

TEST(JoinTokenRecordTest, DecodeBoundsEveryField) {
  EXPECT_TRUE(DecodeTokenRecord(RawRecord([](schema::TokenRecord::Builder) {})).ok());
  for (auto fill : std::vector<void (*)(schema::TokenRecord::Builder)>{
           [](schema::TokenRecord::Builder b) { b.setId("0123456789abcde"); },
           [](schema::TokenRecord::Builder b) { b.setId("0123456789abcdef0"); },
           [](schema::TokenRecord::Builder b) { std::string big(1 << 20, 'a');
             b.setId(Text(big));
            },
           [](schema::TokenRecord::Builder b) { b.setSecret(""); },
           [](schema::TokenRecord::Builder b) { std::string s = kSecret + "00";
             b.setSecret(Text(s));
            },
           [](schema::TokenRecord::Builder b) { b.setSecret("00112233445566778899aabbccddeeXX"); },
           [](schema::TokenRecord::Builder b) { std::string v(kMaxVantageBytes + 1, 'v');
             b.setVantage(Text(v));
            },
           [](schema::TokenRecord::Builder b) { std::string u(31, 'a');
             b.initUsedBy(1).set(0, Text(u));
            },
           [](schema::TokenRecord::Builder b) { std::string u(32, 'A');
             b.initUsedBy(1).set(0, Text(u));
            },
           [](schema::TokenRecord::Builder b) { b.initUsedBy(100001); },
       }) {
    auto r = DecodeTokenRecord(RawRecord(fill));
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
  }
}

// ---------------------------------------------------------------------------
// --ttl.

TEST(JoinTokenTtlTest, ParsesEachUnit) {
  struct Case {
    const char* text;
    int64_t seconds;
  };
  for (const Case& c : {Case{"90s", 90}, Case{"15m", 900}, Case{"24h", 86400}, Case{"7d", 604800},
                        Case{"1s", 1}, Case{"365d", 31536000}, Case{"8760h", 31536000},
                        Case{"31536000s", 31536000}, Case{"007d", 604800}}) {
    auto r = ParseTtlSeconds(c.text);
    ASSERT_TRUE(r.ok()) << c.text << ": " << r.status().ToString();
    EXPECT_EQ(*r, c.seconds) << c.text;
  }
}

TEST(JoinTokenTtlTest, RejectsMalformedZeroNegativeAndTooLong) {
  for (const char* bad : {"", "h", "0h", "0s", "00d", "-1h", "+1h", "24", "1y", "1w", "400d", "366d",
                          "8761h", "31536001s", "525601m", "99999999999999999999999999s",
                          "18446744073709551616s", "9223372036854775807s", " 24h", "24h ", "24 h", "1.5h",
                          "0x10s", "h24", "24hh", "1e3s"}) {
    auto r = ParseTtlSeconds(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace ndo::mesh
