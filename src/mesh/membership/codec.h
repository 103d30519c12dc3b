// The wire format of the mesh: Cap'n Proto (src/mesh/membership/wire.capnp), compiled at
// build time. Decoding is hostile-input safe: sizes, counts and nesting are
// bounded (kMax* in messages.h, Cap'n Proto's traversal and nesting limits),
// and anything malformed comes back as an error value naming the reason;
// no exception leaves this module.
#pragma once

#include <string>
#include <string_view>

#include "mesh/membership/messages.h"
#include "base/status.h"

namespace ndo::mesh {

// A datagram. Fails (InvalidArgument) if the encoding would exceed
// kMaxDatagramBytes; the core keeps messages within it (see
// Membership's size estimate, checked against this codec by tests).
Result<std::string> EncodeMessage(const Message& msg);
Result<Message> DecodeMessage(std::string_view bytes);

// Upper bounds of the encoded size, so the core can fill a datagram with
// updates and payloads without encoding it: EncodeMessage(m).size() <=
// MessageSizeBound(m) + sum of UpdateSizeBound(u) over m.updates + sum of
// PayloadSizeBound(p) over m.payloads (the first ignores both lists).
size_t MessageSizeBound(const Message& msg_without_updates_and_payloads);
size_t UpdateSizeBound(const Update& update);
size_t PayloadSizeBound(const std::string& payload);

// A push-pull state, framed for a stream: the caller writes the bytes as
// they are; ReadFrameLength tells how long a frame is from its first 4 bytes.
Result<std::string> EncodePushPull(const PushPull& pp);
Result<PushPull> DecodePushPull(std::string_view frame_body);

// Streams carry frames: a 4-byte big-endian length, then the body.
inline constexpr size_t kFrameHeaderBytes = 4;
std::string FrameHeader(size_t body_length);
// The body length announced by a header; an error above kMaxStreamBytes.
Result<size_t> ReadFrameLength(std::string_view header);

// Validates the fields every decoder and the CLI check: lengths within
// kMax*Bytes, a non-empty id.
Status ValidateMemberInfo(const MemberInfo& info);

}  // namespace ndo::mesh
