// Writing a stored scan's results in one or more formats (stdout and files).
#pragma once

#include <string>
#include <vector>

#include "cli/output/result_writer.h"
#include "store/store.h"

namespace ndo {

struct OutputTarget {
  std::string format;  // a ResultFormats() name
  std::string path;    // "" or "-" = stdout
};

// Streams the scan's stored results once per target; results whose state is
// not in `states` (when non-empty) are skipped.
Status WriteOutputs(Store& store, const ScanRecord& rec, const std::vector<OutputTarget>& targets,
                    const std::vector<PortState>& states, const WriterOptions& options);

// Parses "open,closed" etc.
Result<std::vector<PortState>> ParseStateList(const std::string& list);

}  // namespace ndo
