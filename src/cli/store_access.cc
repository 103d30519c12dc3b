#include "cli/store_access.h"

#include <filesystem>
#include <system_error>

namespace ndo {

std::string DataDirOrDefault(const std::string& data_dir) { return data_dir.empty() ? DefaultDataDir() : data_dir; }

Result<std::unique_ptr<Store>> OpenStoreToRead(const std::string& data_dir) {
  std::string dir = DataDirOrDefault(data_dir);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return Status::NotFound("no such data directory '" + dir + "'");
  auto store = Store::OpenReadOnly(dir + "/db");
  if (store.status().code() == Status::Code::kNotFound)
    return Status::NotFound("data directory '" + dir + "' holds no store yet");
  return store;
}

Result<std::unique_ptr<Store>> OpenStoreToWrite(const std::string& data_dir) {
  return Store::Open(DataDirOrDefault(data_dir) + "/db");
}

}  // namespace ndo
