// The command table: every subcommand registered once, --format and -o the
// same in every command, bad values refused while parsing with a clear
// error; the JSON helpers and `ndo members --format json`.
#include "cli/command_table.h"

#include <gtest/gtest.h>

#include <set>

#include "cli/mesh_commands.h"
#include "cli/output/json.h"
#include "cli/test_json.h"
#include "scan/target_parser.h"

namespace ndo {
namespace {

using ndo::testing::Json;
using ndo::testing::ParseJson;
using ndo::testing::ParseJsonLines;

// `ndo ARGS` parsed as main() parses it; the error CLI11 gives, or "" when
// it parsed, with the name of the command that would run.
struct Parsed {
  std::string error, command;
};
Parsed Parse(std::vector<std::string> args) {
  CLI::App app{"ndo", "ndo"};
  app.require_subcommand(1);
  std::vector<std::pair<CLI::App*, CommandRun>> commands;
  for (const CommandEntry& e : AllCommands()) {
    CLI::App* cmd = app.add_subcommand(e.name, e.description);
    commands.emplace_back(cmd, e.setup(*cmd));
  }
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  Parsed p;
  try {
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    p.error = e.what();
    return p;
  }
  for (auto& [cmd, run] : commands)
    if (cmd->parsed()) p.command = cmd->get_name();
  return p;
}

TEST(CommandTable, EveryCommandOnceInHelpOrder) {
  std::vector<std::string> names;
  for (const CommandEntry& e : AllCommands()) {
    names.push_back(e.name);
    EXPECT_NE(std::string(e.description), "") << e.name;
    EXPECT_TRUE(e.setup) << e.name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"scan", "scans", "results", "report", "agent", "join", "members", "keys",
                                             "leave", "init", "token", "view"}));
}

TEST(CommandTable, EveryCommandParsesItsFormatAndOutput) {
  const std::vector<std::vector<std::string>> good = {
      {"scan", "192.0.2.1", "--format", "json", "-o", "out.json"},
      {"scan", "status", "abcd", "--format", "json"},
      {"scans", "--format", "json"},
      {"results", "abcd", "--format", "xml", "-o", "out.xml"},
      {"report", "services", "abcd", "--format", "csv"},
      {"members", "--format", "json"},
      {"members", "--json"},  // the old spelling, kept for scripts
      {"token", "create", "--format", "json"},
      {"view", "abcd", "--vantage", "dmz", "--format", "json", "-o", "dmz.json"},
      {"view", "compare", "abcd", "--format", "csv", "-o", "compare.csv"},
      {"view", "diff", "abcd", "--seen-by", "a", "--not-by", "b", "--format", "json", "--output", "d.json"},
      {"view", "list", "--format", "json"},
      {"view", "report", "abcd", "--format", "json", "-o", "-"},
  };
  for (const auto& args : good) {
    Parsed p = Parse(args);
    EXPECT_EQ(p.error, "") << args[0] << " " << args[1];
    EXPECT_EQ(p.command, args[0]);
  }
}

TEST(CommandTable, BadFormatsAreRefusedWithAClearError) {
  struct Case {
    std::vector<std::string> args;
    std::string error;
  } cases[] = {
      {{"scans", "--format", "jsonl"}, "--format: 'jsonl' is now called 'json'"},
      {{"scans", "--format", "yaml"}, "--format: unknown format 'yaml': give table or json"},
      {{"view", "list", "--format", "csv"}, "unknown format 'csv': give table or json"},
      {{"scan", "status", "abcd", "--format", "jsonl"}, "give --format json"},
      {{"members", "--format", "text"}, "the text output is called 'table'"},
      {{"results", "abcd", "--format", "jsonl"}, "give --format json"},
      {{"scan", "192.0.2.1", "--format", "html"}, "unknown format 'html': give table, json, csv or xml"},
      {{"report", "services", "abcd", "--format", "xml"}, "give table, json or csv"},
      {{"view", "abcd", "--vantage", "dmz", "--format", "jsonl"}, "give --format json"},
      {{"view", "diff", "abcd", "--seen-by", "a", "--not-by", "b", "--format", "jsonl"}, "give --format json"},
      {{"token", "create", "--format", "yaml"}, "unknown format 'yaml'"},
      // -o was the format of ndo view: now it is the file, and a format there is refused.
      {{"view", "abcd", "--vantage", "dmz", "-o", "csv"}, "-o is the output file now, not the format: give --format csv"},
      {{"view", "diff", "abcd", "--seen-by", "a", "--not-by", "b", "-o", "jsonl"}, "give --format json"},
      {{"view", "report", "abcd", "-o", "json"}, "give --format json"},
      {{"view", "compare", "abcd", "--json"}, "--json: was replaced by --format json"},
      {{"view", "compare", "abcd", "--csv"}, "--csv: was replaced by --format csv"},
      {{"scans", "--format"}, "--format"},
  };
  for (const auto& c : cases) {
    Parsed p = Parse(c.args);
    EXPECT_NE(p.error.find(c.error), std::string::npos) << "expected '" << c.error << "' in: " << p.error;
  }
  // A file that is named like a format can still be written.
  EXPECT_EQ(Parse({"view", "abcd", "--vantage", "dmz", "-o", "./csv"}).error, "");
}

TEST(CommandTable, CheckFormatIsTheParsersCheck) {
  EXPECT_TRUE(CheckFormat("json", {"table", "json"}).ok());
  EXPECT_EQ(CheckFormat("jsonl", {"table", "json"}).code(), Status::Code::kInvalidArgument);
  // jsonl is not pointed to json where json is not a format.
  EXPECT_EQ(CheckFormat("jsonl", {"table", "csv"}).message(), "unknown format 'jsonl': give table or csv");
  EXPECT_EQ(CheckFormat("", {"table", "json", "csv"}).message(), "unknown format '': give table, json or csv");
}

