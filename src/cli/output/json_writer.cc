// JSON Lines: one self-contained object per result, so the output streams into
// jq, log shippers or a database without a document to hold in memory.
#include <string>

#include "cli/output/writers.h"
#include "scan/port_list.h"
#include "scan/service/banner_session.h"

namespace ndo {

namespace {

void AppendField(std::string& out, std::string_view key, std::string_view value) {
  out += ",\"";
  out += key;
  out += "\":";
  AppendJsonString(out, value);
}

// The banner as escaped text (lossless for binary bytes, one line).
void AppendBanner(std::string& line, const BannerEvidence& b) {
  line += ",\"banner\":{";
  line += "\"text\":";
  AppendJsonString(line, EscapeBytes(b.bytes));
  line += ",\"truncated\":";
  line += b.truncated ? "true" : "false";
  if (!b.error.empty()) AppendField(line, "error", b.error);
  line += "}";
}

void AppendName(std::string& line, std::string_view key, const std::string& cn, const std::string& o,
                const std::string& ou) {
  line += ",\"";
  line += key;
  line += "\":{\"cn\":";
  AppendJsonString(line, cn);
  AppendField(line, "o", o);
  AppendField(line, "ou", ou);
  line += "}";
}

void AppendCertificate(std::string& line, const CertificateInfo& c) {
  line += "{\"sha256\":";
  AppendJsonString(line, FingerprintHex(c.sha256));
  AppendName(line, "subject", c.subject_cn, c.subject_o, c.subject_ou);
  AppendName(line, "issuer", c.issuer_cn, c.issuer_o, c.issuer_ou);
  line += ",\"sans\":[";
  for (size_t i = 0; i < c.sans.size(); ++i) {
    if (i) line += ",";
    AppendJsonString(line, c.sans[i]);
  }
  line += "]";
  AppendField(line, "serial", c.serial_hex);
  AppendField(line, "not_before", FormatTimestamp(c.not_before * 1'000'000));
  AppendField(line, "not_after", FormatTimestamp(c.not_after * 1'000'000));
  AppendField(line, "signature_algorithm", c.signature_algorithm);
  AppendField(line, "key_type", c.key_type);
  line += ",\"key_bits\":" + std::to_string(c.key_bits);
  line += ",\"self_signed\":";
  line += c.self_signed ? "true" : "false";
  line += "}";
}

void AppendTls(std::string& line, const TlsEvidence& t) {
  line += ",\"tls\":{\"verdict\":";
  AppendJsonString(line, TlsVerdictName(t.verdict));
  AppendField(line, "version", t.version);
  AppendField(line, "cipher", t.cipher);
  if (!t.sni.empty()) AppendField(line, "sni", t.sni);
  if (!t.error.empty()) AppendField(line, "error", t.error);
  if (!t.verify_detail.empty()) AppendField(line, "verify", t.verify_detail);
  line += ",\"chain\":[";
  for (size_t i = 0; i < t.chain.size(); ++i) {
    if (i) line += ",";
    AppendCertificate(line, t.chain[i]);
  }
  line += "]}";
}

class JsonWriter : public ResultWriter {
 public:
  explicit JsonWriter(std::ostream& out) : out_(out) {}

  void Begin(const ScanRecord& scan) override {
    scan_id_ = ScanIdToHex(scan.id);
    names_ = HostnameIndex(scan.spec.targets);
  }

  void Write(const ProbeResult& r, const ServiceEvidence* ev) override {
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
    AppendJsonString(line, ServiceLabel(r.port, ev));
    line += ",\"rtt_us\":" + std::to_string(r.rtt_us);
    line += ",\"attempts\":" + std::to_string(r.attempts);
    line += ",\"time\":";
    AppendJsonString(line, FormatTimestamp(r.time_us));
    if (ev && ev->banner) AppendBanner(line, *ev->banner);
    if (ev && ev->tls) AppendTls(line, *ev->tls);
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
