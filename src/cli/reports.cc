#include "cli/reports.h"

#include <algorithm>
#include <ctime>
#include <map>
#include <ostream>
#include <regex>
#include <set>

#include "cli/output/writers.h"

namespace ndo {
namespace {

const std::vector<std::string> kLocalColumn = {"local"};

int YearOf(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  tm parts{};
  gmtime_r(&t, &parts);
  return parts.tm_year + 1900;
}

// Each distinct leaf certificate of the scan, once.
Status ForEachLeaf(Store& store, const ScanRecord& scan, const std::function<void(const CertificateInfo&)>& visit) {
  std::set<std::array<uint8_t, 32>> seen;
  return store.ForEachEvidence(scan.id, [&](const ServiceEvidence& ev) {
    if (ev.tls && !ev.tls->chain.empty() && seen.insert(ev.tls->chain.front().sha256).second)
      visit(ev.tls->chain.front());
    return true;
  });
}

}  // namespace

Result<IssuerGroup> ParseIssuerGroup(const std::string& spec) {
  auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    return Status::InvalidArgument("--group takes NAME=REGEX, not '" + spec + "'");
  IssuerGroup g{spec.substr(0, eq), spec.substr(eq + 1)};
  try {
    std::regex check(g.pattern, std::regex::icase);
  } catch (const std::regex_error& e) {
    return Status::InvalidArgument("--group " + g.name + ": bad regular expression: " + e.what());
  }
  return g;
}

Result<ReportTable> ServicesReport(Store& store, const ScanRecord& scan) {
  std::map<std::pair<uint16_t, std::string>, uint64_t> counts;
  Status lookup;
  Status s = store.ForEachResult(scan.id, [&](const ProbeResult& r) {
    if (r.state != PortState::kOpen) return true;
    auto ev = store.GetEvidence(scan.id, r.address, r.port);
    if (!ev.ok() && ev.status().code() != Status::Code::kNotFound) {
      lookup = ev.status();
      return false;
    }
    ++counts[{r.port, ServiceLabel(r.port, ev.ok() ? &*ev : nullptr)}];
    return true;
  });
  if (!s.ok()) return s;
  if (!lookup.ok()) return lookup;
  ReportTable t{{"PORT", "SERVICE"}, kLocalColumn, {}};
  for (const auto& [key, n] : counts) t.rows.push_back({{std::to_string(key.first), key.second}, {n}});
  return t;
}

Result<ReportTable> TlsIssuersReport(Store& store, const ScanRecord& scan, const std::vector<IssuerGroup>& groups) {
  std::vector<std::regex> patterns;
  for (const auto& g : groups) patterns.emplace_back(g.pattern, std::regex::icase);
  std::vector<uint64_t> counts(groups.size() + 1, 0);  // the last is "other CAs"
  Status s = ForEachLeaf(store, scan, [&](const CertificateInfo& c) {
    std::string issuer = DistinguishedName(c.issuer_cn, c.issuer_o, c.issuer_ou);
    size_t i = 0;
    while (i < patterns.size() && !std::regex_search(issuer, patterns[i])) ++i;
    ++counts[i];
  });
  if (!s.ok()) return s;
  ReportTable t{{"ISSUER"}, kLocalColumn, {}};
  uint64_t total = 0;
  for (size_t i = 0; i <= groups.size(); ++i) {
    t.rows.push_back({{i < groups.size() ? groups[i].name : (groups.empty() ? "all CAs" : "other CAs")}, {counts[i]}});
    total += counts[i];
  }
  t.rows.push_back({{"Total"}, {total}});
  return t;
}

Result<ReportTable> TlsExpiredReport(Store& store, const ScanRecord& scan) {
  const int64_t scan_start = scan.created_us / 1'000'000;
  std::map<int, uint64_t> by_year;
  Status s = ForEachLeaf(store, scan, [&](const CertificateInfo& c) {
    if (c.not_after < scan_start) ++by_year[YearOf(c.not_after)];
  });
  if (!s.ok()) return s;
  ReportTable t{{"YEAR"}, kLocalColumn, {}};
  uint64_t total = 0;
  if (!by_year.empty()) {
    // Every year from the first to the last, zeros included, as in the seed's table.
    for (int y = by_year.begin()->first; y <= by_year.rbegin()->first; ++y) {
      uint64_t n = by_year.count(y) ? by_year[y] : 0;
      t.rows.push_back({{std::to_string(y)}, {n}});
      total += n;
    }
  }
  t.rows.push_back({{"Total"}, {total}});
  return t;
}

Status PrintReport(const ReportTable& t, const std::string& format, std::ostream& out) {
  std::vector<std::string> header = t.key_columns;
  header.insert(header.end(), t.count_columns.begin(), t.count_columns.end());
  auto cells = [&](const ReportTable::Row& r) {
    std::vector<std::string> c = r.keys;
    for (uint64_t n : r.counts) c.push_back(std::to_string(n));
    return c;
  };
  if (format == "table") {
    std::vector<size_t> width(header.size());
    for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
    for (const auto& r : t.rows) {
      auto c = cells(r);
      for (size_t i = 0; i < c.size(); ++i) width[i] = std::max(width[i], c[i].size());
    }
    auto line = [&](const std::vector<std::string>& c) {
      std::string s;
      for (size_t i = 0; i < c.size(); ++i) {
        bool number = i >= t.key_columns.size();
        std::string pad(width[i] - c[i].size(), ' ');
        s += number ? pad + c[i] : c[i] + (i + 1 < c.size() ? pad : "");
        if (i + 1 < c.size()) s += "  ";
      }
      out << s << '\n';
    };
    line(header);
    for (const auto& r : t.rows) line(cells(r));
  } else if (format == "csv") {
    auto csv_line = [&](const std::vector<std::string>& c) {
      std::string line;
      for (size_t i = 0; i < c.size(); ++i) {
        if (i) line += ',';
        AppendCsvField(line, c[i]);
      }
      out << line << '\n';
    };
    csv_line(header);
    for (const auto& r : t.rows) csv_line(cells(r));
  } else if (format == "json") {
    for (const auto& r : t.rows) {
      std::string line = "{";
      for (size_t i = 0; i < t.key_columns.size(); ++i) {
        std::string key = t.key_columns[i];
        std::transform(key.begin(), key.end(), key.begin(), ::tolower);
        if (i) line += ',';
        AppendJsonString(line, key);
        line += ':';
        AppendJsonString(line, r.keys[i]);
      }
      line += ",\"counts\":{";
      for (size_t i = 0; i < t.count_columns.size(); ++i) {
        if (i) line += ',';
        AppendJsonString(line, t.count_columns[i]);
        line += ':' + std::to_string(r.counts[i]);
      }
      out << line << "}}\n";
    }
  } else {
    return Status::InvalidArgument("reports come as table, json or csv, not '" + format + "'");
  }
  out.flush();
  return out ? Status::Ok() : Status::IoError("error writing the report");
}

}  // namespace ndo
