// Feeds: any bytes, as the one frame a client without a certificate may send
// (an enrolment request, src/mesh/security/enrolment.h), to DecodeEnrolRequest, and as
// what a member relays to an enrolment authority, to DecodeRelayedEnrol.
// Checks, beyond "no crash":
//  - whatever decodes has the bounds the decoder promises (token id at most
//    16 bytes, no NUL in any text, a 32-byte proof; a relayed exporter of 32
//    bytes);
//  - decode -> encode -> decode gives the same request.
#include <cstdint>

#include "fuzz_check.h"
#include "mesh/security/enrolment.h"

using namespace ndo;
using namespace ndo::mesh;

namespace {

bool NoNul(const std::string& s) { return s.find('\0') == std::string::npos; }

void CheckRequest(std::string_view bytes) {
  auto r = DecodeEnrolRequest(bytes);
  if (!r.ok()) return;
  FUZZ_CHECK(r->token_id.size() <= kTokenIdHexDigits);
  FUZZ_CHECK(r->proof.size() == 32);
  FUZZ_CHECK(NoNul(r->token_id) && NoNul(r->csr_pem) && NoNul(r->vantage) && NoNul(r->name));
  auto encoded = EncodeEnrolRequest(*r);
  FUZZ_CHECK_MSG(encoded.ok(), encoded.status().message());
  auto again = DecodeEnrolRequest(*encoded);
  FUZZ_CHECK_MSG(again.ok(), again.status().message());
  FUZZ_CHECK(again->token_id == r->token_id && again->csr_pem == r->csr_pem && again->vantage == r->vantage &&
             again->name == r->name && again->proof == r->proof);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = FuzzInput(data, size);
  CheckRequest(in);
  auto relayed = DecodeRelayedEnrol(in);
  if (relayed.ok()) {
    FUZZ_CHECK(relayed->exporter.size() == kEnrolExporterBytes);
    FUZZ_CHECK(relayed->request.size() <= kMaxEnrolMessageBytes);
    CheckRequest(relayed->request);
  }
  return 0;
}
