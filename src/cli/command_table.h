// Every subcommand of ndo is registered one way: each command file exports
// its entries (name, description, setup), and main() adds each entry as a
// CLI11 subcommand, lets its setup add the options, parses, and runs the one
// command that was given. A setup binds the options to state that its run
// function owns; the run function returns a process exit code (exit_codes.h)
// and prints its own errors; none throws.
//
// The options every command spells the same way are added here too:
// --format (the output format), -o/--output (the output file) and --data-dir.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

#include "base/status.h"

namespace ndo {

// Runs a parsed command. `command_line` is the whole command line as given
// ("ndo" first), for commands that record it (ndo scan).
using CommandRun = std::function<int(const std::vector<std::string>& command_line)>;

struct CommandEntry {
  const char* name;
  const char* description;
  // Adds the command's options (and its own subcommands) to `cmd`, which is
  // already named and described; returns what runs it once parsed.
  std::function<CommandRun(CLI::App& cmd)> setup;
};

// The entries of each command file, and all of them in the order of `ndo --help`.
std::vector<CommandEntry> ScanCommands();      // commands.cc: scan (and scan status|pause|resume|stop), scans, results, report
std::vector<CommandEntry> MeshCommands();      // mesh_commands.cc: agent, join, members, keys, leave
std::vector<CommandEntry> SecurityCommands();  // security_commands.cc: init, token
std::vector<CommandEntry> ViewCommands();      // view_commands.cc: view
std::vector<CommandEntry> AllCommands();

// The footer of `ndo --help` and `ndo scan --help`.
extern const char* const kExitCodesHelp;

// Ok when `format` is one of `formats`; else InvalidArgument naming those
// there are, or, for jsonl (the old name of json), saying to use json.
Status CheckFormat(const std::string& format, const std::vector<std::string>& formats);

// --format FORMAT, one of `formats` (the first is the default; `format`
// should hold it); `note` adds to the help what the formats hold. A value not among them is refused while parsing, with
// CheckFormat's error.
CLI::Option* AddFormatOption(CLI::App& cmd, std::string& format, const std::vector<std::string>& formats,
                             const std::string& note = "");

// -o/--output FILE: where the --format output goes ("-" or none: standard
// output). Where -o once was the format (ndo view), `was_format` refuses a
// file named like a format ("-o csv") with an error that says --format.
CLI::Option* AddOutputFileOption(CLI::App& cmd, std::string& path, bool was_format = false);

// --data-dir DIR, with the default the help names.
CLI::Option* AddDataDirOption(CLI::App& cmd, std::string& dir,
                              const std::string& what = "Where scans are stored");

}  // namespace ndo
