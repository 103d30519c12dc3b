#include "scan/probe_result.h"

namespace ndo {

std::string_view PortStateName(PortState s) {
  switch (s) {
    case PortState::kOpen: return "open";
    case PortState::kClosed: return "closed";
    case PortState::kFiltered: return "filtered";
    case PortState::kUnreachable: return "unreachable";
  }
  return "invalid";
}

std::optional<PortState> ParsePortState(std::string_view name) {
  for (PortState s : {PortState::kOpen, PortState::kClosed, PortState::kFiltered, PortState::kUnreachable})
    if (PortStateName(s) == name) return s;
  return std::nullopt;
}

int StateRank(PortState s) {
  switch (s) {
    case PortState::kOpen: return 4;
    case PortState::kClosed: return 3;
    case PortState::kUnreachable: return 2;
    case PortState::kFiltered: return 1;
  }
  return 0;
}

}  // namespace ndo
