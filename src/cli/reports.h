// Reports over a stored scan, the seed's tables: open ports by port and
// service (Table 1), TLS certificates by issuer group (Table 5) and expired
// certificates by the year they expired (Table 6). One count column per
// vantage point; a local scan has the single column "local".
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "store/store.h"

namespace ndo {

struct ReportTable {
  std::string name;                        // "services", ...: only where several tables go out together
  std::vector<std::string> key_columns;    // e.g. {"PORT", "SERVICE"}
  std::vector<std::string> count_columns;  // one per vantage point
  struct Row {
    std::vector<std::string> keys;
    std::vector<uint64_t> counts;
  };
  std::vector<Row> rows;
};

struct IssuerGroup {
  std::string name;
  std::string pattern;  // ECMAScript regex, case-insensitive, searched in "CN=..., O=..., OU=..." of the issuer
};
// Parses NAME=REGEX; InvalidArgument for a missing '=' or a bad regex.
Result<IssuerGroup> ParseIssuerGroup(const std::string& spec);

// The groupings behind the reports. Each is fed one item at a time into a
// count column, so that one stored scan streams into the single column of
// `ndo report`, the pools of a distributed scan into one column per vantage
// (`ndo view`), and hand-made lists into tests.

// Open ports by (port, service label); rows in port, then label order.
class ServiceCounts {
 public:
  explicit ServiceCounts(std::vector<std::string> columns) : columns_(std::move(columns)) {}
  void Add(size_t column, uint16_t port, const std::string& service);
  // With total_row, a last row "Total" sums every column.
  ReportTable Table(bool total_row) const;

 private:
  std::vector<std::string> columns_;
  std::map<std::pair<uint16_t, std::string>, std::vector<uint64_t>> counts_;
};

// Leaf certificates by issuer group (first match wins, the rest "other CAs",
// or "all CAs" without groups), then "Total". Each certificate counts once
// per column however many ports serve it.
class IssuerCounts {
 public:
  // The groups come from ParseIssuerGroup, so their patterns compile.
  IssuerCounts(std::vector<std::string> columns, const std::vector<IssuerGroup>& groups);
  void Add(size_t column, const CertificateInfo& leaf);
  ReportTable Table() const;

 private:
  std::vector<std::string> columns_;
  std::vector<std::string> names_;
  std::vector<std::regex> patterns_;
  std::vector<std::vector<uint64_t>> counts_;  // [group][column]; the last group is the rest
  std::set<std::pair<size_t, std::array<uint8_t, 32>>> seen_;
};

// Leaf certificates whose notAfter lies before `reference` (Unix seconds:
// the scan's start), by the year they expired, every year from the first to
// the last (zeros included), then "Total". Each counts once per column.
class ExpiryCounts {
 public:
  ExpiryCounts(std::vector<std::string> columns, int64_t reference)
      : columns_(std::move(columns)), reference_(reference) {}
  void Add(size_t column, const CertificateInfo& leaf);
  ReportTable Table() const;

 private:
  std::vector<std::string> columns_;
  int64_t reference_;
  std::map<int, std::vector<uint64_t>> by_year_;
  std::set<std::pair<size_t, std::array<uint8_t, 32>>> seen_;
};

// Feeds the open ports of a stored scan (or pool) into `column`, labelled by
// their evidence.
Status CountServices(Store& store, const ScanId& scan, size_t column, ServiceCounts& counts);
// The leaf certificate of every port of a stored scan (or pool) with TLS
// evidence; a certificate served on several ports comes once per port.
Status ForEachLeaf(Store& store, const ScanId& scan, const std::function<void(const CertificateInfo&)>& visit);

// The reports of a local scan: one column, "local".
Result<ReportTable> ServicesReport(Store& store, const ScanRecord& scan);
// Leaf certificates, each counted once however many ports serve it.
Result<ReportTable> TlsIssuersReport(Store& store, const ScanRecord& scan, const std::vector<IssuerGroup>& groups);
// Leaf certificates whose notAfter lies before the scan started, by year.
Result<ReportTable> TlsExpiredReport(Store& store, const ScanRecord& scan);

// table, json (one object per row, with "report":name when the table has a
// name) or csv.
Status PrintReport(const ReportTable& table, const std::string& format, std::ostream& out);

}  // namespace ndo