TEST(JsonHelpers, ObjectsParseBackToWhatWasPut) {
  std::string nasty = "a\"b\\c\n\t\x01\x7f \xe2\x82\xac \xff";  // quotes, controls, UTF-8, a bad byte
  std::string text = JsonObject()
                         .Str("s", nasty)
                         .UInt("u", 18446744073709551615ull)
                         .Int("i", -5)
                         .Num("x", 1.25, 2)
                         .Num("nan", 0.0 / 0.0)
                         .Bool("b", true)
                         .Null("n")
                         .Raw("a", JsonStringArray({"x", "y\"z"}))
                         .Raw("e", JsonArray({}))
                         .str();
  auto v = ParseJson(text);
  ASSERT_TRUE(v) << text;
  EXPECT_EQ(v->order, (std::vector<std::string>{"s", "u", "i", "x", "nan", "b", "n", "a", "e"}));
  EXPECT_EQ((*v)["s"].text, "a\"b\\c\n\t\x01\x7f \xe2\x82\xac \xef\xbf\xbd");  // the bad byte as U+FFFD
  EXPECT_EQ((*v)["u"].UInt(), 18446744073709551615ull);
  EXPECT_EQ((*v)["i"].text, "-5");
  EXPECT_EQ((*v)["x"].text, "1.25");
  EXPECT_TRUE((*v)["nan"].IsNull());
  EXPECT_TRUE((*v)["b"].boolean);
  EXPECT_TRUE((*v)["n"].IsNull());
  ASSERT_EQ((*v)["a"].items.size(), 2u);
  EXPECT_EQ((*v)["a"].items[1].text, "y\"z");
  EXPECT_EQ((*v)["e"].kind, Json::Kind::kArray);
  EXPECT_EQ(JsonObject().str(), "{}");
}

mesh::ControlMember Member(uint8_t id, std::string name, std::string vantage, mesh::MemberState state) {
  mesh::ControlMember m;
  m.id.lo = id;
  m.name = std::move(name);
  m.vantage = std::move(vantage);
  m.address = "127.0.0." + std::to_string(id) + ":7946";
  m.state = state;
  m.incarnation = id;
  m.priority = 100;
  return m;
}

TEST(MembersJson, OneRecordPerMemberThenTheCoordinator) {
  mesh::ControlResponse r;
  r.self = Member(1, "a", "dmz", mesh::MemberState::kAlive);
  r.self.allow = *ParseAddressList("127.70.0.0/24,127.71.0.1-127.71.0.9");
  r.members = {Member(2, "b\n\"x\"", "wifi", mesh::MemberState::kSuspect),
               Member(3, "c", "internet", mesh::MemberState::kDead)};
  r.coordinator = r.members[0].id;
  r.epoch = 7;
  std::string out = MembersJson(r);
  auto lines = ParseJsonLines(out);
  ASSERT_TRUE(lines) << out;
  ASSERT_EQ(lines->size(), 4u);
  const Json& self = (*lines)[0];
  EXPECT_EQ(self["record"].text, "member");
  EXPECT_EQ(self["id"].text, r.self.id.Hex());
  EXPECT_EQ(self["name"].text, "a");
  EXPECT_EQ(self["vantage"].text, "dmz");
  EXPECT_EQ(self["address"].text, "127.0.0.1:7946");
  EXPECT_EQ(self["state"].text, "alive");
  EXPECT_EQ(self["incarnation"].UInt(), 1u);
  EXPECT_EQ(self["priority"].UInt(), 100u);
  EXPECT_TRUE(self["self"].boolean);
  EXPECT_FALSE(self["coordinator"].boolean);
  ASSERT_EQ(self["allow"].items.size(), 2u);
  EXPECT_EQ(self["allow"].items[0].text, "127.70.0.0/24");
  EXPECT_EQ(self["allow"].items[1].text, "127.71.0.1-127.71.0.9");
  EXPECT_TRUE(self["takes_work"].boolean);
  const Json& b = (*lines)[1];
  EXPECT_TRUE(b["allow"].items.empty());
  EXPECT_FALSE(b["takes_work"].boolean) << "a member without a policy says it takes no work";
  EXPECT_EQ(b["name"].text, "b\n\"x\"");  // escaped, and back
  EXPECT_EQ(b["state"].text, "suspect");
  EXPECT_FALSE(b["self"].boolean);
  EXPECT_TRUE(b["coordinator"].boolean);
  EXPECT_EQ((*lines)[2]["state"].text, "dead");
  const Json& coordinator = (*lines)[3];
  EXPECT_EQ(coordinator["record"].text, "coordinator");
  EXPECT_EQ(coordinator["id"].text, r.members[0].id.Hex());
  EXPECT_EQ(coordinator["name"].text, "b\n\"x\"");
  EXPECT_EQ(coordinator["epoch"].UInt(), 7u);
  // The field order scripts (and tests/support/mesh_cluster.h) rely on.
  EXPECT_EQ(self.order, (std::vector<std::string>{"record", "id", "name", "vantage", "address", "state", "incarnation",
                                                  "priority", "self", "coordinator", "allow", "takes_work"}));

  r.coordinator = {};
  lines = ParseJsonLines(MembersJson(r));
  ASSERT_TRUE(lines);
  EXPECT_TRUE(lines->back()["id"].IsNull());
  EXPECT_TRUE(lines->back()["name"].IsNull());
}

}  // namespace
}  // namespace ndo
