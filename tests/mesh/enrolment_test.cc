// Enrolment: the request and reply codecs, token records in a real store,
// the authority's checks (every refusal leaves the store as it was), the
// use-count rule, and the rate limit on bad attempts.
#include "mesh/security/enrolment.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "mesh/agent/node_identity.h"
#include "mesh/security/security.capnp.h"

namespace ndo::mesh {

// The limiter's tracked sources, read through a member pointer taken in an
// explicit instantiation (where access is not checked): no test hook in the
// class.
namespace {
struct LimiterFailures {
  friend auto TrackedMember(LimiterFailures);
};
template <typename Tag, auto Member>
struct ExposeMember {
  friend auto TrackedMember(Tag) { return Member; }
};
}  // namespace
template struct ExposeMember<LimiterFailures, &EnrolmentLimiter::failures_>;

namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int64_t kNow = 1700000000;

size_t Tracked(const EnrolmentLimiter& limiter) { return (limiter.*TrackedMember(LimiterFailures{})).size(); }

template <typename T>
T Must(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) throw std::runtime_error(r.status().ToString());
  return std::move(r).value();
}

bool Contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

// A cluster as `ndo init` makes it (src/cli/security_commands.cc
// InitCluster): a CA, this node's key and certificate, a keyring, and its
// own certificate recorded as issued.
ClusterMaterial InitCluster(Store& store, const NodeId& node, int64_t now) {
  ClusterMaterial m;
  m.cluster = Must(RandomNodeId());
  m.node = node;
  CaMaterial ca = Must(CreateClusterCa(m.cluster, hours(24 * 365 * 10), now));
  m.ca_pem = ca.cert_pem;
  m.ca_key_pem = ca.key_pem;
  m.key_pem = Must(GenerateKeyPem());
  std::string csr = Must(MakeCsr(m.key_pem, node, "first"));
  IssuedCert cert = Must(SignNodeCert(ca, m.cluster, csr, NodeRole::kScanner, "lab", hours(24 * 365), now));
  m.cert_pem = cert.cert_pem;
  m.serial_hex = cert.serial_hex;
  m.keyring = Must(NewKeyring(now));
  EXPECT_TRUE(RecordIssued(store, node, cert.serial_hex).ok());
  return m;
}

// A node that wants to join: its key and a CSR for its id.
struct Joiner {
  NodeId node;
  std::string key_pem, csr_pem, csr_sha256;
};

Joiner MakeJoiner(uint64_t n, const std::string& name = "joiner") {
  Joiner j;
  j.node = NodeId{0x1000 + n, 0xabcdef00 + n};
  j.key_pem = Must(GenerateKeyPem());
  j.csr_pem = Must(MakeCsr(j.key_pem, j.node, name));
  j.csr_sha256 = Must(CheckCsr(j.csr_pem)).der_sha256;
  return j;
}

const std::string kExporter(32, '\x42');
const std::string kOtherExporter(32, '\x43');

// A request as `ndo join` builds it: the proof over this session's exporter
// and this CSR.
EnrolRequest Request(const TokenRecord& token, const Joiner& j, std::string_view exporter = kExporter,
                     const std::string& vantage = "dmz", const std::string& name = "joiner") {
  return EnrolRequest{token.id, j.csr_pem, vantage, name,
                      EnrolmentProof(token.secret, exporter, j.csr_sha256, vantage, name)};
}

const std::vector<std::string> kMembers = {"10.0.0.1:7946", "[2001:db8::1]:7946"};

bool Nobody(const NodeId&) { return false; }

std::string TokenKey(const std::string& id) { return "mesh.token." + id; }
std::string CertKey(const NodeId& node) { return "mesh.cert." + node.Hex(); }

// What a store holds under a key: the bytes, or the error code.
struct Snapshot {
  bool found = false;
  std::string bytes;
  Status::Code code = Status::Code::kOk;
  friend bool operator==(const Snapshot&, const Snapshot&) = default;
};

class EnrolmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "ndo_enrolment_test_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto store = Store::Open(dir_ + "/store");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    material_ = InitCluster(*store_, kSelf, kNow);
    authority_ = std::make_unique<EnrolmentAuthority>(*store_, material_);
  }
  void TearDown() override {
    authority_.reset();
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  TokenRecord Token(uint32_t max_uses = 1, const std::string& vantage = "", int64_t ttl = 3600,
                    NodeRole role = NodeRole::kScanner) {
    return Must(CreateToken(*store_, TokenParams{ttl, max_uses, vantage, role}, kNow));
  }

  Snapshot Meta(const std::string& key) {
    auto r = store_->GetMeta(key);
    Snapshot s;
    s.found = r.ok();
    if (r.ok()) {
      s.bytes = *r;
    } else {
      s.code = r.status().code();
    }
    return s;
  }

  // Handles a request that must be refused: the reply carries `shown`, the
  // log `logged`, nothing else is handed out, and neither the token's record
  // nor any of `nodes`' certificate records changed (none appeared).
  EnrolmentAuthority::Outcome ExpectRefused(const EnrolRequest& request, std::string_view exporter,
                                            const std::vector<NodeId>& nodes, std::string_view shown,
                                            std::string_view logged,
                                            const std::function<bool(const NodeId&)>& known = Nobody,
                                            int64_t now = kNow) {
    Snapshot token_before = Meta(TokenKey(request.token_id));
    std::vector<Snapshot> certs_before;
    for (const NodeId& n : nodes) certs_before.push_back(Meta(CertKey(n)));

    EnrolmentAuthority::Outcome out = authority_->Handle(request, exporter, kMembers, known, now);

    EXPECT_TRUE(Contains(out.reply.error, shown)) << "reply error: '" << out.reply.error << "', want '" << shown << "'";
    EXPECT_TRUE(Contains(out.log_reason, logged)) << "log reason: '" << out.log_reason << "', want '" << logged << "'";
    EXPECT_TRUE(out.reply.cert_pem.empty());
    EXPECT_TRUE(out.reply.ca_pem.empty());
    EXPECT_TRUE(out.reply.keyring.keys.empty());
    EXPECT_TRUE(out.reply.members.empty());
    EXPECT_TRUE(out.enrolled.empty());
    // The joiner learns nothing of the secret or the proof.
    if (!request.token_id.empty()) {
      auto record = LoadToken(*store_, request.token_id);
      if (record.ok()) {
        EXPECT_FALSE(Contains(out.reply.error, record->secret));
        EXPECT_FALSE(Contains(out.log_reason, record->secret));
      }
    }

    EXPECT_TRUE(Meta(TokenKey(request.token_id)) == token_before) << "the token's record changed";
    for (size_t i = 0; i < nodes.size(); ++i)
      EXPECT_TRUE(Meta(CertKey(nodes[i])) == certs_before[i]) << "certificate record of " << nodes[i].Hex() << " changed";

    // The refusal travels as a reply of its own.
    auto wire = EncodeEnrolReply(out.reply);
    EXPECT_TRUE(wire.ok()) << wire.status().ToString();
    if (wire.ok()) {
      auto back = DecodeEnrolReply(*wire);
      EXPECT_TRUE(back.ok()) << back.status().ToString();
      if (back.ok()) {
        EXPECT_EQ(back->error, out.reply.error);
      }
    }
    return out;
  }

  // Handles a request that must succeed; checks the certificate.
  EnrolmentAuthority::Outcome ExpectEnrolled(const EnrolRequest& request, std::string_view exporter,
                                             const Joiner& joiner, int64_t now = kNow) {
    EnrolmentAuthority::Outcome out = authority_->Handle(request, exporter, kMembers, Nobody, now);
    EXPECT_TRUE(out.reply.error.empty()) << out.reply.error << " / " << out.log_reason;
    EXPECT_EQ(out.enrolled, joiner.node);
    auto info = VerifyNodeCert(out.reply.cert_pem, material_.ca_pem, now);
    EXPECT_TRUE(info.ok()) << info.status().ToString();
    if (info.ok()) {
      EXPECT_EQ(info->node, joiner.node);
      EXPECT_EQ(info->cluster, material_.cluster);
      EXPECT_EQ(Must(IssuedSerial(*store_, joiner.node)), info->serial_hex);
    }
    EXPECT_TRUE(CheckKeyMatchesCert(joiner.key_pem, out.reply.cert_pem).ok());
    EXPECT_EQ(out.reply.ca_pem, material_.ca_pem);
    return out;
  }

  const NodeId kSelf{0x5e1f, 0x5e1f};
  std::string dir_;
  std::unique_ptr<Store> store_;
  ClusterMaterial material_;
  std::unique_ptr<EnrolmentAuthority> authority_;
};

// ---------------------------------------------------------------------------
// The request and reply codecs.

std::string MustEncodeRequest(const EnrolRequest& r) { return Must(EncodeEnrolRequest(r)); }

EnrolRequest SampleRequest() {
  Joiner j = MakeJoiner(1);
  std::string proof(32, '\0');
  for (size_t i = 0; i < proof.size(); ++i) proof[i] = static_cast<char>(i * 37);  // zero bytes included
  return EnrolRequest{"0123456789abcdef", j.csr_pem, "dmz", "node-\xc3\xa9", proof};
}

// Text as given, embedded NULs included (the generated setters take a
// std::string only up to its first NUL).
capnp::Text::Reader WholeText(const std::string& s) { return capnp::Text::Reader(s.data(), s.size()); }

template <typename Build>
std::string RawMessage(Build&& build) {
  capnp::MallocMessageBuilder msg;
  build(msg);
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

std::string RawRequest(const EnrolRequest& r) {
  return RawMessage([&](capnp::MallocMessageBuilder& msg) {
    auto b = msg.initRoot<schema::EnrolRequest>();
    b.setTokenId(WholeText(r.token_id));
    b.setCsr(WholeText(r.csr_pem));
    b.setVantage(WholeText(r.vantage));
    b.setName(WholeText(r.name));
    b.setProof(kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(r.proof.data()), r.proof.size()));
  });
}

