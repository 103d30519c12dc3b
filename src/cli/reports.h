// Reports over a stored scan, the seed's tables: open ports by port and
// service (Table 1), TLS certificates by issuer group (Table 5) and expired
// certificates by the year they expired (Table 6). One count column per
// vantage point; a local scan has the single column "local".
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "store/store.h"

namespace ndo {

struct ReportTable {
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

Result<ReportTable> ServicesReport(Store& store, const ScanRecord& scan);
// Leaf certificates, each counted once however many ports serve it.
Result<ReportTable> TlsIssuersReport(Store& store, const ScanRecord& scan, const std::vector<IssuerGroup>& groups);
// Leaf certificates whose notAfter lies before the scan started, by year.
Result<ReportTable> TlsExpiredReport(Store& store, const ScanRecord& scan);

// table, json (one object per row) or csv.
Status PrintReport(const ReportTable& table, const std::string& format, std::ostream& out);

}  // namespace ndo
