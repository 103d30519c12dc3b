// The enrolment relay: only an alive, unrevoked authority is relayed to (a
// random one), the frame carries the joiner's request, exporter and source
// unchanged, and the authority's reply (or its silence) becomes the joiner's
// answer, counted as a failure only when the authority refused.
#include "mesh/security/enrolment_relay.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "mesh/membership/stream_frame.h"

namespace ndo::mesh {
namespace {

NodeId Id(uint8_t b) {
  std::string hex(32, '0');
  hex[0] = "0123456789abcdef"[b >> 4];
  hex[1] = "0123456789abcdef"[b & 15];
  hex[31] = '1';
  return NodeId::FromHex(hex);
}

std::string Addr(uint8_t b) { return "10.0.0." + std::to_string(b) + ":7946"; }

SecurityState WithAuthorities(std::initializer_list<uint8_t> ids) {
  SecurityState s;
  for (uint8_t b : ids) AddAuthority(s, Id(b));
  return s;
}

std::vector<SecurityPeer> Alive(std::initializer_list<uint8_t> ids) {
  std::vector<SecurityPeer> out;
  for (uint8_t b : ids) out.push_back({Id(b), Addr(b)});
  return out;
}

TEST(EnrolmentRelay, RelaysTheRequestUnchangedToAnAliveAuthority) {
  EnrolmentRelay relay(1);
  const std::string exporter(kEnrolExporterBytes, 'x');
  auto plan = relay.Plan("request-bytes", exporter, "192.0.2.7", WithAuthorities({5}), Alive({2, 5}));
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->to, Addr(5));
  auto body = ExpectFrame(plan->frame, FrameKind::kEnrolRelay);
  ASSERT_TRUE(body.ok());
  auto relayed = DecodeRelayedEnrol(*body);
  ASSERT_TRUE(relayed.ok());
  EXPECT_EQ(relayed->request, "request-bytes");
  EXPECT_EQ(relayed->exporter, exporter);
  EXPECT_EQ(relayed->source, "192.0.2.7");
}

TEST(EnrolmentRelay, NoAliveUnrevokedAuthorityIsUnavailable) {
  EnrolmentRelay relay(1);
  // An authority not alive (not in the list), or revoked, is not one.
  SecurityState s = WithAuthorities({5, 6});
  Revoke(s, {Id(6), "", 1, ""});
  auto plan = relay.Plan("r", "e", "192.0.2.7", s, Alive({2, 6}));
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), Status::Code::kUnavailable);
  EXPECT_FALSE(EnrolmentRelay::Refusal().error.empty());
  // Alive members that are not authorities are not relayed to either.
  EXPECT_FALSE(relay.Plan("r", "e", "s", WithAuthorities({}), Alive({2, 3})).ok());
}

TEST(EnrolmentRelay, SpreadsOverTheAuthoritiesAtRandom) {
  EnrolmentRelay relay(3);
  std::set<std::string> to;
  for (int i = 0; i < 50; ++i) to.insert(relay.Plan("r", "e", "s", WithAuthorities({4, 5, 6}), Alive({4, 5, 6}))->to);
  EXPECT_EQ(to, (std::set<std::string>{Addr(4), Addr(5), Addr(6)}));
}

TEST(EnrolmentRelay, TheAuthoritysAnswerIsPassedOn) {
  EnrolReply enrolled;
  enrolled.cert_pem = "CERT";
  enrolled.ca_pem = "CA";
  GossipKey key;
  key.id = 7;
  enrolled.keyring.keys = {key};
  enrolled.keyring.primary = 7;
  enrolled.members = {"10.0.0.5:7946"};
  auto bytes = EncodeEnrolReply(enrolled);
  ASSERT_TRUE(bytes.ok()) << bytes.status().message();
  auto ok = EnrolmentRelay::OnReply(EncodeFrame(FrameKind::kEnrolRelay, *bytes));
  EXPECT_TRUE(ok.relayed);
  EXPECT_FALSE(ok.record_failure);
  EXPECT_EQ(ok.answer.cert_pem, "CERT");
  EXPECT_TRUE(ok.answer.error.empty());

  EnrolReply refused;
  refused.error = "bad token";
  auto no = EnrolmentRelay::OnReply(EncodeFrame(FrameKind::kEnrolRelay, *EncodeEnrolReply(refused)));
  EXPECT_TRUE(no.relayed);
  EXPECT_TRUE(no.record_failure);  // the joiner's failure: counted
  EXPECT_EQ(no.answer.error, "bad token");
}

TEST(EnrolmentRelay, NoAnswerIsNotTheJoinersFault) {
  for (const Result<std::string>& frame :
       {Result<std::string>(Status::Unavailable("connection refused")),
        Result<std::string>(EncodeFrame(FrameKind::kPushPull, "x")),
        Result<std::string>(EncodeFrame(FrameKind::kEnrolRelay, "not capnp"))}) {
    auto out = EnrolmentRelay::OnReply(frame);
    EXPECT_FALSE(out.relayed);
    EXPECT_FALSE(out.record_failure);
    EXPECT_FALSE(out.answer.error.empty());
    EXPECT_FALSE(out.log_reason.empty());
    EXPECT_TRUE(out.answer.cert_pem.empty());
  }
}

}  // namespace
}  // namespace ndo::mesh