TEST(EnrolCodec, RequestRoundTrip) {
  EnrolRequest r = SampleRequest();
  auto back = DecodeEnrolRequest(MustEncodeRequest(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->token_id, r.token_id);
  EXPECT_EQ(back->csr_pem, r.csr_pem);
  EXPECT_EQ(back->vantage, r.vantage);
  EXPECT_EQ(back->name, r.name);
  EXPECT_EQ(back->proof, r.proof);
  // Fields at their limits pass; empty vantage and name too.
  EnrolRequest edge{"ffffffffffffffff", std::string(kMaxPemBytes, 'c'), std::string(kMaxVantageBytes, 'v'),
                    std::string(kMaxNameBytes, 'n'), std::string(32, '\xff')};
  auto edge_back = DecodeEnrolRequest(MustEncodeRequest(edge));
  ASSERT_TRUE(edge_back.ok()) << edge_back.status().ToString();
  EXPECT_EQ(edge_back->csr_pem.size(), kMaxPemBytes);
  EnrolRequest empty_texts = r;
  empty_texts.vantage.clear();
  empty_texts.name.clear();
  EXPECT_TRUE(DecodeEnrolRequest(MustEncodeRequest(empty_texts)).ok());
}

TEST(EnrolCodec, RequestRefusesGarbageTruncationsAndOversizeFields) {
  for (std::string_view garbage : {std::string_view(""), std::string_view("GET / HTTP/1.1\r\n"),
                                   std::string_view("1234567"), std::string_view("\xff\xff\xff\x7f\0\0\0\0", 8)})
    EXPECT_FALSE(DecodeEnrolRequest(garbage).ok());
  EXPECT_FALSE(DecodeEnrolRequest(std::string(kMaxEnrolMessageBytes + 8, '\0')).ok());

  std::string bytes = MustEncodeRequest(SampleRequest());
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(DecodeEnrolRequest(std::string_view(bytes).substr(0, n)).ok()) << n << " of " << bytes.size();
  // Every single corrupted byte: refused or decoded within the limits.
  for (size_t at = 0; at < bytes.size(); ++at) {
    std::string flipped = bytes;
    flipped[at] = static_cast<char>(flipped[at] ^ 0x5a);
    auto r = DecodeEnrolRequest(flipped);
    if (r.ok()) {
      EXPECT_EQ(r->proof.size(), 32u);
      EXPECT_LE(r->csr_pem.size(), kMaxPemBytes);
    }
  }

  auto refused = [](EnrolRequest r, const char* why) {
    EXPECT_FALSE(DecodeEnrolRequest(MustEncodeRequest(r)).ok()) << why;
    EXPECT_FALSE(DecodeEnrolRequest(RawRequest(r)).ok()) << why;
  };
  EXPECT_TRUE(DecodeEnrolRequest(RawRequest(SampleRequest())).ok());
  EnrolRequest r = SampleRequest();
  EnrolRequest t = r;
  t.token_id += "0";
  refused(t, "token id of 17");
  t = r;
  t.csr_pem = std::string(kMaxPemBytes + 1, 'c');
  refused(t, "CSR too long");
  t = r;
  t.vantage = std::string(kMaxVantageBytes + 1, 'v');
  refused(t, "vantage too long");
  t = r;
  t.name = std::string(kMaxNameBytes + 1, 'n');
  refused(t, "name too long");
  // Embedded NULs, as a hostile joiner can put them on the wire.
  t = r;
  t.name = std::string("a\0b", 3);
  EXPECT_FALSE(DecodeEnrolRequest(RawRequest(t)).ok()) << "NUL in name";
  t = r;
  t.token_id = std::string("01234567\0abcdef", 15);
  EXPECT_FALSE(DecodeEnrolRequest(RawRequest(t)).ok()) << "NUL in token id";
  t = r;
  t.token_id = std::string("0123456789abcdef\0", 17) + std::string(1000, 'x');
  EXPECT_FALSE(DecodeEnrolRequest(RawRequest(t)).ok()) << "a long token id behind a NUL";
  t = r;
  t.vantage = std::string("dmz\0", 4);
  EXPECT_FALSE(DecodeEnrolRequest(RawRequest(t)).ok()) << "NUL in vantage";
  t = r;
  t.csr_pem = r.csr_pem + std::string(1, '\0') + std::string(kMaxPemBytes, 'c');
  EXPECT_FALSE(DecodeEnrolRequest(RawRequest(t)).ok()) << "NUL in CSR";
  for (size_t n : {0u, 1u, 31u, 33u, 64u}) {
    t = r;
    t.proof = std::string(n, 'p');
    auto d = DecodeEnrolRequest(MustEncodeRequest(t));
    ASSERT_FALSE(d.ok()) << n;
    EXPECT_TRUE(Contains(d.status().message(), "32 bytes")) << d.status().message();
  }
}

EnrolReply SampleReply() {
  EnrolReply r;
  r.cert_pem = "-----BEGIN CERTIFICATE-----\nnode\n-----END CERTIFICATE-----\n";
  r.ca_pem = "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n";
  r.keyring = Must(NewKeyring(kNow));
  r.keyring.keys.push_back(Must(NewGossipKey(r.keyring, kNow + 1)));
  r.members = kMembers;
  return r;
}

std::string RawReply(const std::string& error, const std::string& keyring, const std::vector<std::string>& members) {
  capnp::MallocMessageBuilder msg;
  auto root = msg.initRoot<schema::EnrolReply>();
  root.setError(WholeText(error));
  root.setCert("c");
  root.setCa("a");
  root.setKeyring(kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(keyring.data()), keyring.size()));
  auto list = root.initMembers(static_cast<unsigned>(members.size()));
  for (unsigned i = 0; i < members.size(); ++i) list.set(i, WholeText(members[i]));
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

TEST(EnrolCodec, ReplyRoundTrip) {
  EnrolReply r = SampleReply();
  auto back = DecodeEnrolReply(Must(EncodeEnrolReply(r)));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->error.empty());
  EXPECT_EQ(back->cert_pem, r.cert_pem);
  EXPECT_EQ(back->ca_pem, r.ca_pem);
  EXPECT_EQ(back->members, r.members);
  EXPECT_EQ(back->keyring.primary, r.keyring.primary);
  ASSERT_EQ(back->keyring.keys.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back->keyring.keys[i].id, r.keyring.keys[i].id);
    EXPECT_EQ(back->keyring.keys[i].key, r.keyring.keys[i].key);
    EXPECT_EQ(back->keyring.keys[i].created_unix, r.keyring.keys[i].created_unix);
  }
  // An error reply carries the error alone (no keyring needed).
  EnrolReply err;
  err.error = "token expired";
  auto err_back = DecodeEnrolReply(Must(EncodeEnrolReply(err)));
  ASSERT_TRUE(err_back.ok()) << err_back.status().ToString();
  EXPECT_EQ(err_back->error, "token expired");
  EXPECT_TRUE(err_back->cert_pem.empty());
  EXPECT_TRUE(err_back->keyring.keys.empty());
  // No member list longer than the limit is sent.
  EnrolReply many = SampleReply();
  many.members.assign(kMaxEnrolMembers + 50, "10.1.2.3:7946");
  auto many_back = DecodeEnrolReply(Must(EncodeEnrolReply(many)));
  ASSERT_TRUE(many_back.ok()) << many_back.status().ToString();
  EXPECT_EQ(many_back->members.size(), kMaxEnrolMembers);
}

