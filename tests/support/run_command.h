// Runs the real ndo binary (the build's, or $NDO_BINARY) for multi-process
// tests, capturing exit code, stdout and stderr.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
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

}  // namespace ndo::testing
