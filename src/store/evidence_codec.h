// Stored service evidence (banners, TLS handshakes) and certificates.
//   'e' | scan id | address | port  -> ServiceEvidence (Cap'n Proto), the chain as fingerprints
//   'c' | SHA-256 fingerprint (32)   -> the certificate's DER, stored once however often it is seen
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "scan/service/evidence.h"
#include "store/scan_record.h"

namespace ndo {

std::string EvidenceKey(const ScanId& scan, IpAddress address, uint16_t port);
std::string EvidencePrefix(const ScanId& scan);
std::string CertificateKey(const std::array<uint8_t, 32>& fingerprint);

// The chain is encoded as fingerprints only; `der` of each certificate is written separately.
std::string EncodeEvidence(const ServiceEvidence& ev);
// Decodes an evidence record; `load_cert` turns a fingerprint into the parsed
// certificate (from the 'c' records). Corruption on malformed bytes.
Result<ServiceEvidence> DecodeEvidence(
    std::string_view key, std::string_view value,
    const std::function<Result<CertificateInfo>(const std::array<uint8_t, 32>&)>& load_cert);

}  // namespace ndo