TEST(EnrolCodec, ReplyRefusesGarbageTruncationsAndOversizeFields) {
  for (std::string_view garbage : {std::string_view(""), std::string_view("not a reply"),
                                   std::string_view("\xff\xff\xff\x7f\0\0\0\0", 8)})
    EXPECT_FALSE(DecodeEnrolReply(garbage).ok());
  std::string bytes = Must(EncodeEnrolReply(SampleReply()));
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(DecodeEnrolReply(std::string_view(bytes).substr(0, n)).ok()) << n << " of " << bytes.size();
  for (size_t at = 0; at < bytes.size(); ++at) {
    std::string flipped = bytes;
    flipped[at] = static_cast<char>(flipped[at] ^ 0xa5);
    auto r = DecodeEnrolReply(flipped);
    if (r.ok() && r->error.empty()) {
      EXPECT_TRUE(r->keyring.Validate().ok());
    }
  }

  EnrolReply r = SampleReply();
  EnrolReply t = r;
  t.error = std::string(1025, 'e');
  EXPECT_FALSE(DecodeEnrolReply(Must(EncodeEnrolReply(t))).ok());
  t = r;
  t.cert_pem = std::string(kMaxPemBytes + 1, 'c');
  EXPECT_FALSE(DecodeEnrolReply(Must(EncodeEnrolReply(t))).ok());
  t = r;
  t.ca_pem = std::string(kMaxPemBytes + 1, 'a');
  EXPECT_FALSE(DecodeEnrolReply(Must(EncodeEnrolReply(t))).ok());
  t = r;
  t.members = {std::string(kMaxAddressBytes + 1, '1')};
  EXPECT_FALSE(DecodeEnrolReply(Must(EncodeEnrolReply(t))).ok());
  // A success reply needs a valid keyring, both ways.
  t = r;
  t.keyring = Keyring{};
  EXPECT_FALSE(EncodeEnrolReply(t).ok());
  std::string ring = Must(EncodeKeyring(r.keyring));
  EXPECT_TRUE(DecodeEnrolReply(RawReply("", ring, {"10.0.0.1:1"})).ok());
  EXPECT_FALSE(DecodeEnrolReply(RawReply("", "", {"10.0.0.1:1"})).ok());
  EXPECT_FALSE(DecodeEnrolReply(RawReply("", ring.substr(0, ring.size() - 8), {})).ok());
  // Embedded NULs, as a hostile server can send them.
  EXPECT_FALSE(DecodeEnrolReply(RawReply("", ring, {std::string("10.0.0.1\0:1", 11)})).ok());
  EXPECT_FALSE(DecodeEnrolReply(RawReply(std::string("x\0", 2) + std::string(2000, 'e'), ring, {})).ok());
  // More members than allowed, as a forged reply would hold.
  EXPECT_TRUE(DecodeEnrolReply(RawReply("", ring, std::vector<std::string>(kMaxEnrolMembers, "m"))).ok());
  EXPECT_FALSE(DecodeEnrolReply(RawReply("", ring, std::vector<std::string>(kMaxEnrolMembers + 1, "m"))).ok());
  // Over the message limit.
  EXPECT_FALSE(DecodeEnrolReply(std::string(kMaxEnrolMessageBytes + 8, '\0')).ok());
}

TEST(EnrolCodec, RelayedEnrolRoundTripAndLimits) {
  RelayedEnrol r{MustEncodeRequest(SampleRequest()), kExporter, "192.0.2.7"};
  auto back = DecodeRelayedEnrol(Must(EncodeRelayedEnrol(r)));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->request, r.request);
  EXPECT_EQ(back->exporter, r.exporter);
  EXPECT_EQ(back->source, r.source);
  std::string bytes = Must(EncodeRelayedEnrol(r));
  for (size_t n = 0; n < bytes.size(); n += 8)
    EXPECT_FALSE(DecodeRelayedEnrol(std::string_view(bytes).substr(0, n)).ok()) << n;
  RelayedEnrol t = r;
  t.exporter = std::string(31, 'x');
  EXPECT_FALSE(DecodeRelayedEnrol(Must(EncodeRelayedEnrol(t))).ok());
  t = r;
  t.source = std::string(kMaxAddressBytes + 1, '1');
  EXPECT_FALSE(DecodeRelayedEnrol(Must(EncodeRelayedEnrol(t))).ok());
  std::string nul_source = RawMessage([&](capnp::MallocMessageBuilder& msg) {
    auto b = msg.initRoot<schema::RelayedEnrol>();
    b.setRequest(kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(r.request.data()), r.request.size()));
    b.setExporter(kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(r.exporter.data()), r.exporter.size()));
    b.setSource(WholeText(std::string("192.0.2.7\0junk", 14)));
  });
  EXPECT_FALSE(DecodeRelayedEnrol(nul_source).ok());
  t = r;
  t.request = std::string(kMaxEnrolMessageBytes + 1, 'r');
  auto big = EncodeRelayedEnrol(t);
  if (big.ok()) {
    EXPECT_FALSE(DecodeRelayedEnrol(*big).ok());
  }
}

// ---------------------------------------------------------------------------
// Token records.

TEST_F(EnrolmentTest, CreateTokenStoresARecordThatLoads) {
  TokenRecord t = Must(CreateToken(*store_, TokenParams{7200, 3, "dmz"}, kNow));
  EXPECT_EQ(t.id.size(), kTokenIdHexDigits);
  EXPECT_EQ(t.secret.size(), kTokenSecretHexDigits);
  EXPECT_EQ(t.created_unix, kNow);
  EXPECT_EQ(t.expires_unix, kNow + 7200);
  EXPECT_EQ(t.max_uses, 3u);
  EXPECT_EQ(t.uses, 0u);
  EXPECT_EQ(t.vantage, "dmz");
  EXPECT_TRUE(t.used_by.empty());
  EXPECT_FALSE(t.revoked);
  EXPECT_TRUE(Meta(TokenKey(t.id)).found);

  TokenRecord loaded = Must(LoadToken(*store_, t.id));
  EXPECT_EQ(loaded.id, t.id);
  EXPECT_EQ(loaded.secret, t.secret);
  EXPECT_EQ(loaded.created_unix, t.created_unix);
  EXPECT_EQ(loaded.expires_unix, t.expires_unix);
  EXPECT_EQ(loaded.max_uses, t.max_uses);
  EXPECT_EQ(loaded.vantage, t.vantage);
  // The token a joiner is handed parses back to the same id and secret.
  JoinToken parsed = Must(ParseJoinToken(FormatJoinToken({t.id, t.secret})));
  EXPECT_EQ(parsed.id, t.id);
  EXPECT_EQ(parsed.secret, t.secret);

  TokenRecord other = Token();
  EXPECT_NE(other.id, t.id);
  EXPECT_NE(other.secret, t.secret);
  EXPECT_EQ(Must(LoadToken(*store_, t.id)).secret, t.secret);  // the first one is still there
}

