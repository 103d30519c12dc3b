// The envelope of stream frames and the routing of inbound frames
// (mesh/membership/stream_frame.h): every kind round-trips, empty and unknown frames
// are errors, and every row of the routing table.
#include "mesh/membership/stream_frame.h"

#include <gtest/gtest.h>

#include "mesh/membership/codec.h"

#include <string>
#include <vector>

namespace ndo::mesh {
namespace {

const std::vector<FrameKind> kAllKinds = {FrameKind::kPushPull, FrameKind::kWork, FrameKind::kSecuritySync,
                                          FrameKind::kEnrolRelay};

TEST(StreamFrameTest, EveryKindRoundTrips) {
  const std::string body("a body\0with a nul and \xff", 24);
  for (FrameKind kind : kAllKinds) {
    std::string frame = EncodeFrame(kind, body);
    ASSERT_EQ(frame.size(), 1 + body.size()) << FrameKindName(kind);
    auto back = DecodeFrame(frame);
    ASSERT_TRUE(back.ok()) << FrameKindName(kind) << ": " << back.status().message();
    EXPECT_EQ(back->kind, kind);
    EXPECT_EQ(back->body, body);
    EXPECT_EQ(back->body.data(), frame.data() + 1) << "the body is a view into the frame";
    auto expected = ExpectFrame(frame, kind);
    ASSERT_TRUE(expected.ok()) << expected.status().message();
    EXPECT_EQ(*expected, body);
  }
}

TEST(StreamFrameTest, TheKindBytesAreTheWiresOwn) {
  EXPECT_EQ(EncodeFrame(FrameKind::kPushPull, "x"), "Px");
  EXPECT_EQ(EncodeFrame(FrameKind::kWork, "x"), "Wx");
  EXPECT_EQ(EncodeFrame(FrameKind::kSecuritySync, "x"), "Sx");
  EXPECT_EQ(EncodeFrame(FrameKind::kEnrolRelay, "x"), "Ex");
}

TEST(StreamFrameTest, AKindByteAloneIsAFrameWithAnEmptyBody) {
  // Truncated to its kind byte: the kind's decoder refuses the empty body.
  for (FrameKind kind : kAllKinds) {
    auto back = DecodeFrame(EncodeFrame(kind, ""));
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_EQ(back->kind, kind);
    EXPECT_TRUE(back->body.empty());
  }
}

TEST(StreamFrameTest, TruncatedBodyIsTheBodyDecodersToRefuse) {
  // The envelope has no length of its own (the stream's 4-byte header has):
  // a push-pull frame cut short still has its kind, and its body no longer
  // decodes.
  PushPull pp;
  pp.sender = NodeId{1, 2};
  pp.join = true;
  auto info = std::make_shared<MemberInfo>();
  info->id = pp.sender;
  info->name = "a";
  info->vantage = "lab";
  info->address = "127.0.0.1:7946";
  pp.state.push_back(Update{Update::Kind::kAlive, info, 3, {}});
  auto body = EncodePushPull(pp);
  ASSERT_TRUE(body.ok()) << body.status().message();
  std::string frame = EncodeFrame(FrameKind::kPushPull, *body);
  auto whole = ExpectFrame(frame, FrameKind::kPushPull);
  ASSERT_TRUE(whole.ok());
  auto back = DecodePushPull(*whole);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->sender, pp.sender);
  for (size_t cut : {size_t{1}, size_t{8}, body->size() / 2, body->size()}) {
    std::string truncated = frame.substr(0, frame.size() - cut);
    auto env = ExpectFrame(truncated, FrameKind::kPushPull);
    ASSERT_TRUE(env.ok()) << cut << ": " << env.status().message();
    EXPECT_FALSE(DecodePushPull(*env).ok()) << "cut " << cut << " bytes";
  }
}

TEST(StreamFrameTest, OldBarePushPullsAndEnvelopedOnesAreNotMistakenForEachOther) {
  // The wire change of --insecure meshes (docs/protocol.md): a node of this
  // version drops an old node's bare push-pull, and an old node's decoder
  // refuses an enveloped one, rather than either misreading it.
  PushPull pp;
  pp.sender = NodeId{7, 8};
  auto body = EncodePushPull(pp);
  ASSERT_TRUE(body.ok()) << body.status().message();
  auto bare = DecodeFrame(*body);
  ASSERT_FALSE(bare.ok());
  EXPECT_NE(bare.status().message().find("unknown frame kind 0x00"), std::string::npos) << bare.status().message();
  EXPECT_FALSE(DecodePushPull(EncodeFrame(FrameKind::kPushPull, *body)).ok());
}

TEST(StreamFrameTest, EmptyFrameIsAnError) {
  auto r = DecodeFrame("");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
  EXPECT_NE(r.status().message().find("empty frame"), std::string::npos) << r.status().message();
  EXPECT_FALSE(ExpectFrame("", FrameKind::kPushPull).ok());
}

TEST(StreamFrameTest, UnknownKindIsAnError) {
  // Every byte but the four kinds, including what an old --insecure node
  // sends first (a bare Cap'n Proto push-pull: its segment count less one, 0).
  int refused = 0;
  for (int b = 0; b < 256; ++b) {
    char c = static_cast<char>(b);
    if (c == 'P' || c == 'W' || c == 'S' || c == 'E') continue;
    auto r = DecodeFrame(std::string(1, c) + "body");
    ASSERT_FALSE(r.ok()) << b;
    EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
    EXPECT_NE(r.status().message().find("unknown frame kind"), std::string::npos) << r.status().message();
    ++refused;
  }
  EXPECT_EQ(refused, 252);
  EXPECT_NE(DecodeFrame(std::string("\0\0\0\0", 4)).status().message().find("0x00"), std::string::npos);
  EXPECT_NE(DecodeFrame("p").status().message().find("'p'"), std::string::npos) << "kinds are case-sensitive";
}

TEST(StreamFrameTest, ExpectFrameRefusesAnotherKind) {
  auto r = ExpectFrame(EncodeFrame(FrameKind::kWork, "body"), FrameKind::kPushPull);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
  EXPECT_EQ(r.status().message(), "a work frame, not a push-pull one");
  EXPECT_FALSE(ExpectFrame("Xbody", FrameKind::kPushPull).ok());
}

// ---------------------------------------------------------------------------
// Routing.

StreamFacts Secured(bool authenticated, bool revoked) { return {true, authenticated, revoked}; }

TEST(RouteStreamTest, InASecuredClusterAStreamWithoutCertificateMayOnlyEnrol) {
  EXPECT_EQ(RouteStream(Secured(false, false)), Route::kEnrol);
  // Revocation is a certificate's: without one there is nothing revoked.
  EXPECT_EQ(RouteStream(Secured(false, true)), Route::kEnrol);
}

TEST(RouteStreamTest, EveryOtherStreamCarriesAnEnvelopedFrame) {
  EXPECT_EQ(RouteStream(Secured(true, false)), Route::kReadFrame);
  // Revoked while its stream was open (or since the handshake): the frame
  // is read, and RouteFrame drops it.
  EXPECT_EQ(RouteStream(Secured(true, true)), Route::kReadFrame);
  for (bool authenticated : {false, true})
    for (bool revoked : {false, true}) EXPECT_EQ(RouteStream({false, authenticated, revoked}), Route::kReadFrame);
}

TEST(RouteFrameTest, SecuredAuthenticatedPeerIsServedEveryKind) {
  StreamFacts member = Secured(true, false);
  EXPECT_EQ(RouteFrame(FrameKind::kPushPull, member), (Routing{Route::kPushPull, ""}));
  EXPECT_EQ(RouteFrame(FrameKind::kWork, member), (Routing{Route::kWork, ""}));
  EXPECT_EQ(RouteFrame(FrameKind::kSecuritySync, member), (Routing{Route::kSecuritySync, ""}));
  EXPECT_EQ(RouteFrame(FrameKind::kEnrolRelay, member), (Routing{Route::kEnrolRelay, ""}));
}

TEST(RouteFrameTest, SecuredRevokedPeerIsDroppedForEveryKind) {
  for (FrameKind kind : kAllKinds)
    EXPECT_EQ(RouteFrame(kind, Secured(true, true)), (Routing{Route::kDrop, "the peer is revoked"})) << FrameKindName(kind);
}

TEST(RouteFrameTest, SecuredStreamWithoutCertificateIsDroppedForEveryKind) {
  // RouteStream sends such a stream to enrolment before any frame; should
  // an enveloped frame come from one all the same, it gets nothing.
  for (bool revoked : {false, true})
    for (FrameKind kind : kAllKinds)
      EXPECT_EQ(RouteFrame(kind, Secured(false, revoked)),
                (Routing{Route::kDrop, "no peer certificate: the stream may only enrol"}))
          << FrameKindName(kind);
}

TEST(RouteFrameTest, UnsecuredMeshServesPushPullAndWorkOnly) {
  // Nothing is authenticated or revoked in an --insecure mesh: those facts
  // change nothing.
  for (bool authenticated : {false, true}) {
    for (bool revoked : {false, true}) {
      StreamFacts f{false, authenticated, revoked};
      EXPECT_EQ(RouteFrame(FrameKind::kPushPull, f), (Routing{Route::kPushPull, ""}));
      EXPECT_EQ(RouteFrame(FrameKind::kWork, f), (Routing{Route::kWork, ""}));
      EXPECT_EQ(RouteFrame(FrameKind::kSecuritySync, f), (Routing{Route::kDrop, "security sync in an unsecured mesh"}));
      EXPECT_EQ(RouteFrame(FrameKind::kEnrolRelay, f),
                (Routing{Route::kDrop, "relayed enrolment in an unsecured mesh"}));
    }
  }
}

TEST(RouteFrameTest, OnlyDropsHaveAReason) {
  for (bool secured : {false, true})
    for (bool authenticated : {false, true})
      for (bool revoked : {false, true})
        for (FrameKind kind : kAllKinds) {
          Routing r = RouteFrame(kind, {secured, authenticated, revoked});
          EXPECT_NE(r.route, Route::kReadFrame);
          EXPECT_NE(r.route, Route::kEnrol);
          EXPECT_EQ(r.route == Route::kDrop, !r.reason.empty());
        }
}

}  // namespace
}  // namespace ndo::mesh
