// Feeds: any bytes, as a shard's result bundle received from a peer or kept
// in the store, to DecodeResultBundle (src/store/result_bundle.h), version 1
// (results) or 2 (results, service evidence of open ports, certificates).
// Checks, beyond "no crash": the decoder accepts only canonical bundles, so
// whatever it accepts encodes back to exactly the input (and so has the
// input's digest); it holds at most one result per (address, port), evidence
// only of open ports and at most one per port, and each certificate once,
// of its fingerprint and referred to by some chain whose every fingerprint
// it holds.
#include <algorithm>
#include <cstdint>
#include <set>

#include "fuzz_check.h"
#include "store/result_bundle.h"

using namespace ndo;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input = FuzzInput(data, size);
  auto bundle = DecodeResultBundle(input);
  if (!bundle.ok()) return 0;
  const auto& results = bundle->results;
  FUZZ_CHECK(results.size() <= kMaxBundleResults);
  for (size_t i = 1; i < results.size(); ++i) {
    const ProbeResult &a = results[i - 1], &b = results[i];
    FUZZ_CHECK(a.address < b.address || (a.address == b.address && a.port < b.port));
  }
  // Version 2 exactly when there is evidence: one encoding per content.
  FUZZ_CHECK(static_cast<uint8_t>(input[4]) == (bundle->evidence.empty() ? 1 : 2));
  FUZZ_CHECK(bundle->evidence.size() <= results.size());
  for (size_t i = 1; i < bundle->certificates.size(); ++i)
    FUZZ_CHECK(bundle->certificates[i - 1].sha256 < bundle->certificates[i].sha256);
  std::set<std::array<uint8_t, 32>> referred;
  for (size_t i = 0; i < bundle->evidence.size(); ++i) {
    const ServiceEvidence& ev = bundle->evidence[i];
    if (i > 0) {
      const ServiceEvidence& prev = bundle->evidence[i - 1];
      FUZZ_CHECK(prev.address < ev.address || (prev.address == ev.address && prev.port < ev.port));
    }
    auto r = std::lower_bound(results.begin(), results.end(), ev, [](const ProbeResult& a, const ServiceEvidence& e) {
      return a.address < e.address || (a.address == e.address && a.port < e.port);
    });
    FUZZ_CHECK(r != results.end() && r->address == ev.address && r->port == ev.port && r->state == PortState::kOpen);
    FUZZ_CHECK(!ev.banner || ev.banner->bytes.size() <= kMaxBannerBytes);
    if (ev.tls)
      for (const CertificateInfo& c : ev.tls->chain) {
        FUZZ_CHECK(c.der.empty());  // fingerprints only: the DER is in certificates
        referred.insert(c.sha256);
      }
  }
  FUZZ_CHECK(referred.size() == bundle->certificates.size());
  for (const CertificateInfo& c : bundle->certificates) {
    FUZZ_CHECK(referred.count(c.sha256));
    FUZZ_CHECK(!c.der.empty() && c.der.size() <= kMaxBundleCertificateBytes);
    FUZZ_CHECK(BundleDigest(c.der) == c.sha256);
  }
  auto encoded = EncodeResultBundle(*bundle);
  FUZZ_CHECK_MSG(encoded.ok(), encoded.status().message());
  FUZZ_CHECK(*encoded == input);
  FUZZ_CHECK(BundleDigest(*encoded) == BundleDigest(input));
  return 0;
}
