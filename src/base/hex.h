// The one hex encoding of ndo: lowercase digits, two per byte, most
// significant nibble first. Ids, fingerprints, token parts and the escapes of
// logs, JSON and banners all use it, so the same bytes always read the same.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"

namespace ndo {

std::string HexEncode(std::span<const uint8_t> bytes);
std::string HexEncode(std::string_view bytes);
// Appends the two digits of one byte (for escapes such as "\x1f").
void AppendHexByte(std::string& out, uint8_t byte);

// The value of a hex digit of either case, or -1.
int HexDigitValue(char c);
bool IsHexDigit(char c);
// Bytes from an even number of hex digits of either case.
Result<std::string> HexDecode(std::string_view hex);

}  // namespace ndo
