// Join tokens: what an operator hands to a new node so it may enrol.
//
// A token is an id and a secret, written "ndo1.<id>.<secret>": the id is 16
// lowercase hex digits (64 random bits, a lookup key that is logged), the
// secret 32 lowercase hex digits (128 random bits, never logged, never sent).
// The joiner proves it holds the secret with an HMAC-SHA256 keyed by the
// secret over the TLS session's exported keying material (RFC 8446 7.5,
// label kEnrolExporterLabel), the SHA-256 of its CSR, its vantage and name:
// a proof is good for one TLS session and one CSR only, so an eavesdropper
// (or the serving node itself) cannot replay it elsewhere.
//
// The serving node keeps a TokenRecord per token (secret included: it must
// verify the HMAC) and checks it with CheckTokenUsable before anything else.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "mesh/security/roles.h"

namespace ndo::mesh {

inline constexpr std::string_view kTokenPrefix = "ndo1";
inline constexpr size_t kTokenIdHexDigits = 16;
inline constexpr size_t kTokenSecretHexDigits = 32;
inline constexpr std::string_view kEnrolExporterLabel = "EXPORTER-ndo-enrol-v1";
inline constexpr size_t kEnrolExporterBytes = 32;

struct JoinToken {
  std::string id;      // 16 lowercase hex digits
  std::string secret;  // 32 lowercase hex digits
};

// A new token from OpenSSL's CSPRNG.
Result<JoinToken> NewJoinToken();
std::string FormatJoinToken(const JoinToken& token);
// Accepts exactly "ndo1.<16 hex>.<32 hex>" (hex in either case, returned
// lowercase); surrounding whitespace is trimmed. The error never echoes the
// secret.
Result<JoinToken> ParseJoinToken(std::string_view text);

// HMAC-SHA256(secret, "ndo-enrol-v1" | len-prefixed exporter | csr_sha256 |
// vantage | name), each field length-prefixed so no two inputs collide.
std::string EnrolmentProof(std::string_view secret, std::string_view exporter, std::string_view csr_sha256,
                           std::string_view vantage, std::string_view name);
// Constant-time comparison against the proof computed from the same inputs.
bool VerifyEnrolmentProof(std::string_view secret, std::string_view exporter, std::string_view csr_sha256,
                          std::string_view vantage, std::string_view name, std::string_view proof);

// The serving node's record of a token.
struct TokenRecord {
  std::string id;
  std::string secret;
  int64_t created_unix = 0;
  int64_t expires_unix = 0;  // the token is refused from this second on
  uint32_t max_uses = 1;     // 0: unlimited until it expires
  uint32_t uses = 0;
  std::string vantage;       // empty: any vantage
  std::vector<std::string> used_by;  // node ids (hex) it enrolled, oldest first
  bool revoked = false;
  NodeRole role = NodeRole::kScanner;  // bound in the certificates it yields
};

// Why a token cannot be used now, as a short reason for logs and the joiner
// ("token expired", "token used up", "token not valid for vantage wifi",
// "token revoked"); Ok if it can.
Status CheckTokenUsable(const TokenRecord& record, std::string_view vantage, int64_t now_unix);

// Bounded Cap'n Proto encoding (mesh/security/security.capnp) for the store.
Result<std::string> EncodeTokenRecord(const TokenRecord& record);
Result<TokenRecord> DecodeTokenRecord(std::string_view bytes);

// Parses a duration as `--ttl` takes it: a positive integer with a unit,
// s, m, h or d ("90s", "15m", "24h", "7d"), at most 365 days.
Result<int64_t> ParseTtlSeconds(std::string_view text);

// `ndo token create`'s parameters.
struct TokenParams {
  int64_t ttl_seconds = 24 * 3600;
  uint32_t max_uses = 1;  // 0: unlimited until it expires
  std::string vantage;    // empty: any
  NodeRole role = NodeRole::kScanner;  // `--role`: scanner unless asked
};

}  // namespace ndo::mesh
