// Feeds: any bytes, as a request frame body read from DATA_DIR/control.sock
// (the agent's control socket), to DecodeControlRequest (src/mesh/api/control.h).
// Checks, beyond "no crash": nothing above kMaxControlRequestBytes is
// accepted; a decoded request names a known command and keeps its texts
// within their limits (vantage, member); it encodes, and
// decode -> encode -> decode gives the same request.
#include "fuzz_check.h"
#include "mesh/api/control.h"

using namespace ndo;
using namespace ndo::mesh;

namespace {

bool Same(const ControlRequest& a, const ControlRequest& b) {
  return a.command == b.command && a.token.ttl_seconds == b.token.ttl_seconds &&
         a.token.max_uses == b.token.max_uses && a.token.vantage == b.token.vantage && a.member == b.member &&
         a.scan_definition == b.scan_definition && a.scan == b.scan && a.scan_action == b.scan_action;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto request = DecodeControlRequest(FuzzInput(data, size));
  if (!request.ok()) return 0;
  FUZZ_CHECK(size <= kMaxControlRequestBytes);
  FUZZ_CHECK(static_cast<unsigned>(request->command) <= static_cast<unsigned>(ControlCommand::kScanControl));
  FUZZ_CHECK(request->token.vantage.size() <= kMaxVantageBytes);
  FUZZ_CHECK(request->member.size() <= kMaxNameBytes);

  auto encoded = EncodeControlRequest(*request);
  FUZZ_CHECK_MSG(encoded.ok(), encoded.status().message());
  auto again = DecodeControlRequest(*encoded);
  FUZZ_CHECK_MSG(again.ok(), again.status().message());
  FUZZ_CHECK(Same(*again, *request));
  return 0;
}
