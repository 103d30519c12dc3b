#include "cli/commands.h"
#include "cli/mesh_scan_commands.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/command_table.h"
#include "cli/exit_codes.h"
#include "cli/output/json.h"
#include "cli/progress_display.h"
#include "cli/reports.h"
#include "cli/scan_runner.h"
#include "cli/store_access.h"
#include "scan/port_list.h"

namespace ndo {
namespace {

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}


// Exact counts from the store where it has them: open always, every state with --store-all.
Status RecountFromStore(Store& store, ScanRecord& rec) {
  ScanCounters c = rec.counters;
  c.open = 0;
  if (rec.spec.store_all) c.closed = c.filtered = c.unreachable = 0;
  Status s = store.ForEachResult(rec.id, [&](const ProbeResult& r) {
    switch (r.state) {
      case PortState::kOpen: ++c.open; break;
      case PortState::kClosed: if (rec.spec.store_all) ++c.closed; break;
      case PortState::kFiltered: if (rec.spec.store_all) ++c.filtered; break;
      case PortState::kUnreachable: if (rec.spec.store_all) ++c.unreachable; break;
    }
    return true;
  });
  if (s.ok()) rec.counters = c;
  return s;
}

std::string Describe(const ScanSpec& spec) {
  return U128ToString(spec.targets.addresses.size()) + " hosts x " + std::to_string(spec.ports.size()) +
         " ports = " + U128ToString(spec.ProbeCount()) + " probes";
}

}  // namespace

std::vector<OutputTarget> OutputChoice::Targets() const {
  std::vector<OutputTarget> t;
  t.push_back({format, output_path});
  if (!json_path.empty()) t.push_back({"json", json_path});
  if (!xml_path.empty()) t.push_back({"xml", xml_path});
  if (!csv_path.empty()) t.push_back({"csv", csv_path});
  return t;
}

