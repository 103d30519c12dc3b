// How the commands open a data dir's store. Readers (scans, results,
// report, view) never create anything and never lock: an agent may hold the
// database meanwhile (Store::OpenReadOnly); a data dir that does not exist
// is an error, not a new empty store. Only a local scan opens it to write,
// creating it on first use.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "store/store.h"

namespace ndo {

// `data_dir`, or DefaultDataDir() when empty.
std::string DataDirOrDefault(const std::string& data_dir);
Result<std::unique_ptr<Store>> OpenStoreToRead(const std::string& data_dir);
Result<std::unique_ptr<Store>> OpenStoreToWrite(const std::string& data_dir);

}  // namespace ndo