TEST_F(EnrolmentTest, LoadAndSaveToken) {
  EXPECT_EQ(LoadToken(*store_, "0123456789abcdef").status().code(), Status::Code::kNotFound);
  TokenRecord t = Token(2);
  t.uses = 1;
  t.used_by = {NodeId{1, 2}.Hex()};
  t.revoked = true;
  ASSERT_TRUE(SaveToken(*store_, t).ok());
  TokenRecord loaded = Must(LoadToken(*store_, t.id));
  EXPECT_EQ(loaded.uses, 1u);
  EXPECT_EQ(loaded.used_by, t.used_by);
  EXPECT_TRUE(loaded.revoked);
  // An invalid record is refused and the stored one stays.
  TokenRecord bad = t;
  bad.secret = "not hex";
  EXPECT_FALSE(SaveToken(*store_, bad).ok());
  EXPECT_EQ(Must(LoadToken(*store_, t.id)).secret, t.secret);
  TokenRecord bad_used_by = t;
  bad_used_by.used_by = {"nope"};
  EXPECT_FALSE(SaveToken(*store_, bad_used_by).ok());
  // A corrupt stored record is an error, not a token.
  ASSERT_TRUE(store_->PutMeta(TokenKey(t.id), "garbage!").ok());
  EXPECT_FALSE(LoadToken(*store_, t.id).ok());
}

TEST_F(EnrolmentTest, TokenLifetimeBounds) {
  constexpr int64_t kYear = 365LL * 24 * 3600;
  for (int64_t ttl : {int64_t{0}, int64_t{-1}, kYear + 1, INT64_MIN, INT64_MAX}) {
    auto t = CreateToken(*store_, TokenParams{ttl, 1, ""}, kNow);
    EXPECT_EQ(t.status().code(), Status::Code::kInvalidArgument) << ttl;
  }
  for (int64_t ttl : {int64_t{1}, int64_t{3600}, kYear}) {
    auto t = CreateToken(*store_, TokenParams{ttl, 1, ""}, kNow);
    ASSERT_TRUE(t.ok()) << ttl << ": " << t.status().ToString();
    EXPECT_EQ(t->expires_unix, kNow + ttl);
    EXPECT_TRUE(Meta(TokenKey(t->id)).found);
  }
  EXPECT_FALSE(CreateToken(*store_, TokenParams{60, 1, std::string(kMaxVantageBytes + 1, 'v')}, kNow).ok());
  EXPECT_FALSE(CreateToken(*store_, TokenParams{60, 1, std::string("a\0b", 3)}, kNow).ok());
  EXPECT_TRUE(CreateToken(*store_, TokenParams{60, 1, std::string(kMaxVantageBytes, 'v')}, kNow).ok());
}

TEST_F(EnrolmentTest, IssuedSerials) {
  EXPECT_EQ(Must(IssuedSerial(*store_, kSelf)), material_.serial_hex);  // as `ndo init` records it
  EXPECT_EQ(IssuedSerial(*store_, NodeId{9, 9}).status().code(), Status::Code::kNotFound);
  ASSERT_TRUE(RecordIssued(*store_, NodeId{9, 9}, "abc123").ok());
  EXPECT_EQ(Must(IssuedSerial(*store_, NodeId{9, 9})), "abc123");
}

// ---------------------------------------------------------------------------
// EnrolmentAuthority::Handle.

TEST_F(EnrolmentTest, EnrolsWithAValidToken) {
  TokenRecord token = Token(1, "dmz");
  Joiner j = MakeJoiner(1);
  EnrolmentAuthority::Outcome out = ExpectEnrolled(Request(token, j), kExporter, j);
  EXPECT_TRUE(out.log_reason.empty()) << out.log_reason;
  EXPECT_EQ(out.reply.members, kMembers);
  EXPECT_EQ(out.reply.keyring.primary, material_.keyring.primary);
  ASSERT_EQ(out.reply.keyring.keys.size(), material_.keyring.keys.size());
  EXPECT_EQ(out.reply.keyring.keys[0].key, material_.keyring.keys[0].key);
  TokenRecord after = Must(LoadToken(*store_, token.id));
  EXPECT_EQ(after.uses, 1u);
  EXPECT_EQ(after.used_by, std::vector<std::string>{j.node.Hex()});
  EXPECT_EQ(after.secret, token.secret);
  EXPECT_EQ(after.expires_unix, token.expires_unix);
  // The reply goes over the wire and the joiner can read its certificate.
  auto reply = DecodeEnrolReply(Must(EncodeEnrolReply(out.reply)));
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(Must(VerifyNodeCert(reply->cert_pem, reply->ca_pem, kNow)).node, j.node);
  // The request as decoded from the wire enrols just the same.
  TokenRecord token2 = Token(1);
  Joiner j2 = MakeJoiner(2);
  EnrolRequest decoded = Must(DecodeEnrolRequest(MustEncodeRequest(Request(token2, j2))));
  ExpectEnrolled(decoded, kExporter, j2);
}

