#include "mesh/security/join_token.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <exception>
#include <iterator>

#include "mesh/membership/capnp_io.h"
#include "mesh/membership/messages.h"
#include "mesh/security/security.capnp.h"
#include "base/hex.h"

namespace ndo::mesh {
namespace {

constexpr std::string_view kProofContext = "ndo-enrol-v1";
constexpr size_t kProofBytes = 32;

// A store record: the used_by list dominates (each id a 32-byte text: 40
// bytes and a pointer word), so 100000 of them need under 5 MiB.
constexpr size_t kMaxUsedBy = 100000;
constexpr size_t kMaxTokenRecordBytes = 8u << 20;
constexpr size_t kWord = sizeof(capnp::word);
constexpr int kNestingLimit = 8;

constexpr int64_t kMaxTtlSeconds = int64_t{365} * 86400;

std::string Num(uint64_t n) { return std::to_string(n); }

bool IsLowerHex(std::string_view s, size_t digits) {
  return s.size() == digits && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}
char ToLowerAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// Text received from elsewhere, made safe to put in a log line.
std::string Printable(std::string_view s, size_t max) {
  std::string out(s.substr(0, max));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  if (s.size() > max) out += "...";
  return out;
}

void AppendField(std::string& msg, std::string_view field) {
  const auto n = static_cast<uint32_t>(field.size());
  for (int shift = 24; shift >= 0; shift -= 8) msg += static_cast<char>((n >> shift) & 0xff);
  msg.append(field);
}


// Why a record cannot be stored (or was not stored by us); empty if fine.
std::string RecordProblem(const TokenRecord& r) {
  if (!IsLowerHex(r.id, kTokenIdHexDigits)) return "token id is not " + Num(kTokenIdHexDigits) + " lowercase hex digits";
  if (!IsLowerHex(r.secret, kTokenSecretHexDigits))
    return "token secret is not " + Num(kTokenSecretHexDigits) + " lowercase hex digits";
  if (r.vantage.size() > kMaxVantageBytes) return "vantage longer than " + Num(kMaxVantageBytes) + " bytes";
  if (r.vantage.find('\0') != std::string::npos) return "vantage contains a NUL byte";
  if (r.role != NodeRole::kScanner && r.role != NodeRole::kOperator) return "unknown role";
  if (r.used_by.size() > kMaxUsedBy) return "used by more than " + Num(kMaxUsedBy) + " nodes";
  for (const std::string& node : r.used_by)
    if (!IsLowerHex(node, 32)) return "used_by holds something other than a node id";
  return {};
}

void SetText(const std::string& s, auto set) {
  if (!s.empty()) set(capnp::Text::Reader(s.c_str(), s.size()));
}

// Copies a text of at most `max` bytes (checked before copying).
bool ReadText(capnp::Text::Reader t, size_t max, std::string& out) {
  if (t.size() > max) return false;
  out.assign(t.begin(), t.size());
  return true;
}

}  // namespace

Result<JoinToken> NewJoinToken() {
  unsigned char id[kTokenIdHexDigits / 2];
  unsigned char secret[kTokenSecretHexDigits / 2];
  if (RAND_bytes(id, sizeof id) != 1 || RAND_bytes(secret, sizeof secret) != 1) {
    ERR_clear_error();
    return Status::Unavailable("no random bytes for a join token");
  }
  JoinToken token{HexEncode(std::span<const uint8_t>(id)), HexEncode(std::span<const uint8_t>(secret))};
  OPENSSL_cleanse(secret, sizeof secret);
  return token;
}

std::string FormatJoinToken(const JoinToken& token) {
  return std::string(kTokenPrefix) + "." + token.id + "." + token.secret;
}

Result<JoinToken> ParseJoinToken(std::string_view text) {
  while (!text.empty() && IsSpace(text.front())) text.remove_prefix(1);
  while (!text.empty() && IsSpace(text.back())) text.remove_suffix(1);
  // The input is never echoed: it holds the secret.
  auto bad = [](const char* why) {
    return Status::InvalidArgument(std::string("malformed join token: ") + why + " (expected " +
                                   std::string(kTokenPrefix) + ".<16 hex>.<32 hex>)");
  };
  if (text.substr(0, kTokenPrefix.size() + 1) != std::string(kTokenPrefix) + ".") return bad("wrong prefix");
  text.remove_prefix(kTokenPrefix.size() + 1);
  size_t dot = text.find('.');
  if (dot == std::string_view::npos) return bad("no secret");
  std::string_view id = text.substr(0, dot), secret = text.substr(dot + 1);
  if (id.size() != kTokenIdHexDigits) return bad("wrong id length");
  if (secret.find('.') != std::string_view::npos) return bad("too many parts");
  if (secret.size() != kTokenSecretHexDigits) return bad("wrong secret length");
  if (!std::all_of(id.begin(), id.end(), IsHexDigit)) return bad("id is not hex");
  if (!std::all_of(secret.begin(), secret.end(), IsHexDigit)) return bad("secret is not hex");
  JoinToken token;
  std::transform(id.begin(), id.end(), std::back_inserter(token.id), ToLowerAscii);
  std::transform(secret.begin(), secret.end(), std::back_inserter(token.secret), ToLowerAscii);
  return token;
}

std::string EnrolmentProof(std::string_view secret, std::string_view exporter, std::string_view csr_sha256,
                           std::string_view vantage, std::string_view name) {
  for (std::string_view field : {secret, exporter, csr_sha256, vantage, name})
    if (field.size() > INT32_MAX) return {};  // beyond a length prefix (and HMAC's int key length)
  std::string msg(kProofContext);
  AppendField(msg, exporter);
  AppendField(msg, csr_sha256);
  AppendField(msg, vantage);
  AppendField(msg, name);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // An empty key is legal for HMAC; OpenSSL wants a non-null pointer.
  static const unsigned char kEmpty = 0;
  const void* key = secret.empty() ? &kEmpty : static_cast<const void*>(secret.data());
  if (HMAC(EVP_sha256(), key, static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(msg.data()),
           msg.size(), md, &len) == nullptr ||
      len != kProofBytes) {
    ERR_clear_error();
    return {};
  }
  return std::string(reinterpret_cast<const char*>(md), len);
}

bool VerifyEnrolmentProof(std::string_view secret, std::string_view exporter, std::string_view csr_sha256,
                          std::string_view vantage, std::string_view name, std::string_view proof) {
  if (proof.size() != kProofBytes) return false;
  std::string expected = EnrolmentProof(secret, exporter, csr_sha256, vantage, name);
  if (expected.size() != kProofBytes) return false;
  return CRYPTO_memcmp(expected.data(), proof.data(), kProofBytes) == 0;
}

Status CheckTokenUsable(const TokenRecord& record, std::string_view vantage, int64_t now_unix) {
  if (record.revoked) return Status::InvalidArgument("token revoked");
  if (now_unix >= record.expires_unix) return Status::InvalidArgument("token expired");
  if (record.max_uses != 0 && record.uses >= record.max_uses) return Status::InvalidArgument("token used up");
  if (!record.vantage.empty() && record.vantage != vantage)
    return Status::InvalidArgument("token not valid for vantage " +
                                   (vantage.empty() ? std::string("(none)") : Printable(vantage, kMaxVantageBytes)));
  return Status::Ok();
}

Result<std::string> EncodeTokenRecord(const TokenRecord& record) {
  if (std::string p = RecordProblem(record); !p.empty()) return Status::InvalidArgument(p);
  std::string out;
  Status status = CapnpGuarded(&Status::InvalidArgument, "cannot encode token record", [&]() -> Status {
    capnp::MallocMessageBuilder builder;
    auto root = builder.initRoot<schema::TokenRecord>();
    SetText(record.id, [&](capnp::Text::Reader t) { root.setId(t); });
    SetText(record.secret, [&](capnp::Text::Reader t) { root.setSecret(t); });
    root.setCreatedUnix(record.created_unix);
    root.setExpiresUnix(record.expires_unix);
    root.setMaxUses(record.max_uses);
    root.setUses(record.uses);
    SetText(record.vantage, [&](capnp::Text::Reader t) { root.setVantage(t); });
    if (!record.used_by.empty()) {
      auto list = root.initUsedBy(static_cast<unsigned>(record.used_by.size()));
      for (size_t i = 0; i < record.used_by.size(); ++i)
        list.set(static_cast<unsigned>(i), capnp::Text::Reader(record.used_by[i].c_str(), record.used_by[i].size()));
    }
    root.setRevoked(record.revoked);
    root.setRole(record.role == NodeRole::kOperator ? schema::NodeRole::OPERATOR : schema::NodeRole::SCANNER);
    auto flat = capnp::messageToFlatArray(builder);
    auto bytes = flat.asBytes();
    if (bytes.size() > kMaxTokenRecordBytes) return Status::InvalidArgument("token record too large");
    out.assign(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return out;
}

Result<TokenRecord> DecodeTokenRecord(std::string_view bytes) {
  if (bytes.empty()) return Status::Corruption("empty token record");
  if (bytes.size() > kMaxTokenRecordBytes)
    return Status::Corruption("token record too large: " + Num(bytes.size()) + " bytes");
  if (bytes.size() % kWord != 0)
    return Status::Corruption("token record of " + Num(bytes.size()) + " bytes is not a whole number of words");
  // Store buffers give no alignment guarantee: copy into words.
  auto words = kj::heapArray<capnp::word>(bytes.size() / kWord);
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  TokenRecord record;
  Status status = CapnpGuarded(&Status::Corruption, "malformed token record", [&]() -> Status {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = 2 * words.size();
    options.nestingLimit = kNestingLimit;
    capnp::FlatArrayMessageReader reader(words, options);
    if (reader.getEnd() != words.end())
      return Status::Corruption(Num((words.end() - reader.getEnd()) * kWord) + " bytes after the token record");
    auto r = reader.getRoot<schema::TokenRecord>();
    if (!ReadText(r.getId(), kTokenIdHexDigits, record.id) ||
        !ReadText(r.getSecret(), kTokenSecretHexDigits, record.secret) ||
        !ReadText(r.getVantage(), kMaxVantageBytes, record.vantage))
      return Status::Corruption("token record field too long");
    record.created_unix = r.getCreatedUnix();
    record.expires_unix = r.getExpiresUnix();
    record.max_uses = r.getMaxUses();
    record.uses = r.getUses();
    auto used_by = r.getUsedBy();
    if (used_by.size() > kMaxUsedBy) return Status::Corruption("token record used by too many nodes");
    record.used_by.reserve(used_by.size());
    for (auto t : used_by) {
      std::string node;
      if (!ReadText(t, 32, node)) return Status::Corruption("token record used_by entry too long");
      record.used_by.push_back(std::move(node));
    }
    record.revoked = r.getRevoked();
    switch (r.getRole()) {
      case schema::NodeRole::SCANNER: record.role = NodeRole::kScanner; break;
      case schema::NodeRole::OPERATOR: record.role = NodeRole::kOperator; break;
      default: return Status::Corruption("token record has an unknown role");
    }
    if (std::string p = RecordProblem(record); !p.empty()) return Status::Corruption(p);
    return Status::Ok();
  });
  if (!status.ok()) return status;
  return record;
}

Result<int64_t> ParseTtlSeconds(std::string_view text) {
  auto bad = [&](const char* why) {
    return Status::InvalidArgument("invalid duration \"" + Printable(text, 32) + "\": " + why +
                                   " (expected a positive integer and a unit s, m, h or d, e.g. 24h)");
  };
  if (text.size() < 2) return bad("too short");
  int64_t unit = 0;
  switch (text.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    default: return bad("no unit");
  }
  std::string_view digits = text.substr(0, text.size() - 1);
  int64_t value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return bad("not a positive integer");
    value = value * 10 + (c - '0');
    // Stops long before int64 could overflow.
    if (value > kMaxTtlSeconds) return bad("longer than 365 days");
  }
  if (value == 0) return bad("zero");
  if (value > kMaxTtlSeconds / unit) return bad("longer than 365 days");
  return value * unit;
}

}  // namespace ndo::mesh