int RunScanCommand(const ScanCommand& cmd) {
  auto states = ParseStateList(cmd.output.states.empty() ? "all" : cmd.output.states);
  if (!states.ok()) return Fail(states.status());
  if (!MakeResultWriter(cmd.output.format, std::cout)) {
    return Fail(Status::InvalidArgument("unknown --format '" + cmd.output.format + "'"));
  }

  ScanRecord rec;
  std::unique_ptr<Store> store;
  if (!cmd.resume_id.empty()) {
    if (!cmd.options.targets.empty() || !cmd.options.input_lists.empty())
      return Fail(Status::InvalidArgument("--resume continues a stored scan with its stored settings; give no targets"));
    auto opened = OpenStoreToWrite(cmd.data_dir);
    if (!opened.ok()) return Fail(opened.status());
    store = std::move(*opened);
    auto found = store->FindScan(cmd.resume_id);
    if (!found.ok()) return Fail(found.status());
    rec = std::move(*found);
    if (rec.state == ScanState::kDone) {
      std::fprintf(stderr, "ndo: scan %s is already complete; showing its results\n", ScanIdToHex(rec.id).c_str());
    }
  } else {
    auto spec = BuildScanSpec(cmd.options, cmd.arguments, SystemResolver());
    if (!spec.ok()) return Fail(spec.status());
    if (!cmd.local && !cmd.dry_run && (!cmd.vantages.empty() || cmd.wait || AgentRunning(cmd.data_dir))) {
      MeshScanSubmit submit;
      submit.data_dir = cmd.data_dir;
      submit.vantages = cmd.vantages;
      submit.shards_given = cmd.options.shards.has_value();
      submit.wait = cmd.wait;
      return SubmitMeshScan(submit, std::move(*spec));
    }
    if (cmd.dry_run) {
      auto perm = Permutation::Create(static_cast<uint64_t>(spec->ProbeCount()), spec->seed);
      if (!perm.ok()) return Fail(perm.status());
      std::printf("dry run: %s in %u shards (seed %llu, cycle prime %llu); nothing sent\n",
                  Describe(*spec).c_str(), spec->shard_count, static_cast<unsigned long long>(spec->seed),
                  static_cast<unsigned long long>(perm->prime()));
      return kExitOk;
    }
    auto opened = OpenStoreToWrite(cmd.data_dir);
    if (!opened.ok()) return Fail(opened.status());
    store = std::move(*opened);
    rec.spec = std::move(*spec);
    rec.created_us = NowMicros();
    rec.id = MakeScanId(rec.spec, rec.created_us);
  }
  if (cmd.dry_run) {
    std::printf("dry run: would resume %s: %s; nothing sent\n", ScanIdToHex(rec.id).c_str(), Describe(rec.spec).c_str());
    return kExitOk;
  }

  RunOutcome run;
  if (rec.state != ScanState::kDone) {
    RunSettings settings;
    settings.threads = cmd.threads;
    settings.show_progress = !cmd.no_progress && !cmd.quiet && isatty(STDERR_FILENO);
    if (!cmd.quiet)
      std::fprintf(stderr, "ndo: scan %s: %s\n", ScanIdToHex(rec.id).c_str(), Describe(rec.spec).c_str());
    run = RunScan(*store, rec, settings);
    if (Status s = RecountFromStore(*store, rec); s.ok()) store->PutScan(rec);
  }

  WriterOptions wo;
  wo.table_show_all = cmd.output.show_all;
  Status written = WriteOutputs(*store, rec, cmd.output.Targets(), *states, wo);

  const ScanCounters& c = rec.counters;
  std::string others = rec.spec.store_all || rec.state == ScanState::kDone
                           ? ", " + FormatCount(c.closed) + " closed, " + FormatCount(c.filtered) + " filtered, " +
                                 FormatCount(c.unreachable) + " unreachable"
                           : "";
  double rate = run.seconds > 0 ? static_cast<double>(c.probes_sent) / run.seconds : 0;
  std::fprintf(stderr, "ndo: scan %s %s: %s in %.2f s (%s probes/s, concurrency %u): %s open%s\n",
               ScanIdToHex(rec.id).c_str(), std::string(ScanStateName(rec.state)).c_str(), Describe(rec.spec).c_str(),
               run.seconds, FormatCount(static_cast<uint64_t>(rate)).c_str(), run.concurrency,
               FormatCount(c.open).c_str(), others.c_str());
  if (run.tls_handshakes || run.banners)
    std::fprintf(stderr, "ndo: follow-ups: %s TLS handshakes, %s banners\n", FormatCount(run.tls_handshakes).c_str(),
                 FormatCount(run.banners).c_str());
  if (!run.status.ok()) return Fail(run.status);
  if (!written.ok()) return Fail(written);
  if (run.interrupted) {
    std::fprintf(stderr, "ndo: interrupted; continue with: ndo scan --resume %s\n", ScanIdToHex(rec.id).c_str());
    return kExitInterrupted;
  }
  return kExitOk;
}

int RunScansCommand(const std::string& data_dir, const std::string& format) {
  if (Status s = CheckFormat(format, {"table", "json"}); !s.ok()) return Fail(s);
  auto store = OpenStoreToRead(data_dir);
  if (!store.ok()) return Fail(store.status());
  auto scans = (*store)->ListScans();
  if (!scans.ok()) return Fail(scans.status());
  if (format == "json") {
    // JSON Lines: one object per stored scan.
    for (const auto& r : *scans) {
      std::string line = JsonObject()
                             .Str("record", "scan")
                             .Str("id", ScanIdToHex(r.id))
                             .Str("state", ScanStateName(r.state))
                             .Str("created", FormatTimestamp(r.created_us))
                             .Raw("probes", U128ToString(r.spec.ProbeCount()))
                             .UInt("probes_sent", r.counters.probes_sent)
                             .UInt("open", r.counters.open)
                             .Num("elapsed_s", static_cast<double>(r.elapsed_us) / 1e6)
                             .Raw("command", JsonStringArray(r.spec.arguments))
                             .str();
      std::printf("%s\n", line.c_str());
    }
    return std::fflush(stdout) == 0 ? kExitOk : Fail(Status::IoError("error writing the list"));
  }
  std::printf("%-16s  %-11s  %-20s  %14s  %10s  %9s  %s\n", "ID", "STATE", "CREATED (UTC)", "PROBES", "OPEN", "ELAPSED",
              "COMMAND");
  for (const auto& r : *scans) {
    std::string created = FormatTimestamp(r.created_us).substr(0, 19);
    std::string args;
    for (const auto& a : r.spec.arguments) args += (args.empty() ? "" : " ") + a;
    std::printf("%-16s  %-11s  %-20s  %14s  %10s  %9s  %s\n", ScanIdToHex(r.id).c_str(),
                std::string(ScanStateName(r.state)).c_str(), created.c_str(),
                U128ToString(r.spec.ProbeCount()).c_str(), FormatCount(r.counters.open).c_str(),
                FormatDuration(static_cast<double>(r.elapsed_us) / 1e6).c_str(), args.c_str());
  }
  return kExitOk;
}