TEST_F(EnrolmentTest, TheCertificateBindsTheTokensRoleAndVantage) {
  struct Case {
    NodeRole role;
    std::string token_vantage, asked;  // the token's (empty: any) and the joiner's
  };
  uint64_t n = 10;
  for (const Case& c : {Case{NodeRole::kScanner, "dmz", "dmz"}, Case{NodeRole::kOperator, "dmz", "dmz"},
                        Case{NodeRole::kScanner, "", "wifi"}, Case{NodeRole::kOperator, "", "internet"}}) {
    TokenRecord token = Token(1, c.token_vantage, 3600, c.role);
    EXPECT_EQ(Must(LoadToken(*store_, token.id)).role, c.role);
    Joiner j = MakeJoiner(++n);
    EnrolmentAuthority::Outcome out = ExpectEnrolled(Request(token, j, kExporter, c.asked), kExporter, j);
    CertInfo info = Must(VerifyNodeCert(out.reply.cert_pem, material_.ca_pem, kNow));
    EXPECT_EQ(info.role, c.role) << c.asked;
    EXPECT_EQ(info.vantage, c.asked);
    EXPECT_EQ(out.role, c.role);
    EXPECT_EQ(out.vantage, c.asked);
  }
  // A token that names no vantage and a joiner that asks for none: no
  // certificate (every new one binds a vantage), and the use is not counted.
  TokenRecord token = Token(1);
  Joiner j = MakeJoiner(++n);
  ExpectRefused(Request(token, j, kExporter, ""), kExporter, {j.node}, "no valid vantage", "vantage is empty");
  ExpectRefused(Request(token, j, kExporter, "a\tb"), kExporter, {j.node}, "no valid vantage", "control character");
}

TEST_F(EnrolmentTest, EnrolsJustBeforeTheTokenExpires) {
  TokenRecord token = Token(1, "", 60);
  Joiner j = MakeJoiner(1);
  ExpectEnrolled(Request(token, j), kExporter, j, token.expires_unix - 1);
}

TEST_F(EnrolmentTest, RefusesAnUnknownTokenId) {
  TokenRecord token = Token();
  Joiner j = MakeJoiner(1);
  EnrolRequest r = Request(token, j);
  for (std::string id : {std::string("0123456789abcdef"), std::string(""), std::string("../../etc/passwd")}) {
    r.token_id = id;
    ExpectRefused(r, kExporter, {j.node}, "invalid token", "unknown token id");
    EXPECT_FALSE(Meta(TokenKey(id)).found);
  }
  // The real token is untouched.
  EXPECT_EQ(Must(LoadToken(*store_, token.id)).uses, 0u);
}

TEST_F(EnrolmentTest, RefusesAnExpiredToken) {
  TokenRecord token = Token(1, "", 60);
  Joiner j = MakeJoiner(1);
  ExpectRefused(Request(token, j), kExporter, {j.node}, "token expired", "token expired", Nobody, token.expires_unix);
  ExpectRefused(Request(token, j), kExporter, {j.node}, "token expired", token.id, Nobody, token.expires_unix + 86400);
}

TEST_F(EnrolmentTest, RefusesATokenUsedUp) {
  TokenRecord token = Token(1);
  Joiner first = MakeJoiner(1), second = MakeJoiner(2);
  ExpectEnrolled(Request(token, first), kExporter, first);
  ExpectRefused(Request(token, second), kExporter, {first.node, second.node}, "token used up", "token used up");
  // Nor can the first joiner come again with it.
  ExpectRefused(Request(token, first, kOtherExporter), kOtherExporter, {first.node}, "token used up", "token used up");
  EXPECT_EQ(Must(LoadToken(*store_, token.id)).uses, 1u);
}

TEST_F(EnrolmentTest, RefusesTheWrongVantage) {
  TokenRecord token = Token(1, "dmz");
  Joiner j = MakeJoiner(1);
  ExpectRefused(Request(token, j, kExporter, "wifi"), kExporter, {j.node}, "not valid for vantage wifi",
                "not valid for vantage wifi");
  ExpectRefused(Request(token, j, kExporter, ""), kExporter, {j.node}, "not valid for vantage", "not valid for vantage");
  ExpectRefused(Request(token, j, kExporter, "DMZ"), kExporter, {j.node}, "not valid for vantage", "DMZ");
}

TEST_F(EnrolmentTest, RefusesARevokedToken) {
  TokenRecord token = Token(5);
  token.revoked = true;
  ASSERT_TRUE(SaveToken(*store_, token).ok());
  Joiner j = MakeJoiner(1);
  ExpectRefused(Request(token, j), kExporter, {j.node}, "token revoked", "token revoked");
}

TEST_F(EnrolmentTest, RefusesAForgedProof) {
  TokenRecord token = Token(1);
  Joiner j = MakeJoiner(1);
  // The right id, a secret guessed wrong.
  TokenRecord guessed = token;
  guessed.secret = std::string(kTokenSecretHexDigits, '0');
  ExpectRefused(Request(guessed, j), kExporter, {j.node}, "invalid token", "wrong token proof");
  // Another token's secret.
  TokenRecord other = Token(1);
  guessed.secret = other.secret;
  ExpectRefused(Request(guessed, j), kExporter, {j.node}, "invalid token", "wrong token proof");
  // Bytes that are no proof at all, and a proof with one bit flipped.
  EnrolRequest r = Request(token, j);
  r.proof = std::string(32, '\0');
  ExpectRefused(r, kExporter, {j.node}, "invalid token", "wrong token proof");
  r = Request(token, j);
  r.proof[31] = static_cast<char>(r.proof[31] ^ 1);
  ExpectRefused(r, kExporter, {j.node}, "invalid token", "wrong token proof");
  r.proof = "short";
  ExpectRefused(r, kExporter, {j.node}, "invalid token", "wrong token proof");
  EXPECT_EQ(Must(LoadToken(*store_, token.id)).uses, 0u);
  EXPECT_EQ(Must(LoadToken(*store_, other.id)).uses, 0u);
}

