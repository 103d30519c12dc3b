// A node's data directory, as the agent and the cluster's administration
// open it: created (mode 0700) after CheckDataDir (mesh/api/node.h), and its
// store opened with the error an operator can act on when an agent holds it.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "store/store.h"

namespace ndo::mesh {

// CheckDataDir, then mkdir 0700 unless it exists.
Status MakeDataDir(const std::string& data_dir);

// The store in DATA_DIR/db; Unavailable "another ndo process (an agent?) is
// using data dir ..." when another process holds it.
Result<std::unique_ptr<Store>> OpenDataDirStore(const std::string& data_dir);

}  // namespace ndo::mesh
