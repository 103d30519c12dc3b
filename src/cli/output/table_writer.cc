// The human format, modelled on Nmap's normal output: one block per host with
// an aligned PORT STATE SERVICE RTT table. Results arrive sorted by address,
// so one host is buffered at a time (its rows are needed to size the columns).
#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "cli/output/writers.h"
#include "scan/port_list.h"
#include "scan/service/banner_session.h"

namespace ndo {
namespace {

using Row = std::array<std::string, 4>;  // PORT STATE SERVICE RTT

std::string FormatRtt(uint32_t rtt_us) {
  if (rtt_us == 0) return "-";  // filtered: nothing answered
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fms", rtt_us / 1000.0);
  return buf;
}

// A hostname fit for a terminal: control characters could move the cursor or
// recolour the screen, so they are shown as '?'.
std::string Printable(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return out;
}

// "3 filtered ports", "1 unreachable port".
std::string CountPhrase(size_t n, std::string_view state) {
  return std::to_string(n) + " " + std::string(state) + (n == 1 ? " port" : " ports");
}

std::string Day(int64_t unix_seconds) { return FormatTimestamp(unix_seconds * 1'000'000).substr(0, 10); }

// One line for the banner, one for the handshake and one per certificate.
std::vector<std::string> EvidenceNotes(const ServiceEvidence& ev) {
  std::vector<std::string> notes;
  if (ev.tls) {
    const TlsEvidence& t = *ev.tls;
    if (t.error.empty() || !t.chain.empty())
      notes.push_back("tls: " + t.version + " " + t.cipher + ", " + std::string(TlsVerdictName(t.verdict)));
    else
      notes.push_back("tls: " + Printable(t.error));
    for (const CertificateInfo& c : t.chain)
      notes.push_back("  cert: " + Printable(DistinguishedName(c.subject_cn, c.subject_o, c.subject_ou)) +
                      "; issuer " + Printable(DistinguishedName(c.issuer_cn, c.issuer_o, c.issuer_ou)) + "; " +
                      Day(c.not_before) + " to " + Day(c.not_after) + "; " + c.key_type + " " +
                      std::to_string(c.key_bits) + (c.self_signed ? "; self-signed" : ""));
  }
  if (ev.banner && (!ev.banner->bytes.empty() || !ev.banner->error.empty())) {
    std::string text = EscapeBytes(ev.banner->bytes.substr(0, 160));
    if (ev.banner->bytes.size() > 160 || ev.banner->truncated) text += "...";
    notes.push_back("banner: " + (text.empty() ? "(" + ev.banner->error + ")" : text));
  }
  return notes;
}

class TableWriter : public ResultWriter {
 public:
  TableWriter(std::ostream& out, WriterOptions options) : out_(out), options_(options) {}

  void Begin(const ScanRecord& scan) override {
    names_ = HostnameIndex(scan.spec.targets);
    store_all_ = scan.spec.store_all;
    spec_ports_ = scan.spec.ports.size();
  }

  void Write(const ProbeResult& r, const ServiceEvidence* ev) override {
    if (host_ && *host_ != r.address) Flush();
    host_ = r.address;
    ++stored_;
    if (Hidden(r.state)) {
      ++hidden_[static_cast<size_t>(r.state)];
      return;
    }
    rows_.push_back({std::to_string(r.port) + "/tcp", std::string(PortStateName(r.state)),
                     Printable(ServiceLabel(r.port, ev)), FormatRtt(r.rtt_us)});
    notes_.push_back(ev ? EvidenceNotes(*ev) : std::vector<std::string>{});
  }

  void End(const ScanRecord&) override {
    Flush();
    out_.flush();
  }

 private:
  // Like Nmap, the table is about what answers: closed, filtered and
  // unreachable ports of a large scan number in the thousands and would bury
  // the open ones. --show-all lists them too.
  bool Hidden(PortState s) const { return !options_.table_show_all && s != PortState::kOpen; }

  void Flush() {
    if (!host_) return;
    if (rows_.empty()) {  // nothing to list for this host: no block at all
      Reset();
      return;
    }
    if (hosts_written_++ > 0) out_ << '\n';
    out_ << "ndo scan report for " << host_->ToString();
    if (std::string_view name = names_.First(*host_); !name.empty()) out_ << " (" << Printable(name) << ")";
    out_ << '\n';
    WriteNotShown();
    WriteRows();
    Reset();
  }

  void Reset() {
    host_.reset();
    rows_.clear();
    notes_.clear();
    stored_ = 0;
    hidden_.fill(0);
  }

  // Only with --store-all is the fate of every port known; otherwise just the
  // open ports were kept and silence about the rest is the honest summary.
  void WriteNotShown() {
    if (!store_all_) return;
    std::vector<std::string> parts;
    for (PortState st : {PortState::kClosed, PortState::kFiltered, PortState::kUnreachable})
      if (size_t n = hidden_[static_cast<size_t>(st)]) parts.push_back(CountPhrase(n, PortStateName(st)));
    // An interrupted scan has not probed every port of every host yet.
    if (spec_ports_ > stored_) parts.push_back(CountPhrase(spec_ports_ - stored_, "unscanned"));
    if (parts.empty()) return;
    out_ << "Not shown: ";
    for (size_t i = 0; i < parts.size(); ++i) out_ << (i ? ", " : "") << parts[i];
    out_ << '\n';
  }

  void WriteRows() {
    const Row header = {"PORT", "STATE", "SERVICE", "RTT"};
    std::array<size_t, 4> width{};
    for (size_t c = 0; c < width.size(); ++c) {
      width[c] = header[c].size();
      for (const Row& row : rows_) width[c] = std::max(width[c], row[c].size());
    }
    WriteRow(header, width);
    for (size_t i = 0; i < rows_.size(); ++i) {
      WriteRow(rows_[i], width);
      // Nmap's script-output style under the port's row.
      for (size_t n = 0; n < notes_[i].size(); ++n)
        out_ << (n + 1 == notes_[i].size() ? "|_ " : "|  ") << notes_[i][n] << '\n';
    }
  }

  void WriteRow(const Row& row, const std::array<size_t, 4>& width) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line.append(width[c] - row[c].size() + 1, ' ');  // no trailing blanks
    }
    out_ << line << '\n';
  }

  std::ostream& out_;
  WriterOptions options_;
  HostnameIndex names_;
  bool store_all_ = false;
  size_t spec_ports_ = 0;

  // The host being buffered.
  std::optional<IpAddress> host_;
  std::vector<Row> rows_;
  std::vector<std::vector<std::string>> notes_;  // evidence lines per row
  size_t stored_ = 0;
  std::array<size_t, 5> hidden_{};  // by PortState value
  size_t hosts_written_ = 0;
};

}  // namespace

std::unique_ptr<ResultWriter> MakeTableWriter(std::ostream& out, WriterOptions options) {
  return std::make_unique<TableWriter>(out, options);
}

}  // namespace ndo
