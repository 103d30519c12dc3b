// The local control socket of a running agent, DATA_DIR/control.sock: a
// Unix-domain stream socket, mode 0600 (only the agent's user may talk to
// it). A client sends one request frame and reads one response frame;
// frames are as on the mesh streams (4-byte big-endian length, then a Cap'n
// Proto message of mesh/control.capnp).
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "mesh/membership.h"
#include "mesh/messages.h"
#include "scan/status.h"

namespace ndo::mesh {

enum class ControlCommand : uint8_t { kMembers, kLeave, kStatus };

struct ControlMember {
  NodeId id;
  std::string name, vantage, address;
  MemberState state = MemberState::kAlive;
  uint64_t incarnation = 0;
  uint32_t priority = 0;
};

struct ControlResponse {
  std::string error;  // empty on success
  ControlMember self;
  std::vector<ControlMember> members;  // without self; only for kMembers
  NodeId coordinator;                  // empty: none
  uint64_t epoch = 0;
  bool joined = false;
  uint32_t local_health = 0;
  uint64_t alive_count = 0;
  bool leaving = false;
};

// A control response is at most this long (a members list of
// kMaxStateMembers records fits).
inline constexpr size_t kMaxControlBytes = kMaxStreamBytes;

std::string ControlSocketPath(const std::string& data_dir);

Result<std::string> EncodeControlRequest(ControlCommand command);
Result<ControlCommand> DecodeControlRequest(std::string_view body);
Result<std::string> EncodeControlResponse(const ControlResponse& response);
Result<ControlResponse> DecodeControlResponse(std::string_view body);

// The agent's answer to `command` from its membership (pure: no I/O).
ControlResponse DescribeMembership(const Membership& membership, ControlCommand command);

// Sends `command` to the agent of `data_dir` and waits for the answer, at
// most `timeout` in all. Unavailable, with a message an operator can act on,
// when no agent runs: "no ndo agent is running for data dir X (connect to
// X/control.sock: No such file or directory)".
Result<ControlResponse> CallControl(const std::string& data_dir, ControlCommand command,
                                    std::chrono::milliseconds timeout);

// Whether something answers connections at `socket_path` (a live agent);
// used before removing a stale socket file.
bool ControlSocketAnswers(const std::string& socket_path);

}  // namespace ndo::mesh
