#include "cli/pool_views.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <sstream>
#include <utility>

#include "cli/output/result_writer.h"
#include "cli/output/writers.h"
#include "scan/port_list.h"
#include "scan/service/banner_session.h"
#include "scan/target_parser.h"

namespace ndo {
namespace {

bool EqualNoCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

// ADDRESS/LEN with any prefix length: the target parser caps IPv6 blocks at
// 2^16 addresses because it enumerates them; a filter only compares.
Result<AddressRange> ParsePrefix(const std::string& text, size_t slash) {
  auto base = IpAddress::Parse(std::string_view(text).substr(0, slash));
  std::string len = text.substr(slash + 1);
  unsigned max_bits = base.ok() && base->is_v4() ? 32 : 128;
  if (!base.ok() || len.empty() || len.size() > 3 || !std::all_of(len.begin(), len.end(), ::isdigit) ||
      std::stoul(len) > max_bits)
    return Status::InvalidArgument("--host '" + text + "' is not an address, CIDR block or range");
  unsigned host_bits = max_bits - static_cast<unsigned>(std::stoul(len));
  u128 mask = host_bits == 0 ? 0 : host_bits == 128 ? ~static_cast<u128>(0) : (static_cast<u128>(1) << host_bits) - 1;
  u128 first = base->value() & ~mask;
  return AddressRange{first, first | mask};
}

std::string FirstLine(std::string_view bytes) { return std::string(bytes.substr(0, bytes.find_first_of("\r\n"))); }

}  // namespace

Result<ViewFilter> ParseViewFilter(const std::vector<std::string>& ports, const std::string& service,
                                   const std::vector<std::string>& hosts, bool all_states) {
  ViewFilter f;
  f.all_states = all_states;
  f.service = service;
  for (const auto& p : ports) {
    auto list = ParsePortList(p);
    if (!list.ok()) return list.status().WithContext("--port");
    MergePorts(f.ports, *list);
  }
  for (const auto& value : hosts) {
    std::stringstream tokens(value);
    std::string h;
    while (std::getline(tokens, h, ',')) {
      if (size_t slash = h.find('/'); slash != std::string::npos) {
        auto range = ParsePrefix(h, slash);
        if (!range.ok()) return range.status();
        f.hosts.Add(*range);
        continue;
      }
      auto set = ParseAddressList(h);  // an address or a range; hostnames are refused
      if (!set.ok()) return set.status().WithContext("--host");
      if (set->empty()) return Status::InvalidArgument("--host: empty value in '" + value + "'");
      f.hosts.Add(*set);
    }
  }
  return f;
}

bool Matches(const ViewFilter& f, const ProbeResult& r, const ServiceEvidence* ev) {
  if (!f.all_states && r.state != PortState::kOpen) return false;
  if (!f.ports.empty() && !std::binary_search(f.ports.begin(), f.ports.end(), r.port)) return false;
  if (!f.hosts.empty() && !f.hosts.Contains(r.address.value())) return false;
  if (!f.service.empty() && !EqualNoCase(ServiceLabel(r.port, ev), f.service)) return false;
  return true;
}

ReportTable CompareTable(const std::vector<VantageResults>& pools) {
  std::vector<std::string> columns;
  for (const auto& p : pools) columns.push_back(p.vantage);
  ServiceCounts counts(columns);
  for (size_t i = 0; i < pools.size(); ++i)
    for (const auto& pr : pools[i].results)
      if (pr.result.state == PortState::kOpen)
        counts.Add(i, pr.result.port, ServiceLabel(pr.result.port, pr.evidence ? &*pr.evidence : nullptr));
  return counts.Table(true);
}

std::vector<DiffEntry> DiffPools(const std::vector<PoolResult>& seen_by, const std::vector<PoolResult>& not_by) {
  std::map<std::pair<IpAddress, uint16_t>, PortState> other;
  for (const auto& pr : not_by) {
    // A result stored twice (it never is, but lists are hand-made too) keeps its more informative state.
    auto [it, added] = other.emplace(std::make_pair(pr.result.address, pr.result.port), pr.result.state);
    if (!added && StateRank(pr.result.state) > StateRank(it->second)) it->second = pr.result.state;
  }
  std::vector<DiffEntry> out;
  for (const auto& pr : seen_by) {
    const ProbeResult& r = pr.result;
    if (r.state != PortState::kOpen) continue;
    auto it = other.find({r.address, r.port});
    if (it != other.end() && it->second == PortState::kOpen) continue;
    DiffEntry e;
    e.address = r.address;
    e.port = r.port;
    e.service = ServiceLabel(r.port, pr.evidence ? &*pr.evidence : nullptr);
    if (pr.evidence && pr.evidence->banner) e.banner = pr.evidence->banner->bytes;
    if (it != other.end()) e.other = it->second;
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](const DiffEntry& a, const DiffEntry& b) {
    return std::tie(a.address, a.port) < std::tie(b.address, b.port);
  });
  auto same = [](const DiffEntry& a, const DiffEntry& b) { return a.address == b.address && a.port == b.port; };
  out.erase(std::unique(out.begin(), out.end(), same), out.end());  // a result listed twice in A
  return out;
}

