// Per-node scan policies (`--allow`) with real `ndo` daemons on loopback:
//
// * a mixed-policy mesh: two dmz nodes, one allowed 127.70.0.0/24 only, the
//   other 127.71.0.0/24 only, and a third dmz node with no policy (it takes
//   no distributed work), scan listeners in both ranges: the scan completes
//   and every node's dmz view is exactly what listens, each range scanned
//   by the one node allowed it;
// * a scan whose targets lie outside every node's policy: nothing is sent
//   (the listener counts no connection), and `ndo scan status` reports the
//   probes refused by policy, with their range, instead of pending forever.
//
// Safety: every address is in 127.0.0.0/8, and every scan passes --scope.
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include "support/loopback_listeners.h"
#include "support/mesh_cluster.h"
#include "support/run_command.h"

namespace ndo::testing {
namespace {

using namespace std::chrono_literals;
using Probe = std::pair<std::string, int>;

std::set<Probe> OpenProbes(const std::string& jsonl) {
  static const std::regex line(R"re("address":"([^"]+)".*?"port":(\d+).*?"state":"(\w+)")re");
  std::set<Probe> out;
  for (auto it = std::sregex_iterator(jsonl.begin(), jsonl.end(), line); it != std::sregex_iterator(); ++it)
    if ((*it)[3] == "open") out.insert({(*it)[1], std::stoi((*it)[2])});
  return out;
}

constexpr int kPortSpan = 400;

class MeshPolicy : public MeshProcess {
 protected:
  void SetUp() override {
    MeshProcess::SetUp();
    port_lo_ = static_cast<uint16_t>(24000 + (getpid() % 40) * 400);
  }
  void TearDown() override {
    for (auto& n : nodes_) Kill(n);
    MeshProcess::TearDown();
  }

  std::string Ports() const { return std::to_string(port_lo_) + "-" + std::to_string(port_lo_ + kPortSpan - 1); }

  // Listeners on `host` at a few random ports of the span.
  void Listen(AcceptingListeners& on, const std::string& host, int count) {
    std::mt19937 rng(static_cast<uint32_t>(getpid()) ^ static_cast<uint32_t>(std::hash<std::string>{}(host)));
    for (int i = 0; i < count; ++i) {
      auto port = static_cast<uint16_t>(port_lo_ + rng() % kPortSpan);
      if (on.Add(host, port)) open_.insert({host, port});
    }
  }

  // a (dmz, 127.70.0.0/24), b (dmz, 127.71.0.0/24), c (dmz, no policy).
  void StartThree() {
    const char* names[] = {"a", "b", "c"};
    const char* allow[] = {"127.70.0.0/24", "127.71.0.0/24", ""};
    for (int i = 0; i < 3; ++i) {
      Node& n = AddNode(names[i], "127.0.0." + std::to_string(i + 1));
      n.vantage = "dmz";
      n.allow = allow[i];
      if (i > 0) n.seeds = {nodes_[0].Address()};
    }
    ASSERT_NO_FATAL_FAILURE(InitCluster(nodes_[0]));
    for (int i = 2; i >= 0; --i) ASSERT_NO_FATAL_FAILURE(Start(nodes_[i]));
    ASSERT_TRUE(WaitAgreed(All(), Names(All()), 60s));
    // Every node knows every policy before the scan is cut into regions.
    ASSERT_TRUE(WaitFor(
        [&] {
          auto r = RunArgv({NdoBinary(), "members", "--data-dir", nodes_[0].data}, tmp_, "members", 10s);
          return r.exit_code == 0 && r.out.find("127.70.0.0/24") != std::string::npos &&
                 r.out.find("127.71.0.0/24") != std::string::npos &&
                 r.out.find("none: takes no distributed work") != std::string::npos;
        },
        30s));
  }

  std::string Submit(const Node& on, const std::string& targets) {
    auto r = RunArgv({NdoBinary(), "scan", targets, "-p", Ports(), "--scope", "127.0.0.0/8", "--rate", "1000",
                      "--data-dir", on.data},
                     tmp_, "submit", 30s);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }

  std::string Status(const Node& n, const std::string& id, bool json = false) {
    std::vector<std::string> argv = {NdoBinary(), "scan", "status", id, "--data-dir", n.data};
    if (json) argv.insert(argv.end(), {"--format", "json"});
    auto r = RunArgv(argv, tmp_, "status-" + n.name, 30s);
    return r.exit_code == 0 ? r.out : "";
  }

  uint16_t port_lo_ = 0;
  std::set<Probe> open_;
};

TEST_F(MeshPolicy, AMixedPolicyMeshScansBothRangesAndEveryViewIsExact) {
  AcceptingListeners listeners;
  Listen(listeners, "127.70.0.10", 8);
  Listen(listeners, "127.71.0.10", 8);
  ASSERT_GE(open_.size(), 12u);
  ASSERT_NO_FATAL_FAILURE(StartThree());
  std::string id = Submit(nodes_[0], "127.70.0.10,127.71.0.10");
  ASSERT_EQ(id.size(), 16u);
  ASSERT_TRUE(WaitFor([&] { return Status(nodes_[0], id).find(" complete ") != std::string::npos; }, 120s))
      << Status(nodes_[0], id);
  std::string status = Status(nodes_[0], id);
  EXPECT_EQ(status.find("refused by policy"), std::string::npos) << status;
  EXPECT_NE(status.find("c ("), std::string::npos) << "the node without policy is named:\n" << status;
  EXPECT_NE(status.find("no scan policy, takes no distributed work"), std::string::npos) << status;
  std::string why;
  bool exact = WaitFor(
      [&] {
        for (const Node& n : nodes_) {
          auto r = RunArgv({NdoBinary(), "view", id, "--vantage", "dmz", "--format", "json", "--data-dir", n.data},
                           tmp_, "view-" + n.name, 30s);
          if (r.exit_code != 0 || OpenProbes(r.out) != open_) {
            why = n.name + ": " + std::to_string(OpenProbes(r.out).size()) + " open of " +
                  std::to_string(open_.size()) + " " + r.err;
            return false;
          }
        }
        return true;
      },
      30s);
  EXPECT_TRUE(exact) << why;
  // Each range was scanned by the node allowed it, and only by it: a's
  // shards are of 127.70.0.10, b's of 127.71.0.10, c scanned none.
  auto scanned = [&](const Node& n) {
    std::string log = Slurp(n.log);
    size_t count = 0;
    for (size_t at = log.find("msg=\"shard scanned\""); at != std::string::npos;
         at = log.find("msg=\"shard scanned\"", at + 1))
      ++count;
    return count;
  };
  EXPECT_GT(scanned(nodes_[0]), 0u);
  EXPECT_GT(scanned(nodes_[1]), 0u);
  EXPECT_EQ(scanned(nodes_[2]), 0u) << "the node without policy scanned";
  for (const Node& n : nodes_) EXPECT_EQ(Slurp(n.log).find("outside this node's scan policy"), std::string::npos);
}

TEST_F(MeshPolicy, AScanOutsideEveryPolicySendsNothingAndIsReportedRefused) {
  AcceptingListeners listeners;
  Listen(listeners, "127.72.0.10", 8);
  ASSERT_GE(open_.size(), 4u);
  ASSERT_NO_FATAL_FAILURE(StartThree());
  std::string id = Submit(nodes_[1], "127.72.0.10");
  ASSERT_EQ(id.size(), 16u);
  // Complete at once: nothing is pending, every shard refused.
  ASSERT_TRUE(WaitFor([&] { return Status(nodes_[0], id).find(" complete ") != std::string::npos; }, 30s))
      << Status(nodes_[0], id);
  std::string status = Status(nodes_[0], id);
  EXPECT_NE(status.find("refused by policy: " + std::to_string(kPortSpan) + " probes, 127.72.0.10"), std::string::npos)
      << status;
  std::string json = Status(nodes_[2], id, true);
  EXPECT_NE(json.find("\"complete\":true"), std::string::npos) << json;
  EXPECT_NE(json.find("\"refused_probes\":" + std::to_string(kPortSpan)), std::string::npos) << json;
  EXPECT_NE(json.find("\"refused_ranges\":[\"127.72.0.10\"]"), std::string::npos) << json;
  EXPECT_NE(json.find("\"pending\":0"), std::string::npos) << json;
  // The views say so, and show nothing as closed.
  auto view = RunArgv({NdoBinary(), "view", id, "--vantage", "dmz", "--all", "--format", "json", "--data-dir",
                       nodes_[0].data},
                      tmp_, "view", 30s);
  EXPECT_EQ(view.exit_code, 0) << view.err;
  EXPECT_NE(view.err.find("refused by policy"), std::string::npos) << view.err;
  EXPECT_EQ(view.out.find("\"state\":\"closed\""), std::string::npos) << view.out;
  // Give any node that would scan the time to: a lease would be granted
  // within a second or two.
  std::this_thread::sleep_for(5s);
  EXPECT_EQ(listeners.accepted(), 0u) << "a connection reached a target outside every node's policy";
  for (const Node& n : nodes_) EXPECT_EQ(Slurp(n.log).find("lease granted"), std::string::npos) << n.name;
}

}  // namespace
}  // namespace ndo::testing
