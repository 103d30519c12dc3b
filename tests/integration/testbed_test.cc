// The real binary against the network-namespace testbed: thousands of hosts
// whose open/closed/filtered ports come from a seeded ground truth, with and
// without packet loss. Needs root and `ip netns`; skips cleanly otherwise.
// All traffic stays inside the two namespaces the testbed creates (198.18.0.0/15).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>

#include "support/run_command.h"

namespace ndo {
namespace {

using ndo::testing::ShellQuote;

struct Truth {
  std::map<std::string, std::string> state;  // "address port" -> open|closed|filtered
};

class Testbed : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "the testbed needs root (network namespaces, nftables)";
    script_ = std::string(NDO_TEST_SOURCE_DIR) + "/simulations/testbed/testbed.sh";
    listener_ = NDO_TEST_LISTENER;
    name_ = "ct" + std::to_string(getpid() % 10000);
    tmp_ = ::testing::TempDir() + "/ndo-testbed-" + name_;
    std::filesystem::remove_all(tmp_);
    std::filesystem::create_directories(tmp_);
  }
  void TearDown() override {
    if (!script_.empty()) Run(Env() + ShellQuote(script_) + " down >/dev/null 2>&1");
    std::filesystem::remove_all(tmp_);
  }

  std::string Env() const {
    return "NDO_TESTBED_NAME=" + name_ + " NDO_TESTBED_STATE=" + ShellQuote(tmp_ + "/state") + " ";
  }
  static int Run(const std::string& cmd) {
    int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // Brings the testbed up; false (and a skip) where namespaces are unavailable.
  bool Up(const std::string& options) {
    int rc = Run(Env() + ShellQuote(script_) + " up --hosts 1024 --top-ports 20 --seed 7 --listener " +
                 ShellQuote(listener_) + " --truth " + ShellQuote(tmp_ + "/truth") + " " + options + " >" +
                 ShellQuote(tmp_ + "/up.log") + " 2>&1");
    if (rc == 77) return false;
    EXPECT_EQ(rc, 0) << ndo::testing::Slurp(tmp_ + "/up.log");
    return rc == 0;
  }

  Truth ReadTruth() {
    Truth t;
    std::ifstream in(tmp_ + "/truth");
    std::string addr, port, state;
    while (in >> addr >> port >> state) t.state[addr + " " + port] = state;
    return t;
  }

  // Runs ndo inside the scanner namespace; returns "address port" -> state.
  std::map<std::string, std::string> Scan(const std::string& extra) {
    std::string out = tmp_ + "/results.csv";
    std::string cmd = "ip netns exec ndo-" + name_ + "-scan " + ShellQuote(ndo::testing::NdoBinary()) +
                      " scan 198.18.0.0/22 --top-ports 20 --scope 198.18.0.0/15 --store-all --seed 3 -q" +
                      " --data-dir " + ShellQuote(tmp_ + "/data") + " --format csv -o " + ShellQuote(out) + " " +
                      extra + " 2>" + ShellQuote(tmp_ + "/scan.log");
    EXPECT_EQ(Run(cmd), 0) << ndo::testing::Slurp(tmp_ + "/scan.log");
    std::map<std::string, std::string> got;
    std::ifstream in(out);
    std::string line;
    std::getline(in, line);  // header
    std::regex row(R"re(^[0-9a-f]{16},([^,]+),[^,]*,(\d+),(\w+),)re");
    std::smatch m;
    while (std::getline(in, line))
      if (std::regex_search(line, m, row)) got[m[1].str() + " " + m[2].str()] = m[3];
    return got;
  }

  std::string script_, listener_, name_, tmp_;
};

TEST_F(Testbed, LosslessScanMatchesTheGroundTruthExactly) {
  if (!Up("")) GTEST_SKIP() << "network namespaces unavailable";
  Truth truth = ReadTruth();
  ASSERT_EQ(truth.state.size(), 1024u * 20);
  auto got = Scan("");
  ASSERT_EQ(got.size(), truth.state.size());
  size_t open = 0, mismatches = 0;
  for (const auto& [key, want] : truth.state) {
    open += want == "open";
    if (got[key] != want && ++mismatches <= 10) ADD_FAILURE() << key << ": truth " << want << ", ndo " << got[key];
  }
  EXPECT_EQ(mismatches, 0u);
  EXPECT_GT(open, 500u);
}

TEST_F(Testbed, TenPercentLossBothWaysKeepsRecallAbove99Percent) {
  if (!Up("--loss 10")) GTEST_SKIP() << "network namespaces unavailable";
  Truth truth = ReadTruth();
  auto got = Scan("");
  size_t open = 0, found = 0, false_open = 0;
  for (const auto& [key, want] : truth.state) {
    open += want == "open";
    found += want == "open" && got[key] == "open";
    false_open += want != "open" && got[key] == "open";
  }
  double recall = static_cast<double>(found) / static_cast<double>(open);
  EXPECT_GE(recall, 0.99) << found << " of " << open;
  EXPECT_EQ(false_open, 0u);
}

}  // namespace
}  // namespace ndo
