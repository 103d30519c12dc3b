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

void ServiceCounts::Add(size_t column, uint16_t port, const std::string& service) {
  auto& row = counts_[{port, service}];
  row.resize(columns_.size(), 0);
  ++row[column];
}

ReportTable ServiceCounts::Table(bool total_row) const {
  ReportTable t{"", {"PORT", "SERVICE"}, columns_, {}};
  std::vector<uint64_t> total(columns_.size(), 0);
  for (const auto& [key, counts] : counts_) {
    t.rows.push_back({{std::to_string(key.first), key.second}, counts});
    for (size_t i = 0; i < counts.size(); ++i) total[i] += counts[i];
  }
  if (total_row) t.rows.push_back({{"Total", ""}, total});
  return t;
}

IssuerCounts::IssuerCounts(std::vector<std::string> columns, const std::vector<IssuerGroup>& groups)
    : columns_(std::move(columns)) {
  for (const auto& g : groups) {
    names_.push_back(g.name);
    patterns_.emplace_back(g.pattern, std::regex::icase);
  }
  names_.push_back(groups.empty() ? "all CAs" : "other CAs");
  counts_.assign(names_.size(), std::vector<uint64_t>(columns_.size(), 0));
}

void IssuerCounts::Add(size_t column, const CertificateInfo& leaf) {
  if (!seen_.insert({column, leaf.sha256}).second) return;
  std::string issuer = DistinguishedName(leaf.issuer_cn, leaf.issuer_o, leaf.issuer_ou);
  size_t i = 0;
  while (i < patterns_.size() && !std::regex_search(issuer, patterns_[i])) ++i;
  ++counts_[i][column];
}

ReportTable IssuerCounts::Table() const {
  ReportTable t{"", {"ISSUER"}, columns_, {}};
  std::vector<uint64_t> total(columns_.size(), 0);
  for (size_t g = 0; g < names_.size(); ++g) {
    t.rows.push_back({{names_[g]}, counts_[g]});
    for (size_t i = 0; i < columns_.size(); ++i) total[i] += counts_[g][i];
  }
  t.rows.push_back({{"Total"}, total});
  return t;
}

void ExpiryCounts::Add(size_t column, const CertificateInfo& leaf) {
  if (leaf.not_after >= reference_ || !seen_.insert({column, leaf.sha256}).second) return;
  auto& row = by_year_[YearOf(leaf.not_after)];
  row.resize(columns_.size(), 0);
  ++row[column];
}

ReportTable ExpiryCounts::Table() const {
  ReportTable t{"", {"YEAR"}, columns_, {}};
  std::vector<uint64_t> total(columns_.size(), 0);
  if (!by_year_.empty()) {
    // Every year from the first to the last, zeros included, as in the seed's table.
    for (int y = by_year_.begin()->first; y <= by_year_.rbegin()->first; ++y) {
      auto it = by_year_.find(y);
      std::vector<uint64_t> counts = it == by_year_.end() ? std::vector<uint64_t>(columns_.size(), 0) : it->second;
      for (size_t i = 0; i < counts.size(); ++i) total[i] += counts[i];
      t.rows.push_back({{std::to_string(y)}, std::move(counts)});
    }
  }
  t.rows.push_back({{"Total"}, total});
  return t;
}

Status CountServices(Store& store, const ScanId& scan, size_t column, ServiceCounts& counts) {
  Status lookup;
  Status s = store.ForEachResult(scan, [&](const ProbeResult& r) {
    if (r.state != PortState::kOpen) return true;
    auto ev = store.GetEvidence(scan, r.address, r.port);
    if (!ev.ok() && ev.status().code() != Status::Code::kNotFound) {
      lookup = ev.status();
      return false;
    }
    counts.Add(column, r.port, ServiceLabel(r.port, ev.ok() ? &*ev : nullptr));
    return true;
  });
  return s.ok() ? lookup : s;
}

Status ForEachLeaf(Store& store, const ScanId& scan, const std::function<void(const CertificateInfo&)>& visit) {
  return store.ForEachEvidence(scan, [&](const ServiceEvidence& ev) {
    if (ev.tls && !ev.tls->chain.empty()) visit(ev.tls->chain.front());
    return true;
  });
}

Result<ReportTable> ServicesReport(Store& store, const ScanRecord& scan) {
  ServiceCounts counts(kLocalColumn);
  if (Status s = CountServices(store, scan.id, 0, counts); !s.ok()) return s;
  return counts.Table(false);
}

Result<ReportTable> TlsIssuersReport(Store& store, const ScanRecord& scan, const std::vector<IssuerGroup>& groups) {
  IssuerCounts counts(kLocalColumn, groups);
  Status s = ForEachLeaf(store, scan.id, [&](const CertificateInfo& c) { counts.Add(0, c); });
  if (!s.ok()) return s;
  return counts.Table();
}

Result<ReportTable> TlsExpiredReport(Store& store, const ScanRecord& scan) {
  ExpiryCounts counts(kLocalColumn, scan.created_us / 1'000'000);
  Status s = ForEachLeaf(store, scan.id, [&](const CertificateInfo& c) { counts.Add(0, c); });
  if (!s.ok()) return s;
  return counts.Table();
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
      if (!t.name.empty()) {
        line += "\"report\":";
        AppendJsonString(line, t.name);
        line += ',';
      }
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
