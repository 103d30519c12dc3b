#include "cli/commands.h"
#include "cli/mesh_scan_commands.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/exit_codes.h"
#include "cli/progress_display.h"
#include "cli/reports.h"
#include "cli/scan_runner.h"
#include "scan/port_list.h"

namespace ndo {
namespace {

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string StoreDir(const std::string& data_dir) { return (data_dir.empty() ? DefaultDataDir() : data_dir) + "/db"; }

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
    auto opened = Store::Open(StoreDir(cmd.data_dir));
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
    auto opened = Store::Open(StoreDir(cmd.data_dir));
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

int RunScansCommand(const std::string& data_dir) {
  auto store = Store::Open(StoreDir(data_dir));
  if (!store.ok()) return Fail(store.status());
  auto scans = (*store)->ListScans();
  if (!scans.ok()) return Fail(scans.status());
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
  auto store = Store::Open(StoreDir(data_dir));
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
  auto store = Store::Open(StoreDir(data_dir));
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
