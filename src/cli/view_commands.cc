#include "cli/view_commands.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <utility>

#include "cli/command_table.h"
#include "cli/exit_codes.h"
#include "cli/output/result_writer.h"
#include "cli/pool_source.h"
#include "cli/pool_views.h"
#include "cli/reports.h"
#include "cli/store_access.h"

namespace ndo {
namespace {

// The --format values: results in any result format; the tables of
// compare, diff and report as table, json (JSON Lines) or csv.
const std::vector<std::string> kViewFormats = {"table", "json", "csv", "xml"};
const std::vector<std::string> kTableFormats = {"table", "json", "csv"};

// The scan the command names, from a freshly opened store.
struct Opened {
  std::unique_ptr<Store> store;
  mesh::ScanState scan;
};
Result<Opened> OpenScan(const ViewCommand& cmd) {
  if (cmd.scan_id.empty()) return Status::InvalidArgument("give the id of a distributed scan (see 'ndo view list')");
  auto store = OpenStoreToRead(cmd.data_dir);
  if (!store.ok()) return store.status();
  auto scan = mesh::FindScanState(**store, cmd.scan_id);
  if (!scan.ok()) return scan.status();
  return Opened{std::move(*store), std::move(*scan)};
}

// Pools with probes refused by policy say so on standard error (the
// outputs themselves stay what their formats define): a port never probed
// must not be read as closed. All pools when `vantages` is empty.
void NoteRefusals(const Opened& opened, const std::vector<std::string>& vantages = {}) {
  auto policies = ScanPolicies(*opened.store, opened.scan);
  const auto& all = opened.scan.definition.vantages;
  for (size_t i = 0; i < all.size() && i < policies.size(); ++i) {
    if (!vantages.empty() && std::find(vantages.begin(), vantages.end(), all[i]) == vantages.end()) continue;
    std::string note = RefusalNote(all[i], policies[i]);
    if (!note.empty()) std::fprintf(stderr, "ndo: %s\n", TerminalText(note, 4096).c_str());
  }
}

// --output FILE, else `out`.
class Output {
 public:
  Output(const std::string& path, std::ostream& out) : path_(path), to_out_(path.empty() || path == "-"), out_(out) {
    if (!to_out_) file_.open(path, std::ios::out | std::ios::trunc);
  }
  Status Check() const {
    if (!to_out_ && !file_.is_open()) return Status::IoError("cannot write '" + path_ + "'");
    return Status::Ok();
  }
  std::ostream& stream() { return to_out_ ? out_ : file_; }
  Status Done() {
    stream().flush();
    if (!stream()) return Status::IoError("error writing " + (to_out_ ? std::string("the output") : "'" + path_ + "'"));
    return Status::Ok();
  }

