// JSON Lines: one self-contained object per result, so the output streams into
// jq, log shippers or a database without a document to hold in memory.
#include <string>

#include "cli/output/writers.h"
#include "scan/port_list.h"

namespace ndo {
namespace {

// RFC 8259 string escaping; invalid UTF-8 becomes U+FFFD so the line parses.
void AppendJsonString(std::string& out, std::string_view raw) {
  static constexpr char kHex[] = "0123456789abcdef";
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
          out += kHex[(c >> 4) & 0xF];
          out += kHex[c & 0xF];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

class JsonWriter : public ResultWriter {
 public:
  explicit JsonWriter(std::ostream& out) : out_(out) {}

  void Begin(const ScanRecord& scan) override {
    scan_id_ = ScanIdToHex(scan.id);
    names_ = HostnameIndex(scan.spec.targets);
  }

  void Write(const ProbeResult& r) override {
    std::string line;
    line.reserve(192);
    line += "{\"scan\":";
    AppendJsonString(line, scan_id_);
    line += ",\"address\":";
    AppendJsonString(line, r.address.ToString());
    if (std::string_view name = names_.First(r.address); !name.empty()) {
      line += ",\"hostname\":";
      AppendJsonString(line, name);
    }
    line += ",\"port\":" + std::to_string(r.port);
    line += ",\"state\":";
    AppendJsonString(line, PortStateName(r.state));
    line += ",\"service\":";
    AppendJsonString(line, ServiceName(r.port));
    line += ",\"rtt_us\":" + std::to_string(r.rtt_us);
    line += ",\"attempts\":" + std::to_string(r.attempts);
    line += ",\"time\":";
    AppendJsonString(line, FormatTimestamp(r.time_us));
    line += "}\n";
    out_ << line;
  }

  void End(const ScanRecord&) override { out_.flush(); }

 private:
  std::ostream& out_;
  std::string scan_id_;
  HostnameIndex names_;
};

}  // namespace

std::unique_ptr<ResultWriter> MakeJsonWriter(std::ostream& out, WriterOptions) {
  return std::make_unique<JsonWriter>(out);
}

}  // namespace ndo
