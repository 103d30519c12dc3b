// Runs the real ndo binary (the build's, or $NDO_BINARY) for multi-process
// tests, capturing exit code, stdout and stderr.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cerrno>
#include <cstdlib>
#include <thread>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace ndo::testing {

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};

inline std::string NdoBinary() {
  const char* b = std::getenv("NDO_BINARY");
  return b ? b : NDO_TEST_BINARY;
}

inline std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs `ndo ARGS...` to completion.
inline CommandResult RunNdo(const std::vector<std::string>& args, const std::string& tmp) {
  std::string cmd = ShellQuote(NdoBinary());
  for (const auto& a : args) cmd += " " + ShellQuote(a);
  std::string out = tmp + "/stdout", err = tmp + "/stderr";
  cmd += " >" + ShellQuote(out) + " 2>" + ShellQuote(err) + " </dev/null";
  int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = Slurp(out);
  r.err = Slurp(err);
  return r;
}

// Starts `ndo ARGS...` in the background; returns its pid.
inline pid_t SpawnNdo(const std::vector<std::string>& args, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<std::string> all = {NdoBinary()};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    FILE* f = std::fopen(log.c_str(), "w");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Starts ARGV (no shell; argv[0] a path) in the background with stdout and
// stderr appended to `log`. The child is killed if the test process dies, so
// a crashed test leaves no daemons behind.
inline pid_t SpawnArgv(const std::vector<std::string>& argv_in, const std::string& log) {
  // Everything is allocated before fork(): the child only calls
  // async-signal-safe functions.
  std::vector<std::string> all = argv_in;
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

inline constexpr int kStillRunning = -1;
inline constexpr int kNotAChild = -2;  // never ours, or already reaped

// Waits up to `timeout` for `pid` to exit: its exit code (128 + signal when
// killed), kStillRunning if it still runs (the caller must keep track of
// it), or kNotAChild.
inline int WaitForExit(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return kNotAChild;
    if (std::chrono::steady_clock::now() >= deadline) return kStillRunning;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// Runs ARGV (no shell) to completion, capturing its output in files under
// `tmp` (named by `tag`, so concurrent callers can use distinct tags). A
// command still running after `timeout` is killed (SIGKILL): exit code
// 128 + 9, and a note at the end of `err`.
inline CommandResult RunArgv(const std::vector<std::string>& argv, const std::string& tmp,
                             const std::string& tag = "cmd",
                             std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  std::string out = tmp + "/" + tag + ".stdout", err = tmp + "/" + tag + ".stderr";
  std::vector<std::string> all = argv;
  std::vector<char*> args;
  for (auto& a : all) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int null = open("/dev/null", O_RDONLY);
    if (o >= 0) dup2(o, 1);
    if (e >= 0) dup2(e, 2);
    if (null >= 0) dup2(null, 0);
    execvp(args[0], args.data());
    _exit(127);
  }
  CommandResult r;
  if (pid < 0) {
    r.err = "fork failed";
    return r;
  }
  int code = WaitForExit(pid, timeout);
  bool timed_out = code == kStillRunning;
  if (timed_out) {
    kill(pid, SIGKILL);
    code = WaitForExit(pid, std::chrono::seconds(10));
  }
  r.exit_code = code;
  r.out = Slurp(out);
  r.err = Slurp(err);
  if (timed_out)
    r.err += "\n(test harness: still running after " + std::to_string(timeout.count()) + " ms; killed)\n";
  return r;
}

}  // namespace ndo::testing
