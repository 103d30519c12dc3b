#include "mesh/membership/stream_frame.h"

#include <cstdio>

#include "base/hex.h"

namespace ndo::mesh {
namespace {

bool Known(char byte) {
  switch (static_cast<FrameKind>(byte)) {
    case FrameKind::kPushPull:
    case FrameKind::kWork:
    case FrameKind::kSecuritySync:
    case FrameKind::kEnrolRelay:
      return true;
  }
  return false;
}

// A kind byte for a message: printable as is, or as hex.
std::string ByteName(char byte) {
  auto u = static_cast<unsigned char>(byte);
  if (u >= 0x21 && u < 0x7f && u != '\'') return std::string("'") + byte + "'";
  std::string hex = "0x";
  AppendHexByte(hex, u);
  return hex;
}

}  // namespace

const char* FrameKindName(FrameKind kind) {
  switch (kind) {
    case FrameKind::kPushPull:
      return "push-pull";
    case FrameKind::kWork:
      return "work";
    case FrameKind::kSecuritySync:
      return "security sync";
    case FrameKind::kEnrolRelay:
      return "enrol relay";
  }
  return "unknown";
}

std::string EncodeFrame(FrameKind kind, std::string_view body) {
  std::string frame;
  frame.reserve(1 + body.size());
  frame.push_back(static_cast<char>(kind));
  frame.append(body);
  return frame;
}

Result<DecodedFrame> DecodeFrame(std::string_view frame) {
  if (frame.empty()) return Status::Corruption("empty frame: no kind byte");
  if (!Known(frame.front())) return Status::Corruption("unknown frame kind " + ByteName(frame.front()));
  return DecodedFrame{static_cast<FrameKind>(frame.front()), frame.substr(1)};
}

Result<std::string_view> ExpectFrame(std::string_view frame, FrameKind kind) {
  auto decoded = DecodeFrame(frame);
  if (!decoded.ok()) return decoded.status();
  if (decoded->kind != kind)
    return Status::Corruption(std::string("a ") + FrameKindName(decoded->kind) + " frame, not a " +
                              FrameKindName(kind) + " one");
  return decoded->body;
}

Route RouteStream(const StreamFacts& facts) {
  return facts.secured && !facts.authenticated ? Route::kEnrol : Route::kReadFrame;
}

Routing RouteFrame(FrameKind kind, const StreamFacts& facts) {
  if (facts.secured) {
    if (!facts.authenticated) return {Route::kDrop, "no peer certificate: the stream may only enrol"};
    if (facts.revoked) return {Route::kDrop, "the peer is revoked"};
  }
  switch (kind) {
    case FrameKind::kPushPull:
      return {Route::kPushPull, ""};
    case FrameKind::kWork:
      return {Route::kWork, ""};
    case FrameKind::kSecuritySync:
      if (!facts.secured) return {Route::kDrop, "security sync in an unsecured mesh"};
      return {Route::kSecuritySync, ""};
    case FrameKind::kEnrolRelay:
      if (!facts.secured) return {Route::kDrop, "relayed enrolment in an unsecured mesh"};
      return {Route::kEnrolRelay, ""};
  }
  return {Route::kDrop, "unknown frame kind"};
}

}  // namespace ndo::mesh
