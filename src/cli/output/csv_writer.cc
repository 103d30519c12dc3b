// CSV for spreadsheets: a header row, then one row per result. Lines end in
// "\n" (what Unix tools expect; every RFC 4180 reader accepts it too).
#include <string>

#include "cli/output/writers.h"
#include "scan/port_list.h"
#include "scan/service/banner_session.h"

namespace ndo {

// RFC 4180: a field holding a comma, quote or line break is quoted, and its
// quotes doubled; anything else is written as is.
void AppendCsvField(std::string& out, std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) {
    out += field;
    return;
  }
  out += '"';
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

namespace {

class CsvWriter : public ResultWriter {
 public:
  explicit CsvWriter(std::ostream& out) : out_(out) {}

  void Begin(const ScanRecord& scan) override {
    scan_id_ = ScanIdToHex(scan.id);
    names_ = HostnameIndex(scan.spec.targets);
    out_ << "scan,address,hostname,port,state,service,rtt_us,attempts,time,banner,tls_verdict,cert_subject,cert_issuer,cert_not_after\n";
  }

  void Write(const ProbeResult& r, const ServiceEvidence* ev) override {
    std::string row;
    row.reserve(128);
    const std::string address = r.address.ToString();
    for (std::string_view field : {std::string_view(scan_id_), std::string_view(address), names_.First(r.address)}) {
      AppendCsvField(row, field);
      row += ',';
    }
    row += std::to_string(r.port) + ',';
    AppendCsvField(row, PortStateName(r.state));
    row += ',';
    AppendCsvField(row, ServiceLabel(r.port, ev));
    row += ',' + std::to_string(r.rtt_us) + ',' + std::to_string(r.attempts) + ',';
    AppendCsvField(row, FormatTimestamp(r.time_us));
    // Evidence columns: the banner (escaped), and the TLS verdict and leaf certificate.
    const BannerEvidence* b = ev && ev->banner ? &*ev->banner : nullptr;
    const TlsEvidence* t = ev && ev->tls ? &*ev->tls : nullptr;
    const CertificateInfo* leaf = t && !t->chain.empty() ? &t->chain.front() : nullptr;
    for (const std::string& field :
         {b ? EscapeBytes(b->bytes) : std::string(), t ? std::string(TlsVerdictName(t->verdict)) : std::string(),
          leaf ? DistinguishedName(leaf->subject_cn, leaf->subject_o, leaf->subject_ou) : std::string(),
          leaf ? DistinguishedName(leaf->issuer_cn, leaf->issuer_o, leaf->issuer_ou) : std::string(),
          leaf ? FormatTimestamp(leaf->not_after * 1'000'000) : std::string()}) {
      row += ',';
      AppendCsvField(row, field);
    }
    row += '\n';
    out_ << row;
  }

  void End(const ScanRecord&) override { out_.flush(); }

 private:
  std::ostream& out_;
  std::string scan_id_;
  HostnameIndex names_;
};

}  // namespace

std::unique_ptr<ResultWriter> MakeCsvWriter(std::ostream& out, WriterOptions) {
  return std::make_unique<CsvWriter>(out);
}

}  // namespace ndo