Status PrintDiff(const std::vector<DiffEntry>& diff, const std::string& seen_by, const std::string& not_by,
                 const std::string& format, std::ostream& out) {
  auto other_state = [](const DiffEntry& e) {
    return e.other ? std::string(PortStateName(*e.other)) : std::string("-");
  };
  if (format == "table") {
    // Host by host: the address only on a host's first line.
    std::vector<std::vector<std::string>> rows = {
        {"HOST", "PORT", "SERVICE", "IN " + TerminalText(not_by, 32), "BANNER"}};
    for (size_t i = 0; i < diff.size(); ++i) {
      const DiffEntry& e = diff[i];
      bool first = i == 0 || diff[i - 1].address != e.address;
      rows.push_back({first ? e.address.ToString() : "", std::to_string(e.port), TerminalText(e.service, 32),
                      other_state(e), TerminalText(EscapeBytes(FirstLine(e.banner)), 60)});
    }
    out << AlignColumns(rows, {false, true, false, false, false});
  } else if (format == "json") {  // JSON Lines, one object per entry
    for (const DiffEntry& e : diff) {
      std::string line = "{\"address\":";
      AppendJsonString(line, e.address.ToString());
      line += ",\"port\":" + std::to_string(e.port) + ",\"service\":";
      AppendJsonString(line, e.service);
      line += ",\"seen_by\":";
      AppendJsonString(line, seen_by);
      line += ",\"not_by\":";
      AppendJsonString(line, not_by);
      line += ",\"not_by_state\":";
      if (e.other) AppendJsonString(line, PortStateName(*e.other));
      else line += "null";
      if (!e.banner.empty()) {
        line += ",\"banner\":";
        AppendJsonString(line, EscapeBytes(e.banner));  // as the JSON writer: lossless, one line
      }
      out << line << "}\n";
    }
  } else if (format == "csv") {
    out << "address,port,service,seen_by,not_by,not_by_state,banner\n";
    for (const DiffEntry& e : diff) {
      std::vector<std::string> fields = {e.address.ToString(), std::to_string(e.port), e.service, seen_by, not_by,
                                         e.other ? std::string(PortStateName(*e.other)) : "", EscapeBytes(e.banner)};
      std::string line;
      for (size_t i = 0; i < fields.size(); ++i) {
        if (i) line += ',';
        AppendCsvField(line, fields[i]);
      }
      out << line << '\n';
    }
  } else {
    return Status::InvalidArgument("a diff comes as table, json or csv, not '" + format + "'");
  }
  out.flush();
  return out ? Status::Ok() : Status::IoError("error writing the diff");
}

std::string AlignColumns(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      std::string pad(width[c] - row[c].size(), ' ');
      bool r = c < right.size() && right[c];
      line += r ? pad + row[c] : row[c] + pad;
      if (c + 1 < row.size()) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + '\n';
  }
  return out;
}

std::string TerminalText(std::string_view text, size_t max) {
  std::string valid = ValidUtf8(text);
  bool cut = valid.size() > max;
  if (cut) {
    size_t end = max;
    while (end > 0 && (static_cast<unsigned char>(valid[end]) & 0xc0) == 0x80) --end;  // not inside a character
    valid.resize(end);
  }
  for (char& c : valid)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return cut ? valid + "..." : valid;
}

}  // namespace ndo
