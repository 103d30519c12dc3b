#include "mesh/security/enrolment_relay.h"

#include <algorithm>
#include <utility>

#include "mesh/membership/stream_frame.h"

namespace ndo::mesh {

Result<RelayPlan> EnrolmentRelay::Plan(std::string request_bytes, std::string exporter, std::string source,
                                       const SecurityState& security, const std::vector<SecurityPeer>& alive) {
  std::vector<std::string> authorities;
  for (const NodeId& id : security.authorities) {
    if (security.FindRevoked(id)) continue;
    auto it = std::find_if(alive.begin(), alive.end(), [&](const SecurityPeer& p) { return p.id == id; });
    if (it != alive.end()) authorities.push_back(it->address);
  }
  if (authorities.empty())
    return Status::Unavailable("no enrolment authority (a member holding the CA key) is alive");
  auto body = EncodeRelayedEnrol({std::move(request_bytes), std::move(exporter), std::move(source)});
  if (!body.ok()) return Status::Corruption(body.status().message());
  std::string to = authorities[std::uniform_int_distribution<size_t>(0, authorities.size() - 1)(rng_)];
  return RelayPlan{std::move(to), EncodeFrame(FrameKind::kEnrolRelay, *body)};
}

EnrolReply EnrolmentRelay::Refusal() {
  EnrolReply reply;
  reply.error = "enrolment unavailable: no member that can enrol is reachable now";
  return reply;
}

RelayOutcome EnrolmentRelay::OnReply(const Result<std::string>& frame) {
  Result<EnrolReply> decoded = Status::Unavailable("no reply");
  if (!frame.ok()) {
    decoded = frame.status();
  } else if (auto bytes = ExpectFrame(*frame, FrameKind::kEnrolRelay); !bytes.ok()) {
    decoded = Status::InvalidArgument("not an enrolment reply: " + bytes.status().message());
  } else {
    decoded = DecodeEnrolReply(*bytes);
  }
  RelayOutcome out;
  if (!decoded.ok()) {
    // Not the joiner's fault: no failure counted against it.
    out.answer.error = "enrolment unavailable: the member that can enrol did not answer";
    out.log_reason = decoded.status().message();
    return out;
  }
  out.relayed = true;
  out.record_failure = !decoded->error.empty();
  out.log_reason = decoded->error;
  out.answer = std::move(*decoded);
  return out;
}

}  // namespace ndo::mesh
