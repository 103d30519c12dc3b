// ndo's process exit codes (documented in README.md and `ndo --help`).
#pragma once

#include <cstdio>

#include "base/status.h"

namespace ndo {

enum ExitCode : int {
  kExitOk = 0,           // the command did what was asked
  kExitError = 1,        // a runtime failure: store, files, the network stack
  kExitUsage = 2,        // bad command line or bad input (targets, ports, files)
  kExitOutOfScope = 3,   // targets reach outside --scope; nothing was sent
  kExitInterrupted = 130 // SIGINT/SIGTERM: progress saved, `ndo scan --resume ID` continues
};

inline int ExitCodeFor(const Status& s) {
  switch (s.code()) {
    case Status::Code::kOk: return kExitOk;
    case Status::Code::kInvalidArgument:
    case Status::Code::kNotFound: return kExitUsage;
    case Status::Code::kOutOfScope: return kExitOutOfScope;
    default: return kExitError;
  }
}

// Prints "ndo: <message>" on standard error; returns the exit code for it.
inline int Fail(const Status& s) {
  std::fprintf(stderr, "ndo: %s\n", s.message().c_str());
  return ExitCodeFor(s);
}

}  // namespace ndo
