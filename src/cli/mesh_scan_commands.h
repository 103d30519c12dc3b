// Distributed scans from the command line: `ndo scan ...` on a node whose
// agent runs submits the scan to the mesh (one pool per vantage), and
// `ndo scan status|pause|resume|stop SCAN` follow and steer it from any
// node. Submission and control go through the agent's control socket;
// status reads the replicated state from the data dir's store (read-only,
// beside the running agent). Each returns a process exit code.
#pragma once

#include <string>
#include <vector>

#include "cli/command_table.h"
#include "scan/scan_spec.h"

namespace ndo {

struct MeshScanSubmit {
  std::string data_dir;         // empty: the default
  std::vector<std::string> vantages;  // empty: every vantage the mesh knows (cli/scan_vantages.h)
  bool shards_given = false;    // --shards: keep the spec's count
  bool wait = false;            // follow until every pool is done
};

// Whether an agent answers on the data dir's control socket.
bool AgentRunning(const std::string& data_dir);

int SubmitMeshScan(const MeshScanSubmit& submit, ScanSpec spec);

// `ndo scan status|pause|resume|stop SCAN`, added to the scan command `scan`;
// the CommandRun runs the one of them that was parsed.
CommandRun SetupMeshScanSubcommands(CLI::App& scan);

}  // namespace ndo
