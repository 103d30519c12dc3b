#include "mesh/agent/data_dir.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "mesh/api/node.h"  // CheckDataDir

namespace ndo::mesh {

Status MakeDataDir(const std::string& dir) {
  if (Status s = CheckDataDir(dir); !s.ok()) return s;
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return Status::IoError("cannot create data dir " + dir + ": " + std::strerror(errno));
  return Status::Ok();
}

Result<std::unique_ptr<Store>> OpenDataDirStore(const std::string& dir) {
  auto store = Store::Open(dir + "/db");
  if (!store.ok() && store.status().code() == Status::Code::kUnavailable)
    return Status::Unavailable("another ndo process (an agent?) is using data dir " + dir);
  return store;
}

}  // namespace ndo::mesh
