// A small strict JSON reader for tests of --format json: parses one value
// (RFC 8259; \uXXXX escapes to UTF-8, surrogate pairs included), so a test
// checks what a reader of the output would get, not a regular expression.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ndo::testing {

struct Json {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = Kind::kNull;
  bool boolean = false;
  std::string text;  // a number as written, or a string's value
  std::vector<Json> items;
  std::map<std::string, Json> fields;
  std::vector<std::string> order;  // field names in the order written

  bool Has(const std::string& key) const { return fields.count(key) > 0; }
  const Json& operator[](const std::string& key) const {
    static const Json kMissing;
    auto it = fields.find(key);
    return it == fields.end() ? kMissing : it->second;
  }
  bool IsNull() const { return kind == Kind::kNull; }
  double Number() const { return std::stod(text); }
  uint64_t UInt() const { return std::stoull(text); }
};

namespace json_detail {

class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  std::optional<Json> Document() {
    auto v = Value();
    Space();
    if (!v || i_ != s_.size()) return std::nullopt;
    return v;
  }

 private:
  void Space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool Eat(char c) {
    Space();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  bool Word(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  static void Utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  std::optional<uint32_t> Hex4() {
    if (i_ + 4 > s_.size()) return std::nullopt;
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else return std::nullopt;
    }
    return v;
  }
  std::optional<std::string> String() {
    if (!Eat('"')) return std::nullopt;
    std::string out;
    while (i_ < s_.size()) {
      unsigned char c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return out;
      if (c < 0x20) return std::nullopt;  // control characters must be escaped
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (i_ >= s_.size()) return std::nullopt;
      char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          auto cp = Hex4();
          if (!cp) return std::nullopt;
          if (*cp >= 0xd800 && *cp < 0xdc00) {
            if (!Word("\\u")) return std::nullopt;
            auto low = Hex4();
            if (!low || *low < 0xdc00 || *low >= 0xe000) return std::nullopt;
            *cp = 0x10000 + ((*cp - 0xd800) << 10) + (*low - 0xdc00);
          }
          Utf8(out, *cp);
          break;
        }
        default: return std::nullopt;
      }
    }
    return std::nullopt;
  }
  std::optional<Json> Value() {
    Space();
    if (i_ >= s_.size()) return std::nullopt;
    Json v;
    char c = s_[i_];
    if (c == '{') {
      ++i_;
      v.kind = Json::Kind::kObject;
      if (Eat('}')) return v;
      do {
        auto key = String();
        if (!key || !Eat(':')) return std::nullopt;
        auto item = Value();
        if (!item || v.fields.count(*key)) return std::nullopt;  // a key twice is a bug in a writer
        v.order.push_back(*key);
        v.fields.emplace(*key, std::move(*item));
      } while (Eat(','));
      return Eat('}') ? std::optional<Json>(v) : std::nullopt;
    }
    if (c == '[') {
      ++i_;
      v.kind = Json::Kind::kArray;
      if (Eat(']')) return v;
      do {
        auto item = Value();
        if (!item) return std::nullopt;
        v.items.push_back(std::move(*item));
      } while (Eat(','));
      return Eat(']') ? std::optional<Json>(v) : std::nullopt;
    }
    if (c == '"') {
      auto s = String();
      if (!s) return std::nullopt;
      v.kind = Json::Kind::kString;
      v.text = *s;
      return v;
    }
    if (Word("null")) return v;
    if (Word("true") || Word("false")) {
      v.kind = Json::Kind::kBool;
      v.boolean = s_[i_ - 1] == 'e' && s_[i_ - 2] == 'u';
      return v;
    }
    size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    size_t digits = i_;
    while (i_ < s_.size() && ((s_[i_] >= '0' && s_[i_] <= '9') || s_[i_] == '.' || s_[i_] == 'e' ||
                              s_[i_] == 'E' || s_[i_] == '+' || s_[i_] == '-'))
      ++i_;
    if (i_ == digits) return std::nullopt;
    v.kind = Json::Kind::kNumber;
    v.text = std::string(s_.substr(start, i_ - start));
    return v;
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace json_detail

// One JSON value (a whole document), or nullopt when it is not valid JSON.
inline std::optional<Json> ParseJson(std::string_view text) { return json_detail::Reader(text).Document(); }

// JSON Lines: one value per line; nullopt if any line is not valid JSON.
inline std::optional<std::vector<Json>> ParseJsonLines(std::string_view text) {
  std::vector<Json> out;
  while (!text.empty()) {
    size_t end = text.find('\n');
    if (end == std::string_view::npos) return std::nullopt;  // every line ends with a newline
    auto v = ParseJson(text.substr(0, end));
    if (!v) return std::nullopt;
    out.push_back(std::move(*v));
    text.remove_prefix(end + 1);
  }
  return out;
}

}  // namespace ndo::testing
