// Nmap-compatible XML (nmap.dtd, xmloutputversion 1.05), shaped like the
// output of `nmap -sT -Pn -oX`, so ndiff, Zenmap and the many Nmap XML
// importers read ndo scans. The DTD only admits scanner="nmap"; ndo names
// itself in a comment and in args instead.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "cli/output/writers.h"
#include "scan/port_list.h"
#include "scan/service/banner_session.h"
#include "scan/rtt_estimator.h"

namespace ndo {
namespace {

#ifdef NDO_VERSION
constexpr std::string_view kVersion = NDO_VERSION;
#else
constexpr std::string_view kVersion = "0.1.0";  // keep in step with project(VERSION) in CMakeLists.txt
#endif

// Text for a double-quoted attribute. Tabs and line breaks become character
// references because attribute normalisation would turn them into spaces; other
// control characters are not allowed in XML 1.0 at all.
std::string XmlAttr(std::string_view raw) {
  std::string out;
  for (char c : ValidUtf8(raw)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      case '\t': out += "&#9;"; break;
      case '\n': out += "&#10;"; break;
      case '\r': out += "&#13;"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          out += "\xEF\xBF\xBD";  // U+FFFD
        else
          out += c;
    }
  }
  return out;
}

int64_t Seconds(int64_t unix_us) { return unix_us / 1'000'000; }

// Nmap's startstr/timestr form ("Wed Nov 25 10:08:36 2026"), in UTC so the
// same scan always renders the same document.
std::string CtimeString(int64_t unix_us) {
  time_t t = static_cast<time_t>(Seconds(unix_us));
  struct tm tm {};
  if (gmtime_r(&t, &tm) == nullptr) return "";
  char buf[64];
  size_t n = std::strftime(buf, sizeof buf, "%a %b %e %H:%M:%S %Y", &tm);
  return std::string(buf, n);
}

std::string Fixed2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

// The command line for args: words with blanks or quotes are shell-quoted so
// the attribute reads back as something one could type again.
std::string JoinArguments(const std::vector<std::string>& args) {
  if (args.empty()) return "ndo";
  std::string out;
  for (const std::string& a : args) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() && a.find_first_of(" \t\n'\"\\$`;&|<>()*?[]#~") == std::string::npos;
    if (plain) {
      out += a;
      continue;
    }
    out += '\'';
    for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

// What Nmap reports as the evidence for a state in a connect scan.
std::string_view Reason(PortState s) {
  switch (s) {
    case PortState::kOpen: return "syn-ack";
    case PortState::kClosed: return "conn-refused";
    case PortState::kFiltered: return "no-response";
    case PortState::kUnreachable: return "host-unreach";
  }
  return "unknown";
}

// Nmap has no "unreachable" port state: an ICMP unreachable makes the port filtered.
std::string_view NmapState(PortState s) { return s == PortState::kUnreachable ? "filtered" : PortStateName(s); }

class XmlWriter : public ResultWriter {
 public:
  explicit XmlWriter(std::ostream& out) : out_(out) {}

  void Begin(const ScanRecord& scan) override {
    const ScanSpec& spec = scan.spec;
    names_ = HostnameIndex(spec.targets);
    spec_ports_ = spec.ports.size();
    store_all_ = spec.store_all;
    probe_ = spec.probe;
    out_ << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         << "<!DOCTYPE nmaprun>\n"
         << "<!-- ndo " << kVersion << " scan " << ScanIdToHex(scan.id) << " initiated "
         << FormatTimestamp(scan.created_us) << " -->\n"
         << "<nmaprun scanner=\"nmap\" args=\"" << XmlAttr(JoinArguments(spec.arguments)) << "\" start=\""
         << Seconds(scan.created_us) << "\" startstr=\"" << CtimeString(scan.created_us) << "\" version=\"" << kVersion
         << "\" xmloutputversion=\"1.05\">\n"
         << "<scaninfo type=\"connect\" protocol=\"tcp\" numservices=\"" << spec.ports.size() << "\" services=\""
         << FormatPortList(spec.ports) << "\"/>\n"
         << "<verbose level=\"0\"/>\n"
         << "<debugging level=\"0\"/>\n";
  }

  void Write(const ProbeResult& r, const ServiceEvidence* ev) override {
    if (!host_.empty() && host_.front().address != r.address) FlushHost();
    host_.push_back(r);
    evidence_.push_back(ev ? std::optional<ServiceEvidence>(*ev) : std::nullopt);
  }

  void End(const ScanRecord& scan) override {
    FlushHost();
    WriteRunstats(scan);
    out_ << "</nmaprun>\n";
    out_.flush();
  }

 private:
  void FlushHost() {
    if (host_.empty()) return;
    const IpAddress address = host_.front().address;
    auto [first, last] = std::minmax_element(host_.begin(), host_.end(),
                                             [](const auto& a, const auto& b) { return a.time_us < b.time_us; });
    out_ << "<host starttime=\"" << Seconds(first->time_us) << "\" endtime=\"" << Seconds(last->time_us) << "\">"
         << "<status state=\"up\" reason=\"user-set\" reason_ttl=\"0\"/>\n"
         << "<address addr=\"" << address.ToString() << "\" addrtype=\"" << (address.is_v4() ? "ipv4" : "ipv6")
         << "\"/>\n";
    WriteHostnames(address);
    WritePorts();
    WriteTimes();
    out_ << "</host>\n";
    ++hosts_up_;
    host_.clear();
    evidence_.clear();
  }

  void WriteHostnames(IpAddress address) {
    out_ << "<hostnames>\n";
    for (std::string_view name : names_.All(address))
      out_ << "<hostname name=\"" << XmlAttr(name) << "\" type=\"user\"/>\n";
    out_ << "</hostnames>\n";
  }

  void WritePorts() {
    out_ << "<ports>";
    // Ports of the spec with nothing stored: with --store-all every answer and
    // every silence is kept, so a missing port was never answered (filtered);
    // without it only open ports are kept, so the rest is closed or filtered.
    size_t stored = 0;
    for (size_t i = 0; i < host_.size(); ++i)
      if (i == 0 || host_[i].port != host_[i - 1].port) ++stored;
    if (spec_ports_ > stored) {
      out_ << "<extraports state=\"" << (store_all_ ? "filtered" : "closed|filtered") << "\" count=\""
           << spec_ports_ - stored << "\">\n</extraports>\n";
    }
    for (size_t i = 0; i < host_.size(); ++i) {
      const ProbeResult& r = host_[i];
      const ServiceEvidence* ev = evidence_[i] ? &*evidence_[i] : nullptr;
      bool probed = ev && !ev->service.empty();
      out_ << "<port protocol=\"tcp\" portid=\"" << r.port << "\"><state state=\"" << NmapState(r.state)
           << "\" reason=\"" << Reason(r.state) << "\" reason_ttl=\"0\"/><service name=\""
           << XmlAttr(ServiceLabel(r.port, ev)) << "\" method=\"" << (probed ? "probed" : "table") << "\" conf=\""
           << (probed ? 10 : 3) << "\"/>";
      if (ev) WriteScripts(*ev);
      out_ << "</port>\n";
    }
    out_ << "</ports>\n";
  }

  // Evidence as NSE script output, shaped like Nmap's banner and ssl-cert
  // scripts so that tools reading Nmap XML find it where they look.
  void WriteScripts(const ServiceEvidence& ev) {
    if (ev.banner && !ev.banner->bytes.empty())
      out_ << "<script id=\"banner\" output=\"" << XmlAttr(EscapeBytes(ev.banner->bytes)) << "\"/>";
    if (!ev.tls) return;
    const TlsEvidence& t = *ev.tls;
    out_ << "<script id=\"ndo-tls\" output=\""
         << XmlAttr(t.chain.empty() ? "handshake failed: " + t.error
                                    : t.version + " " + t.cipher + "; verdict: " + std::string(TlsVerdictName(t.verdict)))
         << "\"><elem key=\"version\">" << XmlAttr(t.version) << "</elem><elem key=\"cipher\">" << XmlAttr(t.cipher)
         << "</elem><elem key=\"verdict\">" << TlsVerdictName(t.verdict) << "</elem></script>";
    if (t.chain.empty()) return;
    const CertificateInfo& c = t.chain.front();
    auto name_text = [](const std::string& cn, const std::string& o, const std::string& ou) {
      std::string out;
      for (const auto& [k, v] : {std::pair{"commonName", &cn}, std::pair{"organizationName", &o},
                                 std::pair{"organizationalUnitName", &ou}})
        if (!v->empty()) out += (out.empty() ? "" : "/") + std::string(k) + "=" + *v;
      return out;
    };
    auto name_table = [&](const char* key, const std::string& cn, const std::string& o, const std::string& ou) {
      out_ << "<table key=\"" << key << "\">";
      if (!cn.empty()) out_ << "<elem key=\"commonName\">" << XmlAttr(cn) << "</elem>";
      if (!o.empty()) out_ << "<elem key=\"organizationName\">" << XmlAttr(o) << "</elem>";
      if (!ou.empty()) out_ << "<elem key=\"organizationalUnitName\">" << XmlAttr(ou) << "</elem>";
      out_ << "</table>";
    };
    std::string not_before = FormatTimestamp(c.not_before * 1'000'000).substr(0, 19);
    std::string not_after = FormatTimestamp(c.not_after * 1'000'000).substr(0, 19);
    std::string sans;
    for (const auto& san : c.sans) sans += (sans.empty() ? "" : ", ") + san;
    std::string output = "Subject: " + name_text(c.subject_cn, c.subject_o, c.subject_ou) + "\n";
    if (!sans.empty()) output += "Subject Alternative Name: " + sans + "\n";
    output += "Issuer: " + name_text(c.issuer_cn, c.issuer_o, c.issuer_ou) + "\nPublic Key type: " + c.key_type +
              "\nPublic Key bits: " + std::to_string(c.key_bits) + "\nSignature Algorithm: " + c.signature_algorithm +
              "\nNot valid before: " + not_before + "\nNot valid after:  " + not_after +
              "\nSHA-256: " + FingerprintHex(c.sha256);
    out_ << "<script id=\"ssl-cert\" output=\"" << XmlAttr(output) << "\">";
    name_table("subject", c.subject_cn, c.subject_o, c.subject_ou);
    name_table("issuer", c.issuer_cn, c.issuer_o, c.issuer_ou);
    out_ << "<table key=\"pubkey\"><elem key=\"type\">" << XmlAttr(c.key_type) << "</elem><elem key=\"bits\">"
         << c.key_bits << "</elem></table>";
    if (!c.sans.empty()) {
      out_ << "<table key=\"extensions\"><table><elem key=\"name\">X509v3 Subject Alternative Name</elem>"
           << "<elem key=\"value\">" << XmlAttr(sans) << "</elem></table></table>";
    }
    out_ << "<elem key=\"sig_algo\">" << XmlAttr(c.signature_algorithm) << "</elem>"
         << "<table key=\"validity\"><elem key=\"notBefore\">" << not_before << "</elem><elem key=\"notAfter\">"
         << not_after << "</elem></table><elem key=\"sha256\">" << FingerprintHex(c.sha256) << "</elem>"
         << "<elem key=\"serial\">" << XmlAttr(c.serial_hex) << "</elem><elem key=\"self_signed\">"
         << (c.self_signed ? "true" : "false") << "</elem></script>";
  }

  // Nmap's per-host timing: RFC 6298 smoothing over the answers, and the
  // timeout it implies within the scan's RTT bounds. Omitted (the DTD allows
  // it) when nothing answered.
  void WriteTimes() {
    const ProbeOptions& p = probe_;
    RttEstimator::Config cfg;
    cfg.initial = std::chrono::milliseconds(p.initial_rtt_ms);
    cfg.floor = std::chrono::milliseconds(p.min_rtt_ms);
    cfg.ceiling = std::chrono::milliseconds(std::max(p.max_rtt_ms, p.min_rtt_ms));
    cfg.fixed = std::chrono::milliseconds(p.timeout_ms);
    RttEstimator rtt(cfg);
    for (const ProbeResult& r : host_)
      if (r.rtt_us > 0) rtt.AddSample(std::chrono::microseconds(r.rtt_us));
    if (!rtt.has_samples()) return;
    out_ << "<times srtt=\"" << rtt.smoothed().count() << "\" rttvar=\"" << rtt.variance().count() << "\" to=\""
         << rtt.Timeout().count() << "\"/>\n";
  }

  void WriteRunstats(const ScanRecord& scan) {
    int64_t end_us = scan.finished_us ? scan.finished_us : scan.updated_us ? scan.updated_us : scan.created_us;
    std::string timestr = CtimeString(end_us);
    std::string elapsed = Fixed2(scan.elapsed_us / 1e6);
    std::string total = U128ToString(scan.spec.targets.addresses.size());
    // Only hosts with a stored result are listed; with -Pn semantics they are "up".
    std::string summary = "ndo done at " + timestr + "; " + total + " IP address" + (total == "1" ? "" : "es") +
                          " (" + std::to_string(hosts_up_) + " host" + (hosts_up_ == 1 ? "" : "s") +
                          " up) scanned in " + elapsed + " seconds";
    bool failed = scan.state == ScanState::kFailed;
    out_ << "<runstats><finished time=\"" << Seconds(end_us) << "\" timestr=\"" << timestr << "\" summary=\""
         << XmlAttr(summary) << "\" elapsed=\"" << elapsed << "\" exit=\"" << (failed ? "error" : "success") << "\"";
    if (failed) out_ << " errormsg=\"" << XmlAttr(scan.error) << "\"";
    out_ << "/><hosts up=\"" << hosts_up_ << "\" down=\"0\" total=\"" << total << "\"/>\n"
         << "</runstats>\n";
  }

  std::ostream& out_;
  HostnameIndex names_;
  // From the spec, copied so that Write does not depend on Begin's argument living on.
  size_t spec_ports_ = 0;
  bool store_all_ = false;
  ProbeOptions probe_;
  std::vector<ProbeResult> host_;   // the results of the host being buffered
  std::vector<std::optional<ServiceEvidence>> evidence_;  // parallel to host_
  size_t hosts_up_ = 0;
};

}  // namespace

std::unique_ptr<ResultWriter> MakeXmlWriter(std::ostream& out, WriterOptions) {
  return std::make_unique<XmlWriter>(out);
}

}  // namespace ndo
