// The results of one shard, with the service evidence of its open ports, as
// one canonical blob: the unit replicated between nodes, named by its SHA-256
// in the scan state (mesh/work/pool_state.h). Canonical means the same content
// always gives the same bytes, so two nodes that ran (or received) one shard
// with the same answers agree on its digest:
//
//   version 1, written when there is no evidence:
//     magic "ndob" (4) | version 1 (1) | result count (4, LE)
//     results: count records, sorted strictly by (address, port):
//       address (16, BE) | port (2, BE) | value (16, result_codec.h's layout, reserved byte 0)
//   version 2, written when at least one open port has evidence:
//     magic "ndob" (4) | version 2 (1) | result count n (4, LE) | evidence count m (4, LE, 1..n)
//       | certificate count c (4, LE)
//     results: n records, as in version 1
//     certificates: c records, sorted strictly by SHA-256 of the DER, each one
//       referred to by some evidence's chain:
//       length (4, LE, 1..kMaxBundleCertificateBytes) | DER
//     evidence: m records, sorted strictly by (address, port), each of a port
//       the results hold as open:
//       address (16, BE) | port (2, BE) | length (4, LE, 1..kMaxBundleEvidenceBytes)
//         | evidence_codec.h's EncodeEvidence (the chain as fingerprints)
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "scan/probe_result.h"
#include "scan/service/evidence.h"
#include "base/status.h"

namespace ndo {

inline constexpr size_t kMaxBundleResults = 4'000'000;
inline constexpr size_t kBundleHeaderSize = 4 + 1 + 4;            // version 1
inline constexpr size_t kBundleV2HeaderSize = 4 + 1 + 4 + 4 + 4;  // version 2
inline constexpr size_t kBundleRecordSize = 16 + 2 + 16;
// One encoded evidence record: a banner (kMaxBannerBytes), the chain's
// fingerprints (a handshake's certificate list is at most 100 KiB, so at most
// a few hundred certificates) and short texts fit with room to spare.
inline constexpr size_t kMaxBundleEvidenceBytes = 64 * 1024;
// One certificate's DER: ParseCertificate's own limit (tls_session.h).
inline constexpr size_t kMaxBundleCertificateBytes = 64 * 1024;

struct ResultBundle {
  std::vector<ProbeResult> results;
  // Evidence of ports open in `results`. Given to the encoder, a chain's
  // certificate carries its DER, or only its fingerprint (sha256) when the
  // DER is in `certificates`. As decoded: sorted by (address, port), chains
  // of fingerprints only, every certificate once in `certificates`.
  std::vector<ServiceEvidence> evidence;
  // As decoded: parsed (ParseCertificate), with DER, sorted by fingerprint.
  std::vector<CertificateInfo> certificates;
};

// Sorts by (address, port) and keeps one result per probe, the preferred one
// (PreferredResultValue: the more informative state, then the later time).
// Of several evidence records of one port, the one whose encoding sorts
// first is kept, so the input order does not matter. Writes version 1 when
// there is no evidence, else version 2. InvalidArgument for an unknown port
// state, more than kMaxBundleResults probes, evidence of a port that is not
// open in the results, evidence that fails CheckBundleEvidence, or a chain
// certificate without a DER that parses and matches its fingerprint.
Result<std::string> EncodeResultBundle(ResultBundle bundle);
Result<std::string> EncodeResultBundle(std::vector<ProbeResult> results);

// Whether one evidence record can go into a bundle on its own (its chain's
// DERs aside, when absent): the banner at most kMaxBannerBytes, the encoding
// at most kMaxBundleEvidenceBytes and decoding to itself, every DER present
// at most kMaxBundleCertificateBytes and matching its fingerprint.
// InvalidArgument otherwise.
Status CheckBundleEvidence(const ServiceEvidence& ev);

// Bounded and validating (exact size, sorted strictly, known states and
// versions, reserved bytes zero, evidence only of open ports, every
// certificate parsed, referred to and of its fingerprint, evidence records
// that re-encode to themselves, a version 2 bundle with evidence; so that
// re-encoding gives the same bytes); Corruption on anything else, never a
// crash. Decodes both versions.
Result<ResultBundle> DecodeResultBundle(std::string_view bytes);

// SHA-256 of the encoded bundle.
std::array<uint8_t, 32> BundleDigest(std::string_view bytes);

}  // namespace ndo
