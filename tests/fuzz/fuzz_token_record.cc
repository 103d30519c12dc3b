// Feeds: any bytes, as a join token's record in a serving node's store, to
// DecodeTokenRecord (Cap'n Proto, src/mesh/security/join_token.h).
// Checks, beyond "no crash":
//  - decode -> encode -> decode gives the same record;
//  - CheckTokenUsable refuses the record whenever the header says it must:
//    revoked, expired (now >= expires_unix), used up (max_uses != 0 and
//    uses >= max_uses), or bound to another vantage, for a "now" and a
//    vantage taken from the input.
#include <cstdint>

#include "fuzz_check.h"
#include "mesh/security/join_token.h"

using namespace ndo;
using namespace ndo::mesh;

namespace {

bool Same(const TokenRecord& a, const TokenRecord& b) {
  return a.id == b.id && a.secret == b.secret && a.created_unix == b.created_unix && a.expires_unix == b.expires_unix &&
         a.max_uses == b.max_uses && a.uses == b.uses && a.vantage == b.vantage && a.used_by == b.used_by &&
         a.revoked == b.revoked;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto decoded = DecodeTokenRecord(FuzzInput(data, size));
  if (!decoded.ok()) return 0;
  const TokenRecord& r = *decoded;

  auto encoded = EncodeTokenRecord(r);
  FUZZ_CHECK_MSG(encoded.ok(), encoded.status().message());
  auto again = DecodeTokenRecord(*encoded);
  FUZZ_CHECK_MSG(again.ok(), again.status().message());
  FUZZ_CHECK(Same(r, *again));

  // A "now" around the record's own times, and its vantage or another one.
  int64_t before_expiry = r.expires_unix == INT64_MIN ? INT64_MIN : r.expires_unix - 1;
  int64_t nows[] = {r.created_unix, before_expiry, r.expires_unix, 0};
  std::string vantages[] = {r.vantage, r.vantage + "x", ""};
  for (int64_t now : nows) {
    for (const std::string& v : vantages) {
      Status usable = CheckTokenUsable(r, v, now);
      bool must_refuse = r.revoked || now >= r.expires_unix || (r.max_uses != 0 && r.uses >= r.max_uses) ||
                         (!r.vantage.empty() && r.vantage != v);
      if (must_refuse) FUZZ_CHECK_MSG(!usable.ok(), "token usable although it must be refused");
      if (!usable.ok()) FUZZ_CHECK(!usable.message().empty());
    }
  }
  return 0;
}