 private:
  std::string path_;
  bool to_out_;
  std::ostream& out_;
  std::ofstream file_;
};

}  // namespace

Status RunViewResults(const ViewCommand& cmd, std::ostream& out) {
  if (Status s = CheckFormat(cmd.format, kViewFormats); !s.ok()) return s;
  auto filter = ParseViewFilter(cmd.ports, cmd.service, cmd.hosts, cmd.all_states);
  if (!filter.ok()) return filter.status();
  auto opened = OpenScan(cmd);
  if (!opened.ok()) return opened.status();
  if (cmd.vantage.empty()) {
    std::string known;
    for (const auto& v : opened->scan.definition.vantages) known += (known.empty() ? "" : ", ") + v;
    return Status::InvalidArgument("give --vantage: one of " + known);
  }
  auto vantage = FindVantage(opened->scan, cmd.vantage);
  if (!vantage.ok()) return vantage.status();
  auto rec = PoolRecord(*opened->store, opened->scan, *vantage);
  if (!rec.ok()) return rec.status();
  NoteRefusals(*opened, {cmd.vantage});

  // The writers summarise what they were not shown from the spec (Nmap's
  // "Not shown", extraports): with a port filter the spec's ports are those
  // asked for, and once states or services are filtered out the other ports'
  // fate is not summarised as if it were known.
  ScanRecord shown = *rec;
  if (!filter->ports.empty()) {
    std::vector<uint16_t> both;
    std::set_intersection(shown.spec.ports.begin(), shown.spec.ports.end(), filter->ports.begin(),
                          filter->ports.end(), std::back_inserter(both));
    shown.spec.ports = both;
  }
  shown.spec.store_all = rec->spec.store_all && filter->all_states && filter->service.empty();

  Output output(cmd.output_path, out);
  if (Status s = output.Check(); !s.ok()) return s;
  WriterOptions wo;
  wo.table_show_all = filter->all_states;
  auto writer = MakeResultWriter(cmd.format, output.stream(), wo);  // json: JSON Lines
  writer->Begin(shown);
  Status s = ForEachPoolResult(*opened->store, rec->id, [&](const ProbeResult& r, const ServiceEvidence* ev) {
    if (Matches(*filter, r, ev)) writer->Write(r, ev);
    return true;
  });
  if (!s.ok()) return s;
  writer->End(shown);
  return output.Done();
}

Status RunViewCompare(const ViewCommand& cmd, std::ostream& out) {
  if (Status s = CheckFormat(cmd.format, kTableFormats); !s.ok()) return s;
  auto opened = OpenScan(cmd);
  if (!opened.ok()) return opened.status();
  std::vector<VantageResults> pools;
  for (const auto& v : opened->scan.definition.vantages) {
    auto results = LoadPool(*opened->store, mesh::PoolId(opened->scan.id, v),
                            [](const ProbeResult& r) { return r.state == PortState::kOpen; });
    if (!results.ok()) return results.status();
    pools.push_back({v, std::move(*results)});
  }
  NoteRefusals(*opened);
  Output output(cmd.output_path, out);
  if (Status s = output.Check(); !s.ok()) return s;
  if (Status s = PrintReport(CompareTable(pools), cmd.format, output.stream()); !s.ok()) return s;
  return output.Done();
}

Status RunViewDiff(const ViewCommand& cmd, std::ostream& out) {
  if (Status s = CheckFormat(cmd.format, kTableFormats); !s.ok()) return s;
  if (cmd.seen_by == cmd.not_by)
    return Status::InvalidArgument("--seen-by and --not-by name the same vantage '" + cmd.seen_by + "'");
  auto opened = OpenScan(cmd);
  if (!opened.ok()) return opened.status();
  auto a = FindVantage(opened->scan, cmd.seen_by);
  if (!a.ok()) return a.status();
  auto b = FindVantage(opened->scan, cmd.not_by);
  if (!b.ok()) return b.status();
  Store& store = *opened->store;
  auto seen = LoadPool(store, mesh::PoolId(opened->scan.id, cmd.seen_by),
                       [](const ProbeResult& r) { return r.state == PortState::kOpen; });
  if (!seen.ok()) return seen.status();
  // Of B only what A has open matters: B may hold every state of every port.
  std::set<std::pair<IpAddress, uint16_t>> wanted;
  for (const auto& pr : *seen) wanted.insert({pr.result.address, pr.result.port});
  auto other = LoadPool(store, mesh::PoolId(opened->scan.id, cmd.not_by),
                        [&](const ProbeResult& r) { return wanted.count({r.address, r.port}) > 0; });
  if (!other.ok()) return other.status();
  NoteRefusals(*opened, {cmd.seen_by, cmd.not_by});
  Output output(cmd.output_path, out);
  if (Status s = output.Check(); !s.ok()) return s;
  if (Status s = PrintDiff(DiffPools(*seen, *other), cmd.seen_by, cmd.not_by, cmd.format, output.stream()); !s.ok())
    return s;
  return output.Done();
}

Status RunViewList(const ViewCommand& cmd, int64_t now_ms, std::ostream& stdout_stream) {
  if (Status s = CheckFormat(cmd.format, {"table", "json"}); !s.ok()) return s;
  auto store = OpenStoreToRead(cmd.data_dir);
  if (!store.ok()) return store.status();
  auto scans = mesh::ListScanStates(**store);
  if (!scans.ok()) return scans.status();
  Output output(cmd.output_path, stdout_stream);  // -o FILE, given to `view` or `view list`
  if (Status s = output.Check(); !s.ok()) return s;
  std::ostream& out = output.stream();
  if (cmd.format == "json") {
    // JSON Lines: one object per distributed scan, its pools in "pools".
    for (const auto& scan : *scans) {
      std::vector<std::string> pools;
      const auto& vantages = scan.definition.vantages;
      auto policies = ScanPolicies(**store, scan);
      for (size_t i = 0; i < vantages.size() && i < scan.pools.size(); ++i) {
        JsonObject pool = PoolCountsJson(vantages[i], mesh::CountPool(scan.pools[i], now_ms, policies[i].refused.shards));
        pools.push_back(AddPolicyJson(pool, policies[i]).str());
      }
      out << MeshScanJson(scan, policies).Raw("pools", JsonArray(pools)).str() << '\n';
    }
    return output.Done();
  }
  std::vector<std::vector<std::string>> rows = {
      {"SCAN", "CREATED (UTC)", "CONTROL", "VANTAGE", "DONE", "LEASED", "PENDING", "REFUSED", "RESULTS"}};
  for (const auto& scan : *scans) {
    const auto& vantages = scan.definition.vantages;
    auto policies = ScanPolicies(**store, scan);
    for (size_t i = 0; i < vantages.size() && i < scan.pools.size(); ++i) {
      mesh::PoolCounts c = mesh::CountPool(scan.pools[i], now_ms, policies[i].refused.shards);
      bool first = i == 0;
      rows.push_back({first ? ScanIdToHex(scan.id) : "",
                      first ? FormatTimestamp(scan.definition.created_ms * 1000).substr(0, 19) : "",
                      first ? std::string(mesh::ScanControlName(scan.control.value)) : "",
                      TerminalText(vantages[i], 32), std::to_string(c.done), std::to_string(c.leased),
                      std::to_string(c.pending), std::to_string(c.refused), std::to_string(c.results)});
    }
  }
  out << AlignColumns(rows, {false, false, false, false, true, true, true, true, true});
  return output.Done();
}

Status RunViewReport(const ViewCommand& cmd, std::ostream& out) {
  if (Status s = CheckFormat(cmd.format, kTableFormats); !s.ok()) return s;
  std::vector<IssuerGroup> groups;
  for (const auto& g : cmd.groups) {
    auto parsed = ParseIssuerGroup(g);
    if (!parsed.ok()) return parsed.status();
    groups.push_back(*parsed);
  }
  auto opened = OpenScan(cmd);
  if (!opened.ok()) return opened.status();
  NoteRefusals(*opened);
  Output output(cmd.output_path, out);
  if (Status s = output.Check(); !s.ok()) return s;
  const mesh::ScanState& scan = opened->scan;
  const auto& columns = scan.definition.vantages;
  ServiceCounts services(columns);
  IssuerCounts issuers(columns, groups);
  ExpiryCounts expired(columns, scan.definition.created_ms / 1000);  // expired when the scan began
  for (size_t i = 0; i < columns.size(); ++i) {
    ScanId pool = mesh::PoolId(scan.id, columns[i]);
    if (Status s = CountServices(*opened->store, pool, i, services); !s.ok()) return s;
    Status s = ForEachLeaf(*opened->store, pool, [&](const CertificateInfo& leaf) {
      issuers.Add(i, leaf);
      expired.Add(i, leaf);
    });
    if (!s.ok()) return s;
  }
  std::vector<std::pair<std::string, ReportTable>> tables = {
      {"Open ports by port and service", services.Table(false)},
      {"Leaf certificates by issuer", issuers.Table()},
      {"Expired leaf certificates by year of expiry", expired.Table()}};
  tables[0].second.name = "services";
  tables[1].second.name = "tls issuers";
  tables[2].second.name = "tls expired";
  for (size_t i = 0; i < tables.size(); ++i) {
    // Tables and CSV sections one after the other, a blank line apart; JSON
    // Lines tell their table by "report".
    if (cmd.format != "json" && i) output.stream() << '\n';
    if (cmd.format == "table") output.stream() << tables[i].first << ":\n";
    if (Status s = PrintReport(tables[i].second, cmd.format, output.stream()); !s.ok()) return s;
  }
  return output.Done();
}

namespace {

// The flags compare once had instead of --format: refused with an error
// that says --format (hidden from the help).
void AddRetiredFormatFlag(CLI::App& cmd, const std::string& flag, const std::string& format) {
  cmd.add_flag_callback(flag, [flag, format] {
    throw CLI::ValidationError(flag, "was replaced by --format " + format);
  })->group("");
}

CommandRun SetupView(CLI::App& view) {
  struct State {
    ViewCommand cmd;
  };
  auto st = std::make_shared<State>();
  ViewCommand& cmd = st->cmd;
  constexpr const char* kScanHelp = "Distributed scan id (or a unique prefix of it)";
  view.require_subcommand(0, 1);
  view.add_option("scan", cmd.scan_id, kScanHelp);
  view.add_option("--vantage", cmd.vantage, "The vantage point whose merged results to show");
  view.add_option("--port", cmd.ports, "Only these ports (22, 80,443, 8000-8100); repeatable")
      ->allow_extra_args(false);
  view.add_option("--service", cmd.service, "Only ports of this service (as shown: ssh, https, ...)");
  view.add_option("--host", cmd.hosts, "Only these addresses: an address, CIDR block or range; repeatable")
      ->allow_extra_args(false);
  view.add_flag("--all", cmd.all_states, "Every stored state, not only open ports");
  AddFormatOption(view, cmd.format, kViewFormats, "json: JSON Lines, one object per result");
  AddOutputFileOption(view, cmd.output_path, /*was_format=*/true);
  AddDataDirOption(view, cmd.data_dir);

  auto* compare = view.add_subcommand("compare", "Open ports by port and service, one column per vantage");
  compare->add_option("scan", cmd.scan_id, kScanHelp)->required();
  AddFormatOption(*compare, cmd.format, kTableFormats, "json: JSON Lines, one object per row");
  AddOutputFileOption(*compare, cmd.output_path);
  AddDataDirOption(*compare, cmd.data_dir);
  AddRetiredFormatFlag(*compare, "--json", "json");
  AddRetiredFormatFlag(*compare, "--csv", "csv");

  auto* diff = view.add_subcommand("diff", "Open ports one vantage sees and another does not, host by host");
  diff->add_option("scan", cmd.scan_id, kScanHelp)->required();
  diff->add_option("--seen-by", cmd.seen_by, "The vantage that sees the ports open")->required();
  diff->add_option("--not-by", cmd.not_by, "The vantage that does not")->required();
  AddFormatOption(*diff, cmd.format, kTableFormats, "json: JSON Lines, one object per row");
  AddOutputFileOption(*diff, cmd.output_path, /*was_format=*/true);
  AddDataDirOption(*diff, cmd.data_dir);

  auto* list = view.add_subcommand("list", "The distributed scans of this data directory and their pools' progress");
  AddFormatOption(*list, cmd.format, {"table", "json"}, "json: JSON Lines, one object per scan");
  AddOutputFileOption(*list, cmd.output_path);
  AddDataDirOption(*list, cmd.data_dir);

  auto* report = view.add_subcommand("report", "Services by port, TLS issuers and expired certificates per vantage");
  report->add_option("scan", cmd.scan_id, kScanHelp)->required();
  report->add_option("--group", cmd.groups,
                     "NAME=REGEX: an issuer group, matched case-insensitively against 'CN=..., O=..., OU=...' of "
                     "the issuer; first match wins; the rest count as 'other CAs'")
      ->allow_extra_args(false);
  AddFormatOption(*report, cmd.format, kTableFormats, "json: JSON Lines, one object per row");
  AddOutputFileOption(*report, cmd.output_path, /*was_format=*/true);
  AddDataDirOption(*report, cmd.data_dir);

  return [st, compare, diff, list, report](const std::vector<std::string>&) {
    ViewCommand& cmd = st->cmd;
    Status s;
    if (compare->parsed()) {
      s = RunViewCompare(cmd, std::cout);
    } else if (diff->parsed()) {
      s = RunViewDiff(cmd, std::cout);
    } else if (list->parsed()) {
      auto now = std::chrono::system_clock::now().time_since_epoch();
      s = RunViewList(cmd, std::chrono::duration_cast<std::chrono::milliseconds>(now).count(), std::cout);
    } else if (report->parsed()) {
      s = RunViewReport(cmd, std::cout);
    } else {
      s = RunViewResults(cmd, std::cout);
    }
    if (s.ok()) return static_cast<int>(kExitOk);
    std::fprintf(stderr, "ndo: %s\n", s.message().c_str());
    return ExitCodeFor(s);
  };
}

}  // namespace

std::vector<CommandEntry> ViewCommands() {
  return {
      {"view", "Views of a distributed scan: one vantage's results, compare, diff, list, report", SetupView},
  };
}

}  // namespace ndo
