// ndo: network discovery orchestration. Entry point: every subcommand comes
// from the command table (command_table.h); main parses the command line
// with CLI11 and runs the one given.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "cli/command_table.h"
#include "cli/exit_codes.h"

namespace {

// Nmap spellings that CLI11 cannot express (multi-letter short options) are
// rewritten to their long forms; Nmap's -sT, -Pn and -n are what ndo always
// does, so they are accepted and dropped.
std::vector<std::string> NmapCompatibleArgs(int argc, char** argv) {
  std::vector<std::string> out;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-iL") out.push_back("--input-list");
    else if (a == "-oJ") out.push_back("--output-json");
    else if (a == "-oX") out.push_back("--output-xml");
    else if (a == "-oC") out.push_back("--output-csv");
    else if (a == "-p-") out.push_back("--ports=-");
    else if (a == "-sT" || a == "-Pn" || a == "-n") continue;
    else out.push_back(a);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ndo: network discovery orchestration -- a fast, unprivileged TCP connect scanner, and a mesh of them", "ndo"};
  app.footer(ndo::kExitCodesHelp);
  app.require_subcommand(1);
  app.set_version_flag("--version", "ndo 0.1.0");

  std::vector<std::pair<CLI::App*, ndo::CommandRun>> commands;
  for (const ndo::CommandEntry& entry : ndo::AllCommands()) {
    CLI::App* cmd = app.add_subcommand(entry.name, entry.description);
    commands.emplace_back(cmd, entry.setup(*cmd));
  }

  std::vector<std::string> args = NmapCompatibleArgs(argc, argv);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 parses a reversed vector
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? ndo::kExitOk : ndo::kExitUsage;
  }

  std::vector<std::string> command_line = {"ndo"};
  for (int i = 1; i < argc; ++i) command_line.push_back(argv[i]);
  for (auto& [cmd, run] : commands) {
    if (!cmd->parsed()) continue;
    try {
      return run(command_line);
    } catch (const std::exception& e) {  // a bug: said plainly, not an abort
      std::fprintf(stderr, "ndo: internal error: %s\n", e.what());
      return ndo::kExitError;
    }
  }
  return ndo::kExitUsage;
}
