// What ndo learns about an open port beyond "open": the banner a service
// sends (or answers to a minimal request), and the TLS handshake with the
// whole certificate chain. Plain data, stored per (scan, address, port).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "scan/ip_address.h"

namespace ndo {

struct CertificateInfo {
  std::string subject_cn, subject_o, subject_ou;
  std::string issuer_cn, issuer_o, issuer_ou;
  std::vector<std::string> sans;  // "DNS:www.example.org", "IP:192.0.2.1"
  std::string serial_hex;         // upper-case hex, no separators
  int64_t not_before = 0;         // Unix seconds
  int64_t not_after = 0;          // Unix seconds
  std::string signature_algorithm;  // OpenSSL's long name, e.g. "sha256WithRSAEncryption"
  std::string key_type;           // "RSA", "EC", "Ed25519", "Ed448", "DSA", ...
  int key_bits = 0;
  std::array<uint8_t, 32> sha256{};  // fingerprint of the DER encoding
  bool self_signed = false;       // issuer == subject and the signature verifies with its own key
  std::string der;                // the certificate itself (stored once per fingerprint)
};

std::string FingerprintHex(const std::array<uint8_t, 32>& fp);  // lower-case, 64 digits

// The verdict of a chain against the trust store, at the time of the scan.
enum class TlsVerdict : uint8_t {
  kTrusted = 0,
  kUntrustedIssuer = 1,  // no path to a trusted root
  kExpired = 2,
  kNotYetValid = 3,
  kSelfSigned = 4,
  kNameMismatch = 5,     // chain fine, but not valid for the name the target was given by
  kNoCertificate = 6,    // the handshake failed before a certificate arrived
};
std::string_view TlsVerdictName(TlsVerdict v);

struct TlsEvidence {
  std::string error;     // why the handshake failed; empty when it completed
  std::string version;   // "TLSv1.3", ...
  std::string cipher;    // OpenSSL's name, e.g. "TLS_AES_256_GCM_SHA384"
  std::string sni;       // the server name sent, if any
  TlsVerdict verdict = TlsVerdict::kNoCertificate;
  std::string verify_detail;  // OpenSSL's verification message
  std::vector<CertificateInfo> chain;  // as the server sent it, leaf first
};

struct BannerEvidence {
  std::string bytes;       // at most kMaxBannerBytes
  bool truncated = false;  // the service said more than that
  std::string request;     // what ndo sent first ("" for server-first services)
  std::string error;       // "timeout", "reset", ...; empty if the read ended normally
};

inline constexpr size_t kMaxBannerBytes = 2048;

struct ServiceEvidence {
  IpAddress address;
  uint16_t port = 0;
  std::string service;  // guessed from the banner or handshake; "" if unknown
  std::optional<BannerEvidence> banner;
  std::optional<TlsEvidence> tls;
};

}  // namespace ndo