int RunResultsCommand(const std::string& data_dir, const std::string& scan_id, const OutputChoice& output) {
  auto states = ParseStateList(output.states.empty() ? "all" : output.states);
  if (!states.ok()) return Fail(states.status());
  auto store = OpenStoreToRead(data_dir);
  if (!store.ok()) return Fail(store.status());
  auto rec = (*store)->FindScan(scan_id);
  if (!rec.ok()) return Fail(rec.status());
  WriterOptions wo;
  wo.table_show_all = output.show_all;
  Status s = WriteOutputs(**store, *rec, output.Targets(), *states, wo);
  return s.ok() ? kExitOk : Fail(s);
}

}  // namespace ndo

namespace ndo {

int RunReportCommand(const std::string& data_dir, const ReportCommand& cmd) {
  std::vector<IssuerGroup> groups;
  for (const auto& g : cmd.groups) {
    auto parsed = ParseIssuerGroup(g);
    if (!parsed.ok()) return Fail(parsed.status());
    groups.push_back(*parsed);
  }
  if (cmd.format != "table" && cmd.format != "json" && cmd.format != "csv")
    return Fail(Status::InvalidArgument("reports come as table, json or csv, not '" + cmd.format + "'"));
  auto store = OpenStoreToRead(data_dir);
  if (!store.ok()) return Fail(store.status());
  auto rec = (*store)->FindScan(cmd.scan_id);
  if (!rec.ok()) return Fail(rec.status());
  Result<ReportTable> table = cmd.kind == ReportKind::kServices     ? ServicesReport(**store, *rec)
                              : cmd.kind == ReportKind::kTlsIssuers ? TlsIssuersReport(**store, *rec, groups)
                                                                    : TlsExpiredReport(**store, *rec);
  if (!table.ok()) return Fail(table.status());
  Status s = PrintReport(*table, cmd.format, std::cout);
  return s.ok() ? kExitOk : Fail(s);
}

}  // namespace ndo

// ---------------------------------------------------------------------------
// The command table's entries of this file.

