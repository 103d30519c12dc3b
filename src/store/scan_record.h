// A stored scan: its immutable spec plus what is known of its run.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/ids.h"  // ScanId
#include "scan/scan_spec.h"

namespace ndo {

enum class ScanState : uint8_t { kRunning = 0, kInterrupted = 1, kDone = 2, kFailed = 3 };
std::string_view ScanStateName(ScanState s);

struct ScanCounters {
  uint64_t probes_sent = 0;
  uint64_t positions_done = 0;
  uint64_t open = 0, closed = 0, filtered = 0, unreachable = 0;
};

struct ScanRecord {
  ScanId id{};
  ScanSpec spec;
  int64_t created_us = 0;
  int64_t updated_us = 0;
  int64_t finished_us = 0;
  int64_t elapsed_us = 0;  // scanning time over every run (resumes add up)
  ScanState state = ScanState::kRunning;
  std::string error;
  ScanCounters counters;
};

// The id of a new scan: the first 8 bytes of SHA-256 over the encoded spec and
// its creation time, so the same spec started twice gets two ids.
ScanId MakeScanId(const ScanSpec& spec, int64_t created_us);

// Cap'n Proto encoding of the record (records.capnp). Decode never throws:
// malformed bytes give Corruption.
std::string EncodeScanRecord(const ScanRecord& rec);
Result<ScanRecord> DecodeScanRecord(std::string_view bytes);
std::string EncodeScanSpec(const ScanSpec& spec);
// The spec alone, as EncodeScanSpec writes it (a mesh scan's definition
// carries it). Bounded for bytes from peers: traversal is limited by the
// input's size. Corruption on malformed bytes or an invalid spec.
Result<ScanSpec> DecodeScanSpec(std::string_view bytes);

// The one of `ids` (16 hex digits each) that `prefix` names: the whole id or
// a unique prefix of at least 4 hex digits. NotFound or InvalidArgument
// (ambiguous, too short) otherwise.
Result<std::string> MatchScanId(const std::vector<std::string>& ids, std::string_view prefix);

}  // namespace ndo
