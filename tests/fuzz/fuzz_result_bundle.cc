// Feeds: any bytes, as a shard's result bundle received from a peer or kept
// in the store, to DecodeResultBundle (src/store/result_bundle.h).
// Checks, beyond "no crash": the decoder accepts only canonical bundles, so
// whatever it accepts encodes back to exactly the input (and so has the
// input's digest), and holds at most one result per (address, port).
#include <cstdint>

#include "fuzz_check.h"
#include "store/result_bundle.h"

using namespace ndo;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = FuzzInput(data, size);
  auto results = DecodeResultBundle(input);
  if (!results.ok()) return 0;
  FUZZ_CHECK(results->size() <= kMaxBundleResults);
  for (size_t i = 1; i < results->size(); ++i) {
    const ProbeResult &a = (*results)[i - 1], &b = (*results)[i];
    FUZZ_CHECK(a.address < b.address || (a.address == b.address && a.port < b.port));
  }
  auto encoded = EncodeResultBundle(*results);
  FUZZ_CHECK_MSG(encoded.ok(), encoded.status().message());
  FUZZ_CHECK(*encoded == input);
  FUZZ_CHECK(BundleDigest(*encoded) == BundleDigest(input));
  return 0;
}
