// The logic of `ndo view`, the views of a distributed scan's pools (one pool
// per vantage point), apart from the store: result filters, the comparison
// of vantages, the difference of two pools, choosing a scan by id prefix.
// Inputs are plain result lists, so all of it is tested without a store.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "cli/reports.h"
#include "scan/interval_set.h"
#include "scan/probe_result.h"
#include "scan/service/evidence.h"

namespace ndo {

// One stored result of a pool, with its service evidence when it has any.
struct PoolResult {
  ProbeResult result;
  std::optional<ServiceEvidence> evidence;
};

// A pool's results under the name of its vantage point.
struct VantageResults {
  std::string vantage;
  std::vector<PoolResult> results;
};

// The filters of `ndo view SCAN --vantage V`. An empty list matches anything.
struct ViewFilter {
  bool all_states = false;      // else open ports only
  std::vector<uint16_t> ports;  // sorted, unique
  std::string service;          // matched without case against ServiceLabel
  IntervalSet hosts;
};

// --port values (port lists: "22", "80,443", "8000-8100"), --service, --host
// values (an address, a CIDR block of any length, or a range); InvalidArgument
// naming the bad value.
Result<ViewFilter> ParseViewFilter(const std::vector<std::string>& ports, const std::string& service,
                                   const std::vector<std::string>& hosts, bool all_states);
bool Matches(const ViewFilter& filter, const ProbeResult& result, const ServiceEvidence* evidence);

// Open ports counted by port and service, one column per vantage, then a
// "Total" row: the prototype's "int vs ext" table.
ReportTable CompareTable(const std::vector<VantageResults>& pools);

// An (address, port) open in one pool (seen by A) but not in another (B).
struct DiffEntry {
  IpAddress address;
  uint16_t port = 0;
  std::string service;             // ServiceLabel, from A's evidence
  std::string banner;              // A's banner bytes, empty without one
  std::optional<PortState> other;  // what B stored for it; nullopt when B stored nothing
};
// In (address, port) order, whatever the order of the inputs.
std::vector<DiffEntry> DiffPools(const std::vector<PoolResult>& seen_by, const std::vector<PoolResult>& not_by);
// table (host by host), json (JSON Lines, one object per entry) or csv.
Status PrintDiff(const std::vector<DiffEntry>& diff, const std::string& seen_by, const std::string& not_by,
                 const std::string& format, std::ostream& out);

// Rows of text as aligned columns, two blanks apart; columns flagged in
// `right` are right-aligned (numbers). No trailing blanks.
std::string AlignColumns(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right);

// Text from the network made fit for a terminal line: control characters and
// invalid UTF-8 as '?', at most `max` bytes ("..." marks a cut).
std::string TerminalText(std::string_view text, size_t max);

}  // namespace ndo
