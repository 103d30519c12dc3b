#include "cli/output_files.h"

#include <algorithm>
#include <fstream>
#include <iostream>

namespace ndo {

Status WriteOutputs(Store& store, const ScanRecord& rec, const std::vector<OutputTarget>& targets,
                    const std::vector<PortState>& states, const WriterOptions& options) {
  for (const auto& t : targets) {
    std::ofstream file;
    bool to_stdout = t.path.empty() || t.path == "-";
    if (!to_stdout) {
      file.open(t.path, std::ios::out | std::ios::trunc);
      if (!file) return Status::IoError("cannot write '" + t.path + "'");
    }
    std::ostream& os = to_stdout ? std::cout : file;
    auto writer = MakeResultWriter(t.format, os, options);
    if (!writer) return Status::InvalidArgument("unknown output format '" + t.format + "'");
    writer->Begin(rec);
    Status evidence_error;
    Status s = store.ForEachResult(rec.id, [&](const ProbeResult& r) {
      if (!states.empty() && std::find(states.begin(), states.end(), r.state) == states.end()) return true;
      if (r.state != PortState::kOpen) {
        writer->Write(r, nullptr);
        return true;
      }
      // Only open ports have evidence; a point lookup each keeps memory flat.
      auto ev = store.GetEvidence(rec.id, r.address, r.port);
      if (!ev.ok() && ev.status().code() != Status::Code::kNotFound) {
        evidence_error = ev.status();
        return false;
      }
      writer->Write(r, ev.ok() ? &*ev : nullptr);
      return true;
    });
    if (s.ok()) s = evidence_error;
    if (!s.ok()) return s;
    writer->End(rec);
    os.flush();
    if (!os) return Status::IoError("error writing " + (to_stdout ? std::string("standard output") : "'" + t.path + "'"));
  }
  return Status::Ok();
}

Result<std::vector<PortState>> ParseStateList(const std::string& list) {
  std::vector<PortState> out;
  size_t i = 0;
  while (i <= list.size()) {
    size_t j = list.find(',', i);
    if (j == std::string::npos) j = list.size();
    std::string name = list.substr(i, j - i);
    if (name == "all") return std::vector<PortState>{};
    auto s = ParsePortState(name);
    if (!s) return Status::InvalidArgument("unknown port state '" + name + "' (open, closed, filtered, unreachable, all)");
    out.push_back(*s);
    i = j + 1;
  }
  return out;
}

}  // namespace ndo
