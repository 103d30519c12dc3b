// Feeds: any text, as the join token an operator passes to `ndo join
// --token`, to ParseJoinToken (src/mesh/security/join_token.h).
// Checks, beyond "no crash":
//  - a parsed token has a 16- and a 32-digit lowercase hex id and secret, and
//    FormatJoinToken writes it as "ndo1.<id>.<secret>", which is the trimmed
//    input in lowercase and parses back to the same token;
//  - a refusal never echoes the secret: its message contains no run of 32
//    hex digits taken from the input (in either case).
#include <algorithm>
#include <cctype>
#include <string>

#include "fuzz_check.h"
#include "mesh/security/join_token.h"

using namespace ndo;
using namespace ndo::mesh;

namespace {

bool LowerHex(const std::string& s, size_t digits) {
  return s.size() == digits &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text = FuzzInput(data, size);
  auto token = ParseJoinToken(text);
  if (token.ok()) {
    FUZZ_CHECK(LowerHex(token->id, kTokenIdHexDigits));
    FUZZ_CHECK(LowerHex(token->secret, kTokenSecretHexDigits));
    std::string formatted = FormatJoinToken(*token);
    FUZZ_CHECK(formatted == std::string(kTokenPrefix) + "." + token->id + "." + token->secret);
    FUZZ_CHECK_MSG(formatted == Lower(Trim(text)), formatted);
    auto again = ParseJoinToken(formatted);
    FUZZ_CHECK(again.ok() && again->id == token->id && again->secret == token->secret);
    return 0;
  }
  // Every window of 32 hex digits of the input could be a secret.
  std::string message = Lower(token.status().message());
  std::string lower = Lower(text);
  size_t run = 0;
  for (size_t i = 0; i < lower.size(); ++i) {
    run = std::isxdigit(static_cast<unsigned char>(lower[i])) ? run + 1 : 0;
    if (run >= kTokenSecretHexDigits) {
      std::string_view window = std::string_view(lower).substr(i + 1 - kTokenSecretHexDigits, kTokenSecretHexDigits);
      FUZZ_CHECK_MSG(message.find(window) == std::string::npos, token.status().message());
    }
  }
  return 0;
}
