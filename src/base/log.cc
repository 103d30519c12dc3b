#include "base/log.h"

#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <ctime>

#include "base/hex.h"

namespace ndo {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_fd{STDERR_FILENO};
std::mutex g_write_mutex;

// logfmt: bare when the value is a simple token, else double-quoted with
// quotes, backslashes and control bytes escaped, so one event is one line
// whatever a peer put in its name.
void AppendValue(std::string& out, std::string_view v) {
  bool bare = !v.empty();
  for (unsigned char c : v)
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) bare = false;
  if (bare) {
    out.append(v);
    return;
  }
  out.push_back('"');
  for (unsigned char c : v) {
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        if (c < ' ' || c == 0x7f) {
          out.append("\\x");
          AppendHexByte(out, c);
        } else {
          out.push_back(static_cast<char>(c));  // UTF-8 passes through
        }
    }
  }
  out.push_back('"');
}

// Guarded by g_write_mutex.
uint64_t g_dropped_pending = 0, g_dropped_total = 0;

void Dropped() {
  ++g_dropped_pending;
  ++g_dropped_total;
}

// Writes one line (at most kMaxLogLineBytes) only if `fd` can take it now:
// poll() first, so a reader that stopped reading (or a full pipe) costs a
// dropped line, never a blocked node. Whether it was written.
bool WriteLineNow(int fd, std::string_view line) {
  for (;;) {
    pollfd p{fd, POLLOUT, 0};
    int ready = ::poll(&p, 1, 0);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0 || (p.revents & (POLLERR | POLLHUP | POLLNVAL))) return false;
    break;
  }
  while (!line.empty()) {
    ssize_t n = ::write(fd, line.data(), line.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;  // EAGAIN on a non-blocking fd, EPIPE, ...: nowhere to log to now
    line.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

LogField::LogField(std::string_view k, double v) : key(k) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  value = buf;
}

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

Result<LogLevel> ParseLogLevel(std::string_view text) {
  if (text == "debug") return LogLevel::kDebug;
  if (text == "info") return LogLevel::kInfo;
  if (text == "warn" || text == "warning") return LogLevel::kWarn;
  if (text == "error") return LogLevel::kError;
  return Status::InvalidArgument("unknown log level '" + std::string(text) + "' (debug, info, warn, error)");
}

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
bool LogEnabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }
void SetLogFd(int fd) { g_fd.store(fd); }

std::string FormatLogLine(std::chrono::system_clock::time_point ts, LogLevel level, std::string_view msg,
                          std::initializer_list<LogField> fields) {
  using namespace std::chrono;
  auto ms = duration_cast<milliseconds>(ts.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  if (ms % 1000 < 0) --secs;  // before 1970: keep the millisecond part positive
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[48];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(((ms % 1000) + 1000) % 1000));
  std::string line = "ts=";
  line.append(stamp);
  line.append(" level=");
  line.append(LogLevelName(level));
  line.append(" msg=");
  AppendValue(line, msg);
  for (const auto& f : fields) {
    line.push_back(' ');
    line.append(f.key);
    line.push_back('=');
    AppendValue(line, f.value);
  }
  return line;
}

uint64_t LogLinesDropped() {
  std::lock_guard<std::mutex> lock(g_write_mutex);
  return g_dropped_total;
}

void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
  if (!LogEnabled(level)) return;
  auto now = std::chrono::system_clock::now();
  std::string line = FormatLogLine(now, level, msg, fields);
  if (line.size() > kMaxLogLineBytes - 1) line.resize(kMaxLogLineBytes - 1);
  line.push_back('\n');
  std::lock_guard<std::mutex> lock(g_write_mutex);
  int fd = g_fd.load();
  if (g_dropped_pending > 0) {
    std::string note = FormatLogLine(now, LogLevel::kWarn, "log lines dropped",
                                     {{"count", g_dropped_pending}, {"reason", "standard error would block"}});
    note.push_back('\n');
    if (!WriteLineNow(fd, note)) return Dropped();
    g_dropped_pending = 0;
  }
  if (!WriteLineNow(fd, line)) Dropped();
}

bool LogLimiter::Allow(std::chrono::steady_clock::time_point now, uint64_t& suppressed) {
  if (now - window_start_ >= window_) {
    window_start_ = now;
    used_ = 0;
  }
  if (used_ >= burst_) {
    ++suppressed_;
    return false;
  }
  ++used_;
  suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

}  // namespace ndo
