// The local control socket of a running agent, DATA_DIR/control.sock: a
// Unix-domain stream socket, mode 0600 (only the agent's user may talk to
// it). A client sends one request frame and reads one response frame;
// frames are as on the mesh streams (4-byte big-endian length, then a Cap'n
// Proto message of mesh/agent/control.capnp).
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "mesh/membership/messages.h"
#include "mesh/security/join_token.h"
#include "base/status.h"

namespace ndo::mesh {

enum class ControlCommand : uint8_t {
  kMembers,
  kLeave,
  kStatus,
  kCreateToken,
  kRemoveMember,
  kRotateKeys,
  kSubmitScan,   // a distributed scan (mesh/work/pool_state.h)
  kScanControl,  // pause, resume or stop one
};

struct ControlRequest {
  ControlRequest(ControlCommand c = ControlCommand::kStatus) : command(c) {}  // NOLINT: a bare command is a request
  ControlCommand command;
  TokenParams token;   // kCreateToken
  std::string member;  // kRemoveMember: a node id (32 hex) or a name
  std::string scan_definition;  // kSubmitScan: EncodeScanDefinition bytes
  std::string scan;             // kScanControl: id or unique hex prefix
  uint8_t scan_action = 0;      // kScanControl: a ScanControl value
};

struct ControlMember {
  NodeId id;
  std::string name, vantage, address;
  MemberState state = MemberState::kAlive;
  uint64_t incarnation = 0;
  uint32_t priority = 0;
  IntervalSet allow{};  // its scan policy; empty: it takes no distributed work
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
  std::string token, ca_hash;  // kCreateToken
  int64_t expires_unix = 0;    // kCreateToken
  std::string message;         // kRemoveMember, kRotateKeys, kSubmitScan, kScanControl
  std::string scan_id;         // kSubmitScan, kScanControl (hex)
};

// A control response is at most this long (a members list of
// kMaxStateMembers records fits).
inline constexpr size_t kMaxControlBytes = kMaxStreamBytes;
// A request is small (a command and a few short fields), but for a scan
// submission, which holds the whole target set.
inline constexpr size_t kMaxControlRequestBytes = 16u << 20;

std::string ControlSocketPath(const std::string& data_dir);

Result<std::string> EncodeControlRequest(const ControlRequest& request);
Result<ControlRequest> DecodeControlRequest(std::string_view body);
Result<std::string> EncodeControlResponse(const ControlResponse& response);
Result<ControlResponse> DecodeControlResponse(std::string_view body);

// Sends `command` to the agent of `data_dir` and waits for the answer, at
// most `timeout` in all. Unavailable, with a message an operator can act on,
// when no agent runs: "no ndo agent is running for data dir X (connect to
// X/control.sock: No such file or directory)".
Result<ControlResponse> CallControl(const std::string& data_dir, const ControlRequest& request,
                                    std::chrono::milliseconds timeout);

// Whether something answers connections at `socket_path` (a live agent);
// used before removing a stale socket file.
bool ControlSocketAnswers(const std::string& socket_path);

}  // namespace ndo::mesh
