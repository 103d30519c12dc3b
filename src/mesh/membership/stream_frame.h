// The envelope of the frames between members on the mesh's stream port, in a
// secured cluster and an --insecure mesh alike: one kind byte, then the body
// (docs/protocol.md). And where an inbound stream's frame goes, as pure
// functions of what is known about it: the daemon (mesh_node.cc) reads a
// frame, decodes it here, routes it here and does what the route says.
//
// Not enveloped: the enrolment exchange of a stream whose client presented
// no certificate (a joiner, not yet a member; see RouteStream), and the
// control socket's frames.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace ndo::mesh {

// The kind byte of a frame. The values are the wire's: never renumber.
enum class FrameKind : char {
  kPushPull = 'P',      // a PushPull (codec.h), request and reply
  kWork = 'W',          // a WorkMessage (work_messages.h), request and reply
  kSecuritySync = 'S',  // a SecurityState (security_state.h), request and reply
  kEnrolRelay = 'E',    // a RelayedEnrol, answered by an EnrolReply (enrolment.h)
};

// "push-pull", "work", "security sync", "enrol relay".
const char* FrameKindName(FrameKind kind);

// The kind byte, then the body.
std::string EncodeFrame(FrameKind kind, std::string_view body);

struct DecodedFrame {
  FrameKind kind;
  std::string_view body;  // into the bytes given to DecodeFrame
};

// Corruption for an empty frame or an unknown kind byte; any body (even an
// empty one) is the kind's decoder's to judge.
Result<DecodedFrame> DecodeFrame(std::string_view frame);

// The body of a reply that must be of `kind`: Corruption for anything else,
// naming the kind that came.
Result<std::string_view> ExpectFrame(std::string_view frame, FrameKind kind);

// What is known of an inbound stream when its frame is routed.
struct StreamFacts {
  bool secured = false;        // a secured cluster (mutual TLS), not --insecure
  bool authenticated = false;  // the peer presented a node certificate of the cluster
  bool revoked = false;        // ... and the node it names is revoked now
};

enum class Route : uint8_t {
  kReadFrame,     // RouteStream only: read one enveloped frame, then RouteFrame it
  kEnrol,         // RouteStream only: an enrolment exchange (enrolment.h), no envelope
  kPushPull,      // RouteFrame only, from here on
  kWork,
  kSecuritySync,
  kEnrolRelay,
  kDrop,          // close the stream, logging the reason
};

struct Routing {
  Route route;
  std::string reason;  // why, for kDrop; empty otherwise

  bool operator==(const Routing&) const = default;
};

// At the handshake, before anything is read: in a secured cluster a stream
// without a peer certificate may enrol and do nothing else (kEnrol: its one
// frame is an EnrolRequest, read under the enrolment rate limit and size
// limit); every other stream carries an enveloped frame (kReadFrame).
Route RouteStream(const StreamFacts& facts);

// Where a decoded frame goes, for a stream RouteStream sent to kReadFrame:
//  - secured: a revoked peer's frame is dropped, whatever its kind (checked
//    for every frame, not only at the handshake); every kind is served;
//  - --insecure: push-pulls and work messages are served; a security sync
//    or a relayed enrolment is dropped: there is no security state and no
//    enrolment authority;
//  - a stream without a peer certificate in a secured cluster (which
//    RouteStream never sends here) is dropped.
// That the sender named inside a push-pull or work message is the
// authenticated peer is the daemon's check, once the body is decoded.
Routing RouteFrame(FrameKind kind, const StreamFacts& facts);

}  // namespace ndo::mesh
