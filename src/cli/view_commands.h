// `ndo view`: views of a distributed scan, read from this node's store
// without its lock (Store::OpenReadOnly), so they work while the agent runs.
//
//   ndo view SCAN --vantage V [--port P]... [--service S] [--host CIDR]... [--all] [--format table|json|csv|xml] [-o FILE]
//   ndo view compare SCAN [--format table|json|csv] [-o FILE]
//   ndo view diff SCAN --seen-by A --not-by B [--format table|json|csv] [-o FILE]
//   ndo view list [--format table|json]
//   ndo view report SCAN [--group NAME=REGEX]... [--format table|json|csv] [-o FILE]
//
// The Run functions write to `out` and return a Status; the command's entry
// (ViewCommands(), command_table.h) prints errors and maps them to exit codes.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "base/status.h"

namespace ndo {

struct ViewCommand {
  std::string data_dir;  // empty: DefaultDataDir()
  std::string scan_id;   // id or unique hex prefix
  // ndo view SCAN
  std::string vantage;
  std::vector<std::string> ports, hosts;
  std::string service;
  bool all_states = false;
  std::string output_path;  // -o/--output; empty or "-": `out`
  // Every view: table, or json (JSON Lines), csv; xml too for ndo view SCAN.
  std::string format = "table";
  // diff
  std::string seen_by, not_by;
  // report
  std::vector<std::string> groups;  // NAME=REGEX
};

Status RunViewResults(const ViewCommand& cmd, std::ostream& out);
Status RunViewCompare(const ViewCommand& cmd, std::ostream& out);
Status RunViewDiff(const ViewCommand& cmd, std::ostream& out);
Status RunViewList(const ViewCommand& cmd, int64_t now_ms, std::ostream& out);
Status RunViewReport(const ViewCommand& cmd, std::ostream& out);

}  // namespace ndo
