// JSON for every command's --format json: the one string escaper, and a
// builder of one-line objects. Lists are JSON Lines (one object per line).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ndo {

// A JSON string literal (RFC 8259 escaping, invalid UTF-8 as U+FFFD), appended to `out`.
void AppendJsonString(std::string& out, std::string_view raw);

// One JSON object, field by field in the order added: strings escaped by
// AppendJsonString, numbers as given, no whitespace.
class JsonObject {
 public:
  JsonObject& Str(std::string_view key, std::string_view value);
  JsonObject& UInt(std::string_view key, uint64_t value);
  JsonObject& Int(std::string_view key, int64_t value);
  // `decimals` after the point; NaN and infinities (and so unknowns) as null.
  JsonObject& Num(std::string_view key, double value, int decimals = 3);
  JsonObject& Bool(std::string_view key, bool value);
  JsonObject& Null(std::string_view key);
  // A value already in JSON: a number too large for uint64_t, an array, an object.
  JsonObject& Raw(std::string_view key, std::string_view json);
  // The object, "{...}".
  std::string str() const { return text_ + "}"; }

 private:
  void Key(std::string_view key);
  std::string text_ = "{";
};

// A JSON array of the given JSON values, and of strings.
std::string JsonArray(const std::vector<std::string>& json_values);
std::string JsonStringArray(const std::vector<std::string>& strings);

}  // namespace ndo
