// Multi-process tests of the real `ndo` binary against loopback listeners.
// Every scan is scoped to 127.0.0.0/8.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <set>
#include <thread>

#include "cli/test_json.h"
#include "support/loopback_listeners.h"
#include "support/run_command.h"

namespace ndo {
namespace {

using ndo::testing::RunNdo;

class ScanCli : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = ::testing::TempDir() + "/ndo-cli-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(tmp_);
    std::filesystem::create_directories(tmp_);
    data_ = tmp_ + "/data";
  }
  void TearDown() override { std::filesystem::remove_all(tmp_); }

  // host:port pairs of open results in a JSON Lines document.
  static std::set<std::string> OpenInJson(const std::string& jsonl) {
    std::set<std::string> out;
    std::regex line(R"re("address":"([^"]+)".*"port":(\d+),"state":"open")re");
    for (auto it = std::sregex_iterator(jsonl.begin(), jsonl.end(), line); it != std::sregex_iterator(); ++it)
      out.insert((*it)[1].str() + ":" + (*it)[2].str());
    return out;
  }

  std::string tmp_, data_;
};

TEST_F(ScanCli, ScansLoopbackListenersAndPrintsExactOpenSet) {
  ndo::testing::AcceptingListeners listeners;
  uint16_t p1 = ndo::testing::UnusedPort("127.81.0.1"), p2 = ndo::testing::UnusedPort("127.81.0.2");
  ASSERT_TRUE(listeners.Add("127.81.0.1", p1));
  ASSERT_TRUE(listeners.Add("127.81.0.2", p2));
  ASSERT_TRUE(listeners.Add("127.81.0.3", p2));
  std::string ports = std::to_string(p1) + "," + std::to_string(p2) + ",1";
  auto r = RunNdo({"scan", "127.81.0.1-4", "-p", ports, "--scope", "127.0.0.0/8", "--data-dir", data_, "--format",
                   "json", "--seed", "5"},
                  tmp_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::set<std::string> want = {"127.81.0.1:" + std::to_string(p1), "127.81.0.2:" + std::to_string(p2),
                                "127.81.0.3:" + std::to_string(p2)};
  EXPECT_EQ(OpenInJson(r.out), want);
  EXPECT_NE(r.err.find("3 open"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("9 closed"), std::string::npos) << r.err;

  // The stored scan can be listed and printed again in every format.
  auto scans = RunNdo({"scans", "--data-dir", data_}, tmp_);
  ASSERT_EQ(scans.exit_code, 0);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(scans.out, m, std::regex(R"(\n([0-9a-f]{16})\s+done)")));
  std::string id = m[1];
  auto json = RunNdo({"results", id.substr(0, 8), "--data-dir", data_, "--format", "json"}, tmp_);
  EXPECT_EQ(OpenInJson(json.out), want);
  auto csv = RunNdo({"results", id, "--data-dir", data_, "--format", "csv"}, tmp_);
  EXPECT_EQ(csv.exit_code, 0);
  EXPECT_EQ(std::count(csv.out.begin(), csv.out.end(), '\n'), 4);  // header + 3
  auto table = RunNdo({"results", id, "--data-dir", data_}, tmp_);
  EXPECT_NE(table.out.find("127.81.0.2"), std::string::npos);
  EXPECT_NE(table.out.find("open"), std::string::npos);

  // -o FILE takes the --format output; standard output stays empty.
  std::string file = tmp_ + "/results.json";
  auto to_file = RunNdo({"results", id, "--data-dir", data_, "--format", "json", "-o", file}, tmp_);
  ASSERT_EQ(to_file.exit_code, 0) << to_file.err;
  EXPECT_EQ(to_file.out, "");
  EXPECT_EQ(OpenInJson(ndo::testing::Slurp(file)), want);
}

// `ndo scans --format json`: JSON Lines, one object per stored scan, every
// line valid JSON with the fields the table shows.
TEST_F(ScanCli, ScansAsJsonLines) {
  ndo::testing::AcceptingListeners listeners;
  uint16_t port = ndo::testing::UnusedPort("127.86.0.1");
  ASSERT_TRUE(listeners.Add("127.86.0.1", port));
  for (const char* seed : {"1", "2"}) {
    auto r = RunNdo({"scan", "127.86.0.1-2", "-p", std::to_string(port), "--scope", "127.0.0.0/8", "--data-dir", data_,
                     "--seed", seed, "-q", "--format", "csv"},
                    tmp_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  auto r = RunNdo({"scans", "--data-dir", data_, "--format", "json"}, tmp_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = ndo::testing::ParseJsonLines(r.out);
  ASSERT_TRUE(lines) << r.out;
  ASSERT_EQ(lines->size(), 2u) << r.out;
  std::set<std::string> ids;
  for (const auto& scan : *lines) {
    EXPECT_EQ(scan["record"].text, "scan");
    EXPECT_TRUE(std::regex_match(scan["id"].text, std::regex("[0-9a-f]{16}"))) << scan["id"].text;
    ids.insert(scan["id"].text);
    EXPECT_EQ(scan["state"].text, "done");
    EXPECT_TRUE(std::regex_match(scan["created"].text, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d.*Z)")))
        << scan["created"].text;
    EXPECT_EQ(scan["probes"].UInt(), 2u);
    EXPECT_EQ(scan["probes_sent"].UInt(), 2u);
    EXPECT_EQ(scan["open"].UInt(), 1u);
    EXPECT_GE(scan["elapsed_s"].Number(), 0.0);
    const auto& command = scan["command"].items;
    ASSERT_GE(command.size(), 3u);
    EXPECT_EQ(command[0].text, "ndo");
    EXPECT_EQ(command[1].text, "scan");
    EXPECT_EQ(command[2].text, "127.86.0.1-2");
  }
  EXPECT_EQ(ids.size(), 2u);
  // The table is the default, and its ids are the same.
  auto table = RunNdo({"scans", "--data-dir", data_}, tmp_);
  for (const auto& id : ids) EXPECT_NE(table.out.find(id), std::string::npos) << table.out;
  // A bad --format: exit 2, a clear error, nothing printed.
  for (const char* bad : {"jsonl", "csv"}) {
    auto refused = RunNdo({"scans", "--data-dir", data_, "--format", bad}, tmp_);
    EXPECT_EQ(refused.exit_code, 2);
    EXPECT_EQ(refused.out, "");
    EXPECT_NE(refused.err.find(std::string(bad) == "jsonl" ? "give --format json" : "give table or json"),
              std::string::npos)
        << refused.err;
  }
}

// `-iL -` reads the targets from standard input (as Nmap does), and
// NDO_DATA_DIR is the data dir of every command that is given no --data-dir.
TEST_F(ScanCli, TargetsFromStandardInputAndTheDataDirFromTheEnvironment) {
  ndo::testing::AcceptingListeners listeners;
  uint16_t port = ndo::testing::UnusedPort("127.82.0.1");
  ASSERT_TRUE(listeners.Add("127.82.0.1", port));
  ASSERT_TRUE(listeners.Add("127.82.0.3", port));
  using ndo::testing::ShellQuote;
  std::string env = "NDO_DATA_DIR=" + ShellQuote(data_) + " " + ShellQuote(ndo::testing::NdoBinary());
  std::string out = tmp_ + "/stdin-scan.out", err = tmp_ + "/stdin-scan.err";
  std::string cmd = "printf '127.82.0.1\\n# a comment\\n127.82.0.2-3 # two more\\n' | " + env + " scan -iL - -p " +
                    std::to_string(port) + " --scope 127.0.0.0/8 --format json --seed 3 >" + ShellQuote(out) +
                    " 2>" + ShellQuote(err);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << ndo::testing::Slurp(err);
  std::set<std::string> want = {"127.82.0.1:" + std::to_string(port), "127.82.0.3:" + std::to_string(port)};
  EXPECT_EQ(OpenInJson(ndo::testing::Slurp(out)), want);
  EXPECT_NE(ndo::testing::Slurp(err).find("2 open"), std::string::npos) << ndo::testing::Slurp(err);
  // Stored under NDO_DATA_DIR: `ndo scans` without --data-dir finds it there.
  ASSERT_TRUE(std::filesystem::exists(data_ + "/db"));
  std::string list = tmp_ + "/scans.out";
  ASSERT_EQ(std::system((env + " scans >" + ShellQuote(list) + " 2>&1").c_str()), 0);
  EXPECT_NE(ndo::testing::Slurp(list).find("-iL -"), std::string::npos) << ndo::testing::Slurp(list);
  // A bad line on standard input is named as such.
  std::string bad = "printf '127.82.0.1\\n127.82.0.0/40\\n' | " + env + " scan -iL - -p 1 --scope 127.0.0.0/8 2>" +
                    ShellQuote(err) + " >/dev/null";
  int status = std::system(bad.c_str());
  EXPECT_EQ(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 2);
  EXPECT_NE(ndo::testing::Slurp(err).find("standard input:2"), std::string::npos) << ndo::testing::Slurp(err);
}

TEST_F(ScanCli, XmlOutputValidatesAgainstNmapDtd) {
  if (!std::filesystem::exists("/usr/share/nmap/nmap.dtd") || std::system("command -v xmllint >/dev/null") != 0)
    GTEST_SKIP() << "nmap.dtd or xmllint not installed";
  ndo::testing::AcceptingListeners listeners;
  uint16_t p = ndo::testing::UnusedPort("127.82.0.1");
  ASSERT_TRUE(listeners.Add("127.82.0.1", p));
  std::string xml = tmp_ + "/out.xml";
  auto r = RunNdo({"scan", "127.82.0.1-2", "-p", std::to_string(p) + ",2", "--scope", "127.0.0.0/8", "--data-dir",
                   data_, "-oX", xml, "--store-all", "-q"},
                  tmp_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string cmd = "xmllint --noout --dtdvalid /usr/share/nmap/nmap.dtd " + ndo::testing::ShellQuote(xml) + " 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << ndo::testing::Slurp(xml);
  EXPECT_NE(ndo::testing::Slurp(xml).find("portid=\"" + std::to_string(p) + "\""), std::string::npos);
}

TEST_F(ScanCli, RefusesTargetsOutsideScopeAndSendsNothing) {
  auto r = RunNdo({"scan", "127.83.0.1", "192.0.2.1", "-p", "80", "--scope", "127.0.0.0/8", "--data-dir", data_}, tmp_);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("outside --scope: 192.0.2.1"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(data_));  // refused before the store was even opened
}

TEST_F(ScanCli, BadInputGetsAClearErrorAndExitCode2) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"scan", "127.0.0.1", "-p", "0"}, "outside 1-65535"},
      {{"scan", "127.0.0.1/40", "-p", "80"}, "prefix length"},
      {{"scan", "127.0.0.1", "-p", "80", "--exclude", "1.2.3.4/99"}, "--exclude"},
      {{"scan", "127.0.0.1", "-iL", "/nonexistent/targets"}, "cannot open target file"},
      {{"scan", "127.0.0.1", "-p", "80", "--scope", "localhost"}, "--scope"},
      {{"scan", "127.0.0.1", "--top-ports", "5000"}, "top-ports"},
      {{"scan", "127.0.0.1", "-p", "80", "--format", "yaml"}, "--format: unknown format 'yaml': give table, json, csv or xml"},
      {{"scan", "--bogus"}, "bogus"},
      {{"scan", "127.0.0.1", "-p", "80", "--format", "jsonl"}, "'jsonl' is now called 'json'"},
      {{"results", "ffffffff", "--format", "text"}, "the text output is called 'table'"},
      {{"scans", "--format"}, "--format"},
      {{"scan", "status", "ffff", "--format", "yaml"}, "unknown format 'yaml': give table or json"},
      {{"members", "--format", "jsonl"}, "give --format json"},
      {{"results", "ffffffff", "--data-dir", "DATA"}, "no stored scan"},
      // Readers create nothing: a data dir that is not there is an error.
      {{"results", "ffffffff", "--data-dir", "DATA/missing"}, "no such data directory"},
      {{"scans", "--data-dir", "DATA/missing"}, "no such data directory"},
      {{"report", "services", "ffffffff", "--data-dir", "DATA/missing"}, "no such data directory"},
  };
  // A store with one scan in it, for the lookups of a scan it does not hold.
  auto made = RunNdo({"scan", "127.84.0.1", "-p", "1", "--local", "--scope", "127.0.0.0/8", "--data-dir", data_, "-q"},
                     tmp_);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  for (auto& c : cases) {
    for (auto& a : c.args)
      if (a.rfind("DATA", 0) == 0) a = data_ + a.substr(4);
    auto r = RunNdo(c.args, tmp_);
    EXPECT_EQ(r.exit_code, 2) << c.args[1] << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << "expected '" << c.message << "' in: " << r.err;
  }
}

TEST_F(ScanCli, DryRunOfTheWholeInternetAnswersAtOnce) {
  auto start = std::chrono::steady_clock::now();
  auto r = RunNdo({"scan", "0.0.0.0/0", "-p-", "--exclude", "10.0.0.0/8,127.0.0.0/8", "--dry-run"}, tmp_);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // (2^32 - 2 * 2^24) hosts x 65535 ports
  EXPECT_NE(r.out.find("4261412864 hosts x 65535 ports = 279271692042240 probes"), std::string::npos) << r.out;
  EXPECT_LT(seconds, 5.0);  // generous bound; typically milliseconds
}

// Kill -9 a scan part-way, resume it: the result equals the truth, no stored
// result is lost, and finished shards are not probed again.
TEST_F(ScanCli, ResumeAfterKillDashNine) {
  ndo::testing::AcceptingListeners listeners;
  uint16_t port = ndo::testing::UnusedPort("127.84.0.1");
  std::set<std::string> want;
  for (int h : {3, 100, 700, 1500, 2047}) {
    std::string ip = "127.84." + std::to_string(h / 256) + "." + std::to_string(h % 256);
    ASSERT_TRUE(listeners.Add(ip, port));
    want.insert(ip + ":" + std::to_string(port));
  }
  // 2048 hosts x 2 ports at 1000 probes/s: about 4 s, killed after 1.5 s.
  std::vector<std::string> args = {"scan", "127.84.0.0/21", "-p", std::to_string(port) + ",1", "--scope",
                                   "127.0.0.0/8", "--data-dir", data_, "--rate", "1000", "--shards", "16",
                                   "--seed", "9", "--store-all", "-q"};
  pid_t pid = ndo::testing::SpawnNdo(args, tmp_ + "/first.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));

  auto scans = RunNdo({"scans", "--data-dir", data_}, tmp_);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(scans.out, m, std::regex(R"(\n([0-9a-f]{16})\s+running)"))) << scans.out;
  std::string id = m[1];
  auto before = RunNdo({"results", id, "--data-dir", data_, "--format", "csv"}, tmp_);
  long stored_before = std::count(before.out.begin(), before.out.end(), '\n') - 1;
  EXPECT_GT(stored_before, 500);
  EXPECT_LT(stored_before, 4096);

  auto r = RunNdo({"scan", "--resume", id.substr(0, 6), "--data-dir", data_, "--format", "json", "--no-progress"}, tmp_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(OpenInJson(r.out), want);
  auto after = RunNdo({"results", id, "--data-dir", data_, "--format", "csv"}, tmp_);
  EXPECT_EQ(std::count(after.out.begin(), after.out.end(), '\n') - 1, 4096);  // every probe, each once
  // The resumed run did only what was left: at the paced 1000/s, the probes
  // left take (4096 - stored) ms, and 0.5 s covers start-up and the last
  // timeouts. Redoing all 4096 would take at least 4.096 s, above this bound
  // whenever more than 500 were stored (asserted above). A bound relative to
  // what was stored, not a fixed one: a loaded machine stores less before
  // the kill and so leaves more to resume.
  std::smatch t;
  ASSERT_TRUE(std::regex_search(r.err, t, std::regex(R"(in ([0-9.]+) s)"))) << r.err;
  EXPECT_LT(std::stod(t[1]), (4096 - stored_before) / 1000.0 + 0.5) << stored_before << " stored before the kill";
}

TEST_F(ScanCli, InterruptSavesProgressAndExits130) {
  std::vector<std::string> args = {"scan", "127.85.0.0/22", "-p", "1,2", "--scope", "127.0.0.0/8", "--data-dir",
                                   data_, "--rate", "1000", "--no-progress"};
  pid_t pid = ndo::testing::SpawnNdo(args, tmp_ + "/run.log");
  // Interrupt only once the scan has started (its first line is out), however
  // slowly a loaded machine starts the process.
  for (int i = 0; i < 500 && ndo::testing::Slurp(tmp_ + "/run.log").find("ndo: scan ") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  std::string log = ndo::testing::Slurp(tmp_ + "/run.log");
  EXPECT_NE(log.find("ndo scan --resume"), std::string::npos) << log;
  auto scans = RunNdo({"scans", "--data-dir", data_}, tmp_);
  EXPECT_NE(scans.out.find("interrupted"), std::string::npos) << scans.out;
}

}  // namespace
}  // namespace ndo
