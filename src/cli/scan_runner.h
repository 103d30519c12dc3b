// Runs a stored scan (new or resumed) to completion or interruption: picks the
// unfinished shards from the store, drives the engine, stores every batch,
// shows progress, and keeps the scan record current.
#pragma once

#include <cstdint>

#include "store/store.h"

namespace ndo {

struct RunSettings {
  uint32_t threads = 0;      // 0 = one per core, at most 4
  bool show_progress = false;
};

struct RunOutcome {
  Status status;             // OK also when interrupted
  bool interrupted = false;  // SIGINT/SIGTERM arrived; progress is saved
  double seconds = 0;        // wall time of this run
  uint32_t concurrency = 0;
  uint64_t file_limit = 0;
  uint64_t tls_handshakes = 0;  // follow-ups done this run
  uint64_t banners = 0;
};

// `rec` is updated (state, counters, timestamps) and stored as it goes.
RunOutcome RunScan(Store& store, ScanRecord& rec, const RunSettings& settings);

}  // namespace ndo
