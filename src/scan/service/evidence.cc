#include "scan/service/evidence.h"

#include "base/hex.h"

namespace ndo {

std::string FingerprintHex(const std::array<uint8_t, 32>& fp) { return HexEncode(std::span<const uint8_t>(fp)); }

std::string_view TlsVerdictName(TlsVerdict v) {
  switch (v) {
    case TlsVerdict::kTrusted: return "trusted";
    case TlsVerdict::kUntrustedIssuer: return "untrusted_issuer";
    case TlsVerdict::kExpired: return "expired";
    case TlsVerdict::kNotYetValid: return "not_yet_valid";
    case TlsVerdict::kSelfSigned: return "self_signed";
    case TlsVerdict::kNameMismatch: return "name_mismatch";
    case TlsVerdict::kNoCertificate: return "no_certificate";
  }
  return "unknown";
}

}  // namespace ndo
