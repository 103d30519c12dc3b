#include "scan/service/evidence.h"

namespace ndo {

std::string FingerprintHex(const std::array<uint8_t, 32>& fp) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(fp.size() * 2);
  for (uint8_t b : fp) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0x0f]);
  }
  return out;
}

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
