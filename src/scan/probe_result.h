// What one (address, port) probe found.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "scan/ip_address.h"

namespace ndo {

enum class PortState : uint8_t {
  kOpen = 1,         // the handshake completed
  kClosed = 2,       // refused: the host answered with a RST
  kFiltered = 3,     // no answer after every retry
  kUnreachable = 4,  // an ICMP host/network unreachable came back
};

std::string_view PortStateName(PortState s);
std::optional<PortState> ParsePortState(std::string_view name);

// How much a state tells: when the same probe is recorded twice (a resumed or
// re-leased shard), the more informative answer wins. open > closed >
// unreachable > filtered: an answer beats silence, and a completed handshake
// is proof that a later lost probe cannot undo.
int StateRank(PortState s);

struct ProbeResult {
  IpAddress address;
  uint16_t port = 0;
  PortState state = PortState::kFiltered;
  uint8_t attempts = 0;   // probes sent for this result (1 = no retry)
  uint32_t rtt_us = 0;    // round-trip time of the answer; 0 for filtered
  int64_t time_us = 0;    // Unix time of the answer (or the give-up), microseconds
};

// Progress of one shard: every position before next_position is finished.
struct ShardProgress {
  uint32_t shard = 0;
  uint64_t next_position = 0;
  bool done = false;
};

// What the engine hands its sink: results and the progress they complete.
// A sink stores both atomically, so a resumed scan never skips a probe whose
// result was not kept.
struct ResultBatch {
  std::vector<ProbeResult> results;
  std::vector<ShardProgress> progress;
  bool empty() const { return results.empty() && progress.empty(); }
};

}  // namespace ndo
