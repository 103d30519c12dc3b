#include "cli/output/result_writer.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "cli/output/writers.h"
#include "scan/port_list.h"

namespace ndo {
namespace {

using Factory = std::unique_ptr<ResultWriter> (*)(std::ostream&, WriterOptions);

struct Format {
  std::string_view name;
  Factory make;
};

// The first entry is the default the CLI uses when no format is given.
constexpr Format kFormats[] = {
    {"table", MakeTableWriter},
    {"json", MakeJsonWriter},
    {"csv", MakeCsvWriter},
    {"xml", MakeXmlWriter},
};

// Length of the valid UTF-8 sequence starting at text[i], or 0 if it is not
// one (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
size_t Utf8SequenceLength(std::string_view text, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  unsigned char b = byte(i);
  if (b < 0x80) return 1;
  size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b >= 0xC2 && b <= 0xDF) {
    len = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    len = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    len = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > text.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < len; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  return len;
}

}  // namespace

std::unique_ptr<ResultWriter> MakeResultWriter(std::string_view format, std::ostream& out, WriterOptions options) {
  for (const Format& f : kFormats)
    if (f.name == format) return f.make(out, options);
  return nullptr;
}

const std::vector<std::string>& ResultFormats() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const Format& f : kFormats) v.emplace_back(f.name);
    return v;
  }();
  return names;
}

std::string FormatTimestamp(int64_t unix_us) {
  // Floor division, so times before 1970 still get a micro part in [0, 1e6).
  int64_t secs = unix_us / 1'000'000;
  int64_t micros = unix_us % 1'000'000;
  if (micros < 0) {
    micros += 1'000'000;
    secs -= 1;
  }
  time_t t = static_cast<time_t>(secs);
  struct tm tm {};
  if (gmtime_r(&t, &tm) == nullptr) return "invalid-time";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(micros));
  return buf;
}

HostnameIndex::HostnameIndex(const TargetSet& targets) {
  entries_.reserve(targets.names.size());
  for (const NamedAddress& n : targets.names) entries_.emplace_back(n.address, n.hostname);
  // Stable, so the first name typed for an address stays first.
  std::stable_sort(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
}

std::vector<std::string_view> HostnameIndex::All(IpAddress address) const {
  auto lo = std::lower_bound(entries_.begin(), entries_.end(), address,
                             [](const auto& e, IpAddress a) { return e.first < a; });
  std::vector<std::string_view> names;
  for (auto it = lo; it != entries_.end() && it->first == address; ++it)
    if (std::find(names.begin(), names.end(), it->second) == names.end()) names.push_back(it->second);
  return names;
}

std::string_view HostnameIndex::First(IpAddress address) const {
  auto lo = std::lower_bound(entries_.begin(), entries_.end(), address,
                             [](const auto& e, IpAddress a) { return e.first < a; });
  return lo != entries_.end() && lo->first == address ? std::string_view(lo->second) : std::string_view();
}

std::string ValidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    size_t len = Utf8SequenceLength(text, i);
    if (len == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
      ++i;
    } else {
      out.append(text, i, len);
      i += len;
    }
  }
  return out;
}

}  // namespace ndo

namespace ndo {

std::string ServiceLabel(uint16_t port, const ServiceEvidence* evidence) {
  if (evidence && !evidence->service.empty()) return evidence->service;
  return std::string(ServiceName(port));
}

std::string DistinguishedName(const std::string& cn, const std::string& o, const std::string& ou) {
  std::string out;
  for (const auto& [key, value] : {std::pair{"CN", &cn}, std::pair{"O", &o}, std::pair{"OU", &ou}}) {
    if (value->empty()) continue;
    if (!out.empty()) out += ", ";
    out += std::string(key) + "=" + *value;
  }
  return out;
}

}  // namespace ndo
