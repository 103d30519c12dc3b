// The enrolling node's side of enrolment (mesh/security/enrolment.h, steps 1 and 2):
// TLS to a member, the CA pinned by hash, the request sent, the reply read.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "mesh/membership/address.h"
#include "mesh/security/enrolment.h"
#include "base/status.h"

namespace ndo::mesh {

// Connects to `server`, accepts it only under the CA whose SPKI hash is
// `ca_hash`, builds the request with the session's exported keying material
// (make_request), sends it and returns the reply, all within `timeout`.
// A refusal by the server comes back as an error carrying its reason; a
// reply whose CA is not the pinned one is refused here. The connection
// leaves from `source` when given (the node's own listen address, as its
// mesh streams do), else wherever the system routes it from.
Result<EnrolReply> EnrolThrough(const HostPort& server, const std::optional<HostPort>& source, const std::string& ca_hash,
                                const std::function<Result<EnrolRequest>(std::string_view exporter)>& make_request,
                                std::chrono::milliseconds timeout);

}  // namespace ndo::mesh