namespace ndo {
namespace {

void AddOutputOptions(CLI::App& cmd, OutputChoice& o) {
  AddFormatOption(cmd, o.format, ResultFormats(), "json: JSON Lines, one object per result");
  AddOutputFileOption(cmd, o.output_path);
  cmd.add_option("--output-json", o.json_path, "Also write JSON Lines to FILE (-oJ FILE)");
  cmd.add_option("--output-xml", o.xml_path, "Also write Nmap XML to FILE (-oX FILE)");
  cmd.add_option("--output-csv", o.csv_path, "Also write CSV to FILE (-oC FILE)");
  cmd.add_option("--state", o.states, "Only results in these states: open,closed,filtered,unreachable or all");
  cmd.add_flag("--show-all", o.show_all, "List closed, filtered and unreachable ports in the table too");
}

CommandRun SetupScan(CLI::App& sc) {
  struct State {
    ScanCommand scan;
    size_t top = 0;
    uint64_t seed = 0;
    int32_t retries = 0;
    uint32_t shards = 0;
    CLI::Option *top_opt, *seed_opt, *retries_opt, *shards_opt;
  };
  auto st = std::make_shared<State>();
  sc.footer(kExitCodesHelp);
  auto& o = st->scan.options;
  sc.add_option("targets", o.targets,
                "Targets: 192.0.2.7, 192.0.2.0/24, 192.0.2.5-192.0.3.20, 192.0.2.10-20, hostnames, 2001:db8::1, "
                "2001:db8::/112 (IPv6 blocks up to 2^16 addresses)");
  sc.add_option("--input-list", o.input_lists, "Read targets from FILE (-iL FILE; -iL - reads standard input); '#' starts a comment");
  sc.add_option("--exclude", o.excludes, "Exclude targets (same forms, comma-separated)");
  sc.add_option("--exclude-file,--excludefile", o.exclude_files, "Exclude the targets listed in FILE");
  auto* ports_opt = sc.add_option("-p,--ports", o.ports, "Ports: 22,80,8000-8100; '-' or -p- for all 65535");
  st->top_opt = sc.add_option("--top-ports", st->top, "The N most frequently open TCP ports (Nmap's table; default 1000)")
                    ->check(CLI::Range(1, 1000));
  st->top_opt->excludes(ports_opt);
  sc.add_option("--scope", o.scope,
                "Allowlist of CIDRs/ranges: a scan whose targets reach outside it refuses to start, and no probe "
                "outside it is ever sent");
  st->seed_opt = sc.add_option("--seed", st->seed, "Seed of the probe order (default: random; stored with the scan)");
  sc.add_option("--rate,--max-rate", o.rate, "Probes per second, paced smoothly (default: unlimited)");
  sc.add_option("--concurrency,--max-parallelism", o.concurrency,
                "Most probes in flight (default: what the descriptor limit allows, up to 32768)");
  st->retries_opt = sc.add_option("--max-retries", st->retries,
                                  "Retries of a probe that timed out (default: adaptive, 1 to 6, raised when answers come only on retries)")
                        ->check(CLI::Range(0, 50));
  sc.add_option("--timeout", o.timeout_ms, "Fixed per-probe timeout in ms (default: adaptive to measured RTT)");
  sc.add_option("--initial-rtt-timeout", o.initial_rtt_ms, "Timeout before any RTT is measured, ms")->capture_default_str();
  sc.add_option("--min-rtt-timeout", o.min_rtt_ms, "Floor of the adaptive timeout, ms")->capture_default_str();
  sc.add_option("--max-rtt-timeout", o.max_rtt_ms, "Ceiling of the adaptive timeout, ms")->capture_default_str();
  st->shards_opt = sc.add_option("--shards", st->shards, "Cut the probe order into N shards (default: about 8192 probes each)");
  sc.add_flag("--store-all", o.store_all, "Store closed, filtered and unreachable results too (default: open only)");
  sc.add_flag("--banners", o.banners,
              "Grab what each open port's service says (or answers to a minimal HTTP request) and guess the service");
  sc.add_flag("--tls", o.tls,
              "TLS handshake on open TLS ports: certificate chain, version, cipher, verdict against the trust store");
  sc.add_option("--tls-ports", o.tls_ports, "Ports to try TLS on: a port list, or 'all' (default: the usual TLS ports)");
  sc.add_option("--tls-ca-file", o.tls_ca_file, "Also trust the CA certificates in this PEM file (e.g. your own CA)");
  sc.add_option("--service-timeout", o.service_timeout_ms, "Time bound of each banner or TLS follow-up, ms")
      ->capture_default_str();
  sc.add_option("--service-concurrency", o.service_concurrency, "Most banner/TLS follow-ups at once")
      ->capture_default_str();
  sc.add_option("--threads", st->scan.threads, "Worker threads, one io_context each (default: cores, at most 4)");
  AddDataDirOption(sc, st->scan.data_dir);
  sc.add_option("--resume", st->scan.resume_id, "Continue an interrupted scan with its stored settings");
  sc.add_option("--vantage", st->scan.vantages,
                "Distributed scan: the vantage points whose pools scan every target (comma-separated; default: "
                "every vantage of every member the mesh knows, alive or not; a vantage with no member yet waits "
                "for one). A scan started on a node whose agent runs goes to the mesh");
  sc.add_flag("--local", st->scan.local, "Scan from this machine only, even where a mesh agent runs");
  sc.add_flag("--wait", st->scan.wait, "Distributed scan: follow its progress until every pool is done");
  sc.add_flag("--dry-run", st->scan.dry_run, "Print the probe count and exit without sending anything");
  sc.add_flag("--no-progress", st->scan.no_progress, "No progress bar on standard error");
  sc.add_flag("-q,--quiet", st->scan.quiet, "Only the summary line on standard error");
  AddOutputOptions(sc, st->scan.output);
  // ndo scan status|pause|resume|stop SCAN (mesh_scan_commands.h).
  CommandRun steer = SetupMeshScanSubcommands(sc);

  return [st, steer, &sc](const std::vector<std::string>& command_line) {
    if (!sc.get_subcommands().empty()) return steer(command_line);
    ScanCommand& scan = st->scan;
    if (st->top_opt->count()) scan.options.top_ports = st->top;
    if (st->seed_opt->count()) scan.options.seed = st->seed;
    if (st->retries_opt->count()) scan.options.max_retries = st->retries;
    if (st->shards_opt->count()) scan.options.shards = st->shards;
    scan.arguments = command_line;
    return RunScanCommand(scan);
  };
}

CommandRun SetupScans(CLI::App& cmd) {
  struct State {
    std::string data_dir, format = "table";
  };
  auto st = std::make_shared<State>();
  AddDataDirOption(cmd, st->data_dir);
  AddFormatOption(cmd, st->format, {"table", "json"}, "json: JSON Lines, one object per scan");
  return [st](const std::vector<std::string>&) { return RunScansCommand(st->data_dir, st->format); };
}

CommandRun SetupResults(CLI::App& cmd) {
  struct State {
    std::string data_dir, scan_id;
    OutputChoice output;
  };
  auto st = std::make_shared<State>();
  cmd.add_option("scan", st->scan_id, "Scan id (or a unique prefix of it)")->required();
  AddDataDirOption(cmd, st->data_dir);
  AddOutputOptions(cmd, st->output);
  return [st](const std::vector<std::string>&) { return RunResultsCommand(st->data_dir, st->scan_id, st->output); };
}

CommandRun SetupReport(CLI::App& cmd) {
  struct State {
    std::string data_dir;
    ReportCommand report;
  };
  auto st = std::make_shared<State>();
  cmd.require_subcommand(1);
  auto add_report_options = [st](CLI::App* c) {
    c->add_option("scan", st->report.scan_id, "Scan id (or a unique prefix of it)")->required();
    AddDataDirOption(*c, st->data_dir);
    AddFormatOption(*c, st->report.format, {"table", "json", "csv"}, "json: JSON Lines, one object per row");
    c->add_flag("--by-vantage", st->report.by_vantage, "One column per vantage point (a local scan has one: local)");
  };
  auto* services = cmd.add_subcommand("services", "Open ports counted by port and service");
  add_report_options(services);
  auto* tls = cmd.add_subcommand("tls", "TLS certificate reports");
  tls->require_subcommand(1);
  auto* issuers = tls->add_subcommand("issuers", "Leaf certificates counted by issuer group");
  add_report_options(issuers);
  issuers->add_option("--group", st->report.groups,
                      "NAME=REGEX: an issuer group, matched case-insensitively against 'CN=..., O=..., OU=...' of "
                      "the issuer; first match wins; the rest count as 'other CAs'");
  auto* expired = tls->add_subcommand("expired", "Expired leaf certificates counted by the year they expired");
  add_report_options(expired);
  return [st, services, issuers](const std::vector<std::string>&) {
    st->report.kind = services->parsed() ? ReportKind::kServices
                      : issuers->parsed() ? ReportKind::kTlsIssuers
                                          : ReportKind::kTlsExpired;
    return RunReportCommand(st->data_dir, st->report);
  };
}

}  // namespace

std::vector<CommandEntry> ScanCommands() {
  return {
      {"scan", "Scan TCP ports of the given targets (or --resume a stored scan); "
               "scan status|pause|resume|stop SCAN follow and steer a distributed scan", SetupScan},
      {"scans", "List stored scans", SetupScans},
      {"results", "Print a stored scan's results in any format", SetupResults},
      {"report", "Reports over a stored scan: services, tls issuers, tls expired", SetupReport},
  };
}

}  // namespace ndo
