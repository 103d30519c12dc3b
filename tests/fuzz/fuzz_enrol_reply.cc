// Feeds: any bytes, as the enrolment reply a joiner reads from the member it
// enrols through (src/mesh/security/enrolment.h), to DecodeEnrolReply: the member is
// authenticated by the pinned CA, but its answer is still only bytes.
// Checks, beyond "no crash":
//  - a reply with an error carries nothing else that is used;
//  - a successful reply holds a valid keyring, at most kMaxEnrolMembers
//    member addresses, no NUL in any text;
//  - decode -> encode -> decode gives the same reply.
#include <cstdint>

#include "fuzz_check.h"
#include "mesh/security/enrolment.h"

using namespace ndo;
using namespace ndo::mesh;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = DecodeEnrolReply(FuzzInput(data, size));
  if (!r.ok()) return 0;
  FUZZ_CHECK(r->error.find('\0') == std::string::npos);
  if (!r->error.empty()) return 0;
  FUZZ_CHECK_MSG(r->keyring.Validate().ok(), r->keyring.Validate().message());
  FUZZ_CHECK(r->members.size() <= kMaxEnrolMembers);
  FUZZ_CHECK(r->cert_pem.find('\0') == std::string::npos && r->ca_pem.find('\0') == std::string::npos);
  auto encoded = EncodeEnrolReply(*r);
  FUZZ_CHECK_MSG(encoded.ok(), encoded.status().message());
  auto again = DecodeEnrolReply(*encoded);
  FUZZ_CHECK_MSG(again.ok(), again.status().message());
  FUZZ_CHECK(again->cert_pem == r->cert_pem && again->ca_pem == r->ca_pem && again->members == r->members);
  FUZZ_CHECK(again->keyring.primary == r->keyring.primary && again->keyring.keys.size() == r->keyring.keys.size());
  return 0;
}