TEST_F(EnrolmentTest, RefusesAProofMadeForAnotherSession) {
  TokenRecord token = Token(1);
  Joiner j = MakeJoiner(1);
  // Proven over one TLS session's exporter, replayed in another.
  EnrolRequest r = Request(token, j, kOtherExporter);
  ExpectRefused(r, kExporter, {j.node}, "invalid token", "wrong token proof");
  ExpectRefused(r, "", {j.node}, "invalid token", "wrong token proof");
  // Once refused, the same request still enrols in its own session.
  ExpectEnrolled(r, kOtherExporter, j);
}

TEST_F(EnrolmentTest, RefusesAProofMadeForAnotherCsr) {
  TokenRecord token = Token(1);
  Joiner victim = MakeJoiner(1), thief = MakeJoiner(2);
  // A proof the victim made, with the thief's CSR substituted.
  EnrolRequest r = Request(token, victim);
  r.csr_pem = thief.csr_pem;
  ExpectRefused(r, kExporter, {victim.node, thief.node}, "invalid token", "wrong token proof");
  // Nor may the vantage or the name be changed under the proof.
  EnrolRequest v = Request(token, victim, kExporter, "dmz", "victim");
  v.vantage = "wifi";
  ExpectRefused(v, kExporter, {victim.node}, "invalid token", "wrong token proof");
  EnrolRequest n = Request(token, victim, kExporter, "dmz", "victim");
  n.name = "mallory";
  ExpectRefused(n, kExporter, {victim.node}, "invalid token", "wrong token proof");
}

TEST_F(EnrolmentTest, RefusesABadCsr) {
  TokenRecord token = Token(1);
  Joiner j = MakeJoiner(1);
  std::vector<std::string> bad = {
      "",
      "not a CSR",
      material_.cert_pem,                                // a certificate, not a request
      j.csr_pem.substr(0, j.csr_pem.size() / 2),         // truncated
      j.key_pem,                                         // a private key
  };
  // One base64 character of the body changed (the signature no longer holds
  // or the DER no longer parses).
  std::string tampered = j.csr_pem;
  size_t at = tampered.find('\n') + 20;
  tampered[at] = tampered[at] == 'A' ? 'B' : 'A';
  bad.push_back(tampered);
  for (const std::string& csr : bad) {
    EnrolRequest r = Request(token, j);
    r.csr_pem = csr;
    // The proof is made over whatever the CSR is, so only the CSR is wrong.
    r.proof = EnrolmentProof(token.secret, kExporter, std::string(32, '\0'), r.vantage, r.name);
    ExpectRefused(r, kExporter, {j.node}, "bad certificate request", "bad CSR");
  }
  EXPECT_EQ(Must(LoadToken(*store_, token.id)).uses, 0u);
}

TEST_F(EnrolmentTest, RefusesTheNodeIdOfAMember) {
  TokenRecord token = Token(1);
  Joiner j = MakeJoiner(1);
  auto known = [&](const NodeId& n) { return n == j.node; };
  ExpectRefused(Request(token, j), kExporter, {j.node}, "node id already taken", j.node.Hex(), known);
  // A member's id is refused even with a CSR made with a new key.
  Joiner impostor = MakeJoiner(1);
  ExpectRefused(Request(token, impostor), kExporter, {j.node}, "node id already taken", "a member's", known);
}

TEST_F(EnrolmentTest, RefusesANodeIdIssuedBefore) {
  TokenRecord token = Token(2);
  // This node's own id (recorded by init).
  Joiner me = MakeJoiner(0);
  me.node = kSelf;
  me.csr_pem = Must(MakeCsr(me.key_pem, kSelf, "me"));
  me.csr_sha256 = Must(CheckCsr(me.csr_pem)).der_sha256;
  ExpectRefused(Request(token, me), kExporter, {kSelf}, "node id already taken", kSelf.Hex());
  // An id enrolled before, by another token, asked for again with a new key.
  TokenRecord earlier = Token(1);
  Joiner j = MakeJoiner(1);
  ExpectEnrolled(Request(earlier, j), kExporter, j);
  Snapshot cert = Meta(CertKey(j.node));
  ASSERT_TRUE(cert.found);
  Joiner again = MakeJoiner(1);
  ASSERT_EQ(again.node, j.node);
  ExpectRefused(Request(token, again), kExporter, {j.node}, "node id already taken", "issued before");
  EXPECT_EQ(Meta(CertKey(j.node)).bytes, cert.bytes);
  EXPECT_EQ(Must(LoadToken(*store_, token.id)).uses, 0u);
}

TEST_F(EnrolmentTest, ATokenOfThreeUsesEnrolsExactlyThreeOfFive) {
  TokenRecord token = Token(3);
  std::vector<Joiner> joiners;
  for (uint64_t i = 1; i <= 5; ++i) joiners.push_back(MakeJoiner(i));
  std::vector<std::string> enrolled;
  int refused = 0;
  for (const Joiner& j : joiners) {
    EnrolmentAuthority::Outcome out = authority_->Handle(Request(token, j), kExporter, kMembers, Nobody, kNow);
    if (out.reply.error.empty()) {
      enrolled.push_back(j.node.Hex());
      EXPECT_EQ(Must(VerifyNodeCert(out.reply.cert_pem, material_.ca_pem, kNow)).node, j.node);
    } else {
      ++refused;
      EXPECT_EQ(out.reply.error, "token used up");
      EXPECT_EQ(IssuedSerial(*store_, j.node).status().code(), Status::Code::kNotFound);
    }
  }
  EXPECT_EQ(enrolled.size(), 3u);
  EXPECT_EQ(refused, 2);
  TokenRecord after = Must(LoadToken(*store_, token.id));
  EXPECT_EQ(after.uses, 3u);
  EXPECT_EQ(after.used_by, enrolled);  // oldest first
  EXPECT_EQ(enrolled, (std::vector<std::string>{joiners[0].node.Hex(), joiners[1].node.Hex(), joiners[2].node.Hex()}));
}

