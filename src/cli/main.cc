// ndo: network discovery orchestration. Entry point: parses the command line
// with CLI11 and hands off to the subcommands in commands.cc.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/mesh_scan_commands.h"
#include "cli/exit_codes.h"
#include "cli/mesh_commands.h"
#include "cli/output/result_writer.h"
#include "cli/view_commands.h"

namespace {

constexpr const char* kExitCodesHelp =
    "Exit codes: 0 success; 1 runtime error (store, files, network stack); 2 bad command line or input; "
    "3 targets outside --scope (nothing sent); 130 interrupted (progress saved; ndo scan --resume ID).";

// Nmap spellings that CLI11 cannot express (multi-letter short options) are
// rewritten to their long forms; Nmap's -sT, -Pn and -n are what ndo always
// does, so they are accepted and dropped.
std::vector<std::string> NmapCompatibleArgs(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-iL") out.push_back("--input-list");
    else if (a == "-oJ") out.push_back("--output-json");
    else if (a == "-oX") out.push_back("--output-xml");
    else if (a == "-oC") out.push_back("--output-csv");
    else if (a == "-p-") out.push_back("--ports=-");
    else if (a == "-sT" || a == "-Pn" || a == "-n") continue;
    else out.push_back(a);
  }
  return out;
}

void AddOutputOptions(CLI::App* cmd, ndo::OutputChoice& o) {
  std::string formats;
  for (const auto& f : ndo::ResultFormats()) formats += (formats.empty() ? "" : ", ") + f;
  cmd->add_option("--format", o.format, "Output format: " + formats)->capture_default_str();
  cmd->add_option("-o,--output", o.output_path, "Write the --format output to FILE instead of standard output");
  cmd->add_option("--output-json", o.json_path, "Also write JSON Lines to FILE (-oJ FILE)");
  cmd->add_option("--output-xml", o.xml_path, "Also write Nmap XML to FILE (-oX FILE)");
  cmd->add_option("--output-csv", o.csv_path, "Also write CSV to FILE (-oC FILE)");
  cmd->add_option("--state", o.states, "Only results in these states: open,closed,filtered,unreachable or all");
  cmd->add_flag("--show-all", o.show_all, "List closed, filtered and unreachable ports in the table too");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ndo: network discovery orchestration -- a fast, unprivileged TCP connect scanner, and a mesh of them", "ndo"};
  app.footer(kExitCodesHelp);
  app.require_subcommand(1);
  app.set_version_flag("--version", "ndo 0.1.0");
  std::string data_dir;

  ndo::ScanCommand scan;
  auto* sc = app.add_subcommand("scan", "Scan TCP ports of the given targets (or --resume a stored scan)");
  sc->footer(kExitCodesHelp);
  auto& o = scan.options;
  sc->add_option("targets", o.targets,
                 "Targets: 192.0.2.7, 192.0.2.0/24, 192.0.2.5-192.0.3.20, 192.0.2.10-20, hostnames, 2001:db8::1, "
                 "2001:db8::/112 (IPv6 blocks up to 2^16 addresses)");
  sc->add_option("--input-list", o.input_lists, "Read targets from FILE (-iL FILE; -iL - reads standard input); '#' starts a comment");
  sc->add_option("--exclude", o.excludes, "Exclude targets (same forms, comma-separated)");
  sc->add_option("--exclude-file,--excludefile", o.exclude_files, "Exclude the targets listed in FILE");
  auto* ports_opt = sc->add_option("-p,--ports", o.ports, "Ports: 22,80,8000-8100; '-' or -p- for all 65535");
  size_t top = 0;
  auto* top_opt = sc->add_option("--top-ports", top, "The N most frequently open TCP ports (Nmap's table; default 1000)")
                      ->check(CLI::Range(1, 1000));
  top_opt->excludes(ports_opt);
  sc->add_option("--scope", o.scope,
                 "Allowlist of CIDRs/ranges: a scan whose targets reach outside it refuses to start, and no probe "
                 "outside it is ever sent");
  uint64_t seed = 0;
  auto* seed_opt = sc->add_option("--seed", seed, "Seed of the probe order (default: random; stored with the scan)");
  sc->add_option("--rate,--max-rate", o.rate, "Probes per second, paced smoothly (default: unlimited)");
  sc->add_option("--concurrency,--max-parallelism", o.concurrency,
                 "Most probes in flight (default: what the descriptor limit allows, up to 32768)");
  int32_t retries = 0;
  auto* retries_opt = sc->add_option("--max-retries", retries,
                                     "Retries of a probe that timed out (default: adaptive, 1 to 6, raised when answers come only on retries)")
                          ->check(CLI::Range(0, 50));
  sc->add_option("--timeout", o.timeout_ms, "Fixed per-probe timeout in ms (default: adaptive to measured RTT)");
  sc->add_option("--initial-rtt-timeout", o.initial_rtt_ms, "Timeout before any RTT is measured, ms")->capture_default_str();
  sc->add_option("--min-rtt-timeout", o.min_rtt_ms, "Floor of the adaptive timeout, ms")->capture_default_str();
  sc->add_option("--max-rtt-timeout", o.max_rtt_ms, "Ceiling of the adaptive timeout, ms")->capture_default_str();
  uint32_t shards = 0;
  auto* shards_opt = sc->add_option("--shards", shards, "Cut the probe order into N shards (default: about 8192 probes each)");
  sc->add_flag("--store-all", o.store_all, "Store closed, filtered and unreachable results too (default: open only)");
  sc->add_flag("--banners", o.banners,
               "Grab what each open port's service says (or answers to a minimal HTTP request) and guess the service");
  sc->add_flag("--tls", o.tls,
               "TLS handshake on open TLS ports: certificate chain, version, cipher, verdict against the trust store");
  sc->add_option("--tls-ports", o.tls_ports, "Ports to try TLS on: a port list, or 'all' (default: the usual TLS ports)");
  sc->add_option("--tls-ca-file", o.tls_ca_file, "Also trust the CA certificates in this PEM file (e.g. your own CA)");
  sc->add_option("--service-timeout", o.service_timeout_ms, "Time bound of each banner or TLS follow-up, ms")
      ->capture_default_str();
  sc->add_option("--service-concurrency", o.service_concurrency, "Most banner/TLS follow-ups at once")
      ->capture_default_str();
  sc->add_option("--threads", scan.threads, "Worker threads, one io_context each (default: cores, at most 4)");
  sc->add_option("--data-dir", data_dir, "Where scans are stored (default: $NDO_DATA_DIR, else $XDG_DATA_HOME/ndo)");
  sc->add_option("--resume", scan.resume_id, "Continue an interrupted scan with its stored settings");
  sc->add_option("--vantage", scan.vantages,
                 "Distributed scan: the vantage points whose pools scan every target (comma-separated; default: "
                 "every vantage of every member the mesh knows, alive or not; a vantage with no member yet waits "
                 "for one). A scan started on a node whose agent runs goes to the mesh");
  sc->add_flag("--local", scan.local, "Scan from this machine only, even where a mesh agent runs");
  sc->add_flag("--wait", scan.wait, "Distributed scan: follow its progress until every pool is done");
  sc->add_flag("--dry-run", scan.dry_run, "Print the probe count and exit without sending anything");
  sc->add_flag("--no-progress", scan.no_progress, "No progress bar on standard error");
  sc->add_flag("-q,--quiet", scan.quiet, "Only the summary line on standard error");
  AddOutputOptions(sc, scan.output);

  auto* scans_cmd = app.add_subcommand("scans", "List stored scans");
  scans_cmd->add_option("--data-dir", data_dir, "Where scans are stored (default: $NDO_DATA_DIR, else $XDG_DATA_HOME/ndo)");

  ndo::OutputChoice results_out;
  std::string results_id;
  auto* results_cmd = app.add_subcommand("results", "Print a stored scan's results in any format");
  results_cmd->add_option("scan", results_id, "Scan id (or a unique prefix of it)")->required();
  results_cmd->add_option("--data-dir", data_dir, "Where scans are stored (default: $NDO_DATA_DIR, else $XDG_DATA_HOME/ndo)");
  AddOutputOptions(results_cmd, results_out);

  ndo::ReportCommand report;
  auto* report_cmd = app.add_subcommand("report", "Reports over a stored scan: services, tls issuers, tls expired");
  report_cmd->require_subcommand(1);
  auto add_report_options = [&](CLI::App* c) {
    c->add_option("scan", report.scan_id, "Scan id (or a unique prefix of it)")->required();
    c->add_option("--data-dir", data_dir, "Where scans are stored (default: $NDO_DATA_DIR, else $XDG_DATA_HOME/ndo)");
    c->add_option("--format", report.format, "table, json or csv")->capture_default_str();
    c->add_flag("--by-vantage", report.by_vantage, "One column per vantage point (a local scan has one: local)");
  };
  auto* services_cmd = report_cmd->add_subcommand("services", "Open ports counted by port and service");
  add_report_options(services_cmd);
  auto* tls_cmd = report_cmd->add_subcommand("tls", "TLS certificate reports");
  tls_cmd->require_subcommand(1);
  auto* issuers_cmd = tls_cmd->add_subcommand("issuers", "Leaf certificates counted by issuer group");
  add_report_options(issuers_cmd);
  issuers_cmd->add_option("--group", report.groups,
                          "NAME=REGEX: an issuer group, matched case-insensitively against 'CN=..., O=..., OU=...' of "
                          "the issuer; first match wins; the rest count as 'other CAs'");
  auto* expired_cmd = tls_cmd->add_subcommand("expired", "Expired leaf certificates counted by the year they expired");
  add_report_options(expired_cmd);

  ndo::MeshCli mesh(app);  // agent, join, members, leave
  ndo::ViewCli view(app);  // views of distributed scans: view SCAN, compare, diff, list, report

  std::vector<std::string> args = NmapCompatibleArgs(argc, argv);
  // `ndo scan status|pause|resume|stop SCAN`: the scan command's own
  // positionals are targets, so these are told apart before parsing.
  if (ndo::IsMeshScanSubcommand(args)) return ndo::RunMeshScanSubcommand(args);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 parses a reversed vector
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? ndo::kExitOk : ndo::kExitUsage;
  }

  if (sc->parsed()) {
    if (top_opt->count()) o.top_ports = top;
    if (seed_opt->count()) o.seed = seed;
    if (retries_opt->count()) o.max_retries = retries;
    if (shards_opt->count()) o.shards = shards;
    scan.data_dir = data_dir;
    scan.arguments.push_back("ndo");
    for (int i = 1; i < argc; ++i) scan.arguments.push_back(argv[i]);
    return ndo::RunScanCommand(scan);
  }
  if (scans_cmd->parsed()) return ndo::RunScansCommand(data_dir);
  if (results_cmd->parsed()) return ndo::RunResultsCommand(data_dir, results_id, results_out);
  if (report_cmd->parsed()) {
    report.kind = services_cmd->parsed()  ? ndo::ReportKind::kServices
                  : issuers_cmd->parsed() ? ndo::ReportKind::kTlsIssuers
                                          : ndo::ReportKind::kTlsExpired;
    return ndo::RunReportCommand(data_dir, report);
  }
  if (int rc = mesh.Dispatch(); rc >= 0) return rc;
  if (int rc = view.Dispatch(); rc >= 0) return rc;
  return ndo::kExitUsage;
}
