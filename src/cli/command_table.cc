#include "cli/command_table.h"

#include <algorithm>

namespace ndo {

const char* const kExitCodesHelp =
    "Exit codes: 0 success; 1 runtime error (store, files, network stack); 2 bad command line or input; "
    "3 targets outside --scope (nothing sent); 130 interrupted (progress saved; ndo scan --resume ID).";

std::vector<CommandEntry> AllCommands() {
  std::vector<CommandEntry> all;
  for (auto part : {ScanCommands, MeshCommands, SecurityCommands, ViewCommands}) {
    auto entries = part();
    all.insert(all.end(), entries.begin(), entries.end());
  }
  return all;
}

namespace {

std::string OneOf(const std::vector<std::string>& formats) {
  std::string list;
  for (size_t i = 0; i < formats.size(); ++i)
    list += (i == 0 ? "" : i + 1 == formats.size() ? " or " : ", ") + formats[i];
  return list;
}

}  // namespace

Status CheckFormat(const std::string& format, const std::vector<std::string>& formats) {
  if (std::find(formats.begin(), formats.end(), format) != formats.end()) return Status::Ok();
  if (format == "jsonl" && std::find(formats.begin(), formats.end(), "json") != formats.end())
    return Status::InvalidArgument(
        "'jsonl' is now called 'json' (the same JSON Lines, one object per line): give --format json");
  if (format == "text" && std::find(formats.begin(), formats.end(), "table") != formats.end())
    return Status::InvalidArgument("the text output is called 'table' (the default): give --format table");
  return Status::InvalidArgument("unknown format '" + format + "': give " + OneOf(formats));
}

CLI::Option* AddFormatOption(CLI::App& cmd, std::string& format, const std::vector<std::string>& formats,
                             const std::string& note) {
  CLI::Validator known(
      [formats](std::string& value) -> std::string { return CheckFormat(value, formats).message(); },
      "", "format");
  return cmd.add_option("--format", format,
                        "Output format: " + OneOf(formats) + " (default " + formats.front() + ")" +
                            (note.empty() ? "" : "; " + note))
      ->type_name("FORMAT")
      ->check(known);
}

CLI::Option* AddOutputFileOption(CLI::App& cmd, std::string& path, bool was_format) {
  auto* opt = cmd.add_option("-o,--output", path, "Write the --format output to FILE instead of standard output")
                  ->type_name("FILE");
  if (was_format)
    opt->check(CLI::Validator(
        [](std::string& value) -> std::string {
          for (const char* f : {"table", "json", "jsonl", "csv", "xml"})
            if (value == f)
              return "-o is the output file now, not the format: give --format " +
                     std::string(value == "jsonl" ? "json" : value) + " (or -o ./" + value + " for a file of that name)";
          return "";
        },
        "", "output file"));
  return opt;
}

CLI::Option* AddDataDirOption(CLI::App& cmd, std::string& dir, const std::string& what) {
  return cmd.add_option("--data-dir", dir, what + " (default: $NDO_DATA_DIR, else $XDG_DATA_HOME/ndo)")
      ->type_name("DIR");
}

}  // namespace ndo