TEST_F(EnrolmentTest, AnUnlimitedTokenEnrolsUntilItExpires) {
  TokenRecord token = Token(0, "", 100);
  for (uint64_t i = 1; i <= 6; ++i) {
    Joiner j = MakeJoiner(i);
    ExpectEnrolled(Request(token, j), kExporter, j);
  }
  EXPECT_EQ(Must(LoadToken(*store_, token.id)).uses, 6u);
  Joiner late = MakeJoiner(7);
  ExpectRefused(Request(token, late), kExporter, {late.node}, "token expired", "token expired", Nobody,
                token.expires_unix);
}

// ---------------------------------------------------------------------------
// EnrolmentLimiter.

using Clock = EnrolmentLimiter::Time;
const Clock kT = Clock{} + hours(1000);

TEST(EnrolmentLimiter, FiveFailuresBlockOneSourceForTheRestOfTheWindow) {
  EnrolmentLimiter limiter;
  const std::string bad = "192.0.2.1", good = "192.0.2.2";
  for (int i = 0; i < EnrolmentLimiter::kMaxFailures; ++i) {
    Clock t = kT + seconds(2 * i);
    EXPECT_EQ(limiter.Admit(bad, t), "") << i;
    limiter.RecordFailure(bad, t);
  }
  for (Clock t : {kT + seconds(10), kT + seconds(30), kT + seconds(59), kT + milliseconds(59999)}) {
    std::string why = limiter.Admit(bad, t);
    EXPECT_FALSE(why.empty());
    EXPECT_TRUE(Contains(why, bad)) << why;
    EXPECT_EQ(limiter.Admit(good, t), "");  // others are not affected
  }
  // The window ran from the first failure: it is over at +60 s.
  EXPECT_EQ(limiter.Admit(bad, kT + EnrolmentLimiter::kWindow), "");
  // A fresh window: one failure does not block again.
  limiter.RecordFailure(bad, kT + seconds(61));
  EXPECT_EQ(limiter.Admit(bad, kT + seconds(62)), "");
}

TEST(EnrolmentLimiter, FourFailuresDoNotBlock) {
  EnrolmentLimiter limiter;
  for (int i = 0; i < EnrolmentLimiter::kMaxFailures - 1; ++i) {
    EXPECT_EQ(limiter.Admit("198.51.100.9", kT + seconds(i)), "");
    limiter.RecordFailure("198.51.100.9", kT + seconds(i));
  }
  EXPECT_EQ(limiter.Admit("198.51.100.9", kT + seconds(10)), "");
  // Failures spread over more than a window never add up.
  EnrolmentLimiter spread;
  for (int i = 0; i < 3 * EnrolmentLimiter::kMaxFailures; ++i) {
    Clock t = kT + seconds(25 * i);
    EXPECT_EQ(spread.Admit("198.51.100.10", t), "") << i;
    spread.RecordFailure("198.51.100.10", t);
  }
}

TEST(EnrolmentLimiter, MoreThanTwentyAttemptsInOneSecondAreRefusedForAll) {
  EnrolmentLimiter limiter;
  for (int i = 0; i < EnrolmentLimiter::kGlobalPerSecond; ++i)
    EXPECT_EQ(limiter.Admit("203.0.113." + std::to_string(i), kT + milliseconds(10 * i)), "") << i;
  std::string why = limiter.Admit("203.0.113.200", kT + milliseconds(500));
  EXPECT_FALSE(why.empty());
  EXPECT_TRUE(Contains(why, "all sources")) << why;
  EXPECT_FALSE(limiter.Admit("203.0.113.0", kT + milliseconds(999)).empty());  // admitted before, refused now
  // The next second admits again.
  EXPECT_EQ(limiter.Admit("203.0.113.200", kT + seconds(1)), "");
  // Refused attempts did not use up the next second's allowance.
  for (int i = 1; i < EnrolmentLimiter::kGlobalPerSecond; ++i)
    EXPECT_EQ(limiter.Admit("203.0.113.201", kT + seconds(1) + milliseconds(i)), "") << i;
  EXPECT_FALSE(limiter.Admit("203.0.113.202", kT + seconds(1) + milliseconds(900)).empty());
}

TEST(EnrolmentLimiter, TrackedSourcesStayBoundedUnderAFlood) {
  EnrolmentLimiter limiter;
  const size_t kFlood = 2 * EnrolmentLimiter::kMaxTracked + 100;
  // Failures from many addresses, all inside one window.
  for (size_t i = 0; i < kFlood; ++i) {
    Clock t = kT + std::chrono::microseconds(10 * i);
    std::string source = "10." + std::to_string(i >> 16) + "." + std::to_string((i >> 8) & 255) + "." +
                         std::to_string(i & 255);
    limiter.RecordFailure(source, t);
    limiter.RecordFailure(source, t);
    ASSERT_LE(Tracked(limiter), EnrolmentLimiter::kMaxTracked) << i;
  }
  EXPECT_EQ(Tracked(limiter), EnrolmentLimiter::kMaxTracked);
  // A source that fails now is still tracked and blocked.
  Clock now = kT + seconds(5);
  for (int i = 0; i < EnrolmentLimiter::kMaxFailures; ++i) limiter.RecordFailure("192.0.2.99", now);
  EXPECT_LE(Tracked(limiter), EnrolmentLimiter::kMaxTracked);
  EXPECT_FALSE(limiter.Admit("192.0.2.99", now + seconds(1)).empty());
  // After the window, the next new source clears the expired entries.
  limiter.RecordFailure("192.0.2.100", now + seconds(61));
  EXPECT_LE(Tracked(limiter), 2u);
  EXPECT_EQ(limiter.Admit("10.0.0.1", now + seconds(62)), "");
  // Admit alone (no failure) tracks nothing.
  EnrolmentLimiter quiet;
  for (int i = 0; i < 5000; ++i) quiet.Admit("172.16.0." + std::to_string(i), kT + seconds(i));
  EXPECT_EQ(Tracked(quiet), 0u);
}

}  // namespace
}  // namespace ndo::mesh
