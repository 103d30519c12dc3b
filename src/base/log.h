// Structured, levelled logs of ndo (the mesh daemon and the CLI): one logfmt line per event on
// standard error, e.g.
//   ts=2026-11-25T12:00:00.123Z level=info msg="member dead" id=3f2a... name=node-b addr=127.0.0.2:7946
// Operators grep and parse them; journald and container runtimes keep them.
// A line is written with one write(2) under a lock, so lines from several
// threads never interleave. Logging never blocks the caller (the node's only
// thread) on a reader that does not read: a line that standard error cannot
// take at once (a full pipe, a stopped terminal) is dropped and counted, and
// the next line written is preceded by a `msg="log lines dropped"` line.
// Lines are cut at kMaxLogLineBytes, so that "can take one" means "takes it
// whole" (a pipe with room for any write takes up to a page).
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>

#include "base/status.h"

namespace ndo {

enum class LogLevel : uint8_t { kDebug, kInfo, kWarn, kError };

std::string_view LogLevelName(LogLevel level);
// debug, info, warn (or warning), error.
Result<LogLevel> ParseLogLevel(std::string_view text);

// The process-wide threshold; lines below it are not formatted at all.
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

// One key=value pair; numbers are converted here so call sites stay short.
struct LogField {
  LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(v) {}
  LogField(std::string_view k, const char* v) : key(k), value(v) {}
  LogField(std::string_view k, uint64_t v) : key(k), value(std::to_string(v)) {}
  LogField(std::string_view k, int64_t v) : key(k), value(std::to_string(v)) {}
  LogField(std::string_view k, uint32_t v) : key(k), value(std::to_string(v)) {}
  LogField(std::string_view k, int v) : key(k), value(std::to_string(v)) {}
  LogField(std::string_view k, double v);
  LogField(std::string_view k, bool v) : key(k), value(v ? "true" : "false") {}
  std::string_view key;
  std::string value;
};

inline constexpr size_t kMaxLogLineBytes = 4096;

void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});

// Lines dropped so far because the log fd would have blocked (or failed).
uint64_t LogLinesDropped();

// The formatted line without the trailing newline (for tests, and for Log).
std::string FormatLogLine(std::chrono::system_clock::time_point ts, LogLevel level, std::string_view msg,
                          std::initializer_list<LogField> fields);

// Where log lines go (default: standard error). For tests.
void SetLogFd(int fd);

// Lets at most `burst` lines through per `window`, and counts the rest, so
// that a flood of garbage from the network cannot fill a disk with logs.
// The first line let through after a suppressed stretch says how many were
// dropped. Not thread-safe: each driver thread owns its limiters.
class LogLimiter {
 public:
  LogLimiter(uint32_t burst, std::chrono::steady_clock::duration window) : burst_(burst), window_(window) {}
  // Whether to log now; `suppressed` is set to the lines dropped since the
  // last one let through.
  bool Allow(std::chrono::steady_clock::time_point now, uint64_t& suppressed);

 private:
  uint32_t burst_;
  std::chrono::steady_clock::duration window_;
  std::chrono::steady_clock::time_point window_start_{};
  uint32_t used_ = 0;
  uint64_t suppressed_ = 0;
};

}  // namespace ndo
