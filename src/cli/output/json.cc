#include "cli/output/json.h"

#include <cmath>
#include <cstdio>

#include "base/hex.h"
#include "cli/output/writers.h"

namespace ndo {

// RFC 8259 string escaping; invalid UTF-8 becomes U+FFFD so the line parses.
void AppendJsonString(std::string& out, std::string_view raw) {
  out += '"';
  for (char c : ValidUtf8(raw)) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += "\\u00";
          AppendHexByte(out, static_cast<uint8_t>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void JsonObject::Key(std::string_view key) {
  if (text_.size() > 1) text_ += ',';
  AppendJsonString(text_, key);
  text_ += ':';
}

JsonObject& JsonObject::Str(std::string_view key, std::string_view value) {
  Key(key);
  AppendJsonString(text_, value);
  return *this;
}

JsonObject& JsonObject::UInt(std::string_view key, uint64_t value) { return Raw(key, std::to_string(value)); }

JsonObject& JsonObject::Int(std::string_view key, int64_t value) { return Raw(key, std::to_string(value)); }

JsonObject& JsonObject::Num(std::string_view key, double value, int decimals) {
  if (!std::isfinite(value)) return Null(key);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return Raw(key, buf);
}

JsonObject& JsonObject::Bool(std::string_view key, bool value) { return Raw(key, value ? "true" : "false"); }

JsonObject& JsonObject::Null(std::string_view key) { return Raw(key, "null"); }

JsonObject& JsonObject::Raw(std::string_view key, std::string_view json) {
  Key(key);
  text_ += json;
  return *this;
}

std::string JsonArray(const std::vector<std::string>& json_values) {
  std::string out = "[";
  for (size_t i = 0; i < json_values.size(); ++i) out += (i ? "," : "") + json_values[i];
  return out + "]";
}

std::string JsonStringArray(const std::vector<std::string>& strings) {
  std::string out = "[";
  for (size_t i = 0; i < strings.size(); ++i) {
    if (i) out += ',';
    AppendJsonString(out, strings[i]);
  }
  return out + "]";
}

}  // namespace ndo
