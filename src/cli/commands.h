// The subcommands of ndo. Each returns a process exit code (exit_codes.h) and
// prints its own errors; none throws.
#pragma once

#include <string>
#include <vector>

#include "cli/output_files.h"
#include "cli/scan_options.h"

namespace ndo {

struct OutputChoice {
  std::string format = "table";
  std::string output_path;  // -o
  std::string json_path, xml_path, csv_path;  // -oJ -oX -oC
  std::string states;       // --state
  bool show_all = false;
  std::vector<OutputTarget> Targets() const;
};

struct ScanCommand {
  ScanOptions options;
  OutputChoice output;
  std::string data_dir;
  std::string resume_id;
  bool dry_run = false;
  bool no_progress = false;
  bool quiet = false;
  uint32_t threads = 0;
  std::vector<std::string> arguments;  // the whole command line
  // Distributed scans: with an agent running on the data dir (or --vantage)
  // the scan goes to the mesh, one pool per vantage; --local keeps it here.
  std::vector<std::string> vantages;
  bool local = false;
  bool wait = false;
};

int RunScanCommand(const ScanCommand& cmd);
int RunScansCommand(const std::string& data_dir, const std::string& format = "table");  // table or json
int RunResultsCommand(const std::string& data_dir, const std::string& scan_id, const OutputChoice& output);

enum class ReportKind { kServices, kTlsIssuers, kTlsExpired };
struct ReportCommand {
  ReportKind kind = ReportKind::kServices;
  std::string scan_id;
  std::vector<std::string> groups;  // NAME=REGEX, for tls issuers
  std::string format = "table";
  bool by_vantage = false;  // one column per vantage point (a local scan has one)
};
int RunReportCommand(const std::string& data_dir, const ReportCommand& cmd);

}  // namespace ndo
