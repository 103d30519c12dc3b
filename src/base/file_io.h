// Small files written and read whole, with errors as values: the cluster's
// keys and certificates, the keyring, settings. Kept apart from the pure
// foundations (status, hex, ids) because it does I/O.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/status.h"

namespace ndo {

// Writes a file readable by its owner only (0600): created under a temporary
// name with that mode from the start, synced, then renamed over `path`.
Status WritePrivateFile(const std::string& path, std::string_view bytes);
// Reads a file of at most max_bytes (NotFound if it does not exist).
Result<std::string> ReadSmallFile(const std::string& path, size_t max_bytes);

}  // namespace ndo
