// Distributed scans of real `ndo` daemons on loopback: five nodes in two
// vantages (dmz: a, b, c; internet: d, e) scan listeners on 127.N.0.10 and
// 127.N.0.11, and a node dies (or all restart) part-way. Each test ends with
// every surviving node's view of every vantage equal to a single-node scan
// of the same targets: no result lost, nothing invented; and a shard is
// scanned twice only where its first holder was killed.
//
// Safety: every address here is in 127.0.0.0/8, and every scan passes
// --scope 127.0.0.0/8.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/loopback_listeners.h"
#include "support/mesh_cluster.h"
#include "support/netns.h"
#include "support/run_command.h"

namespace ndo::testing {
namespace {

double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The stamp of a daemon's log line ("ts=2026-11-29T11:17:38.609Z ..."), in
// Unix seconds; 0 if it has none.
double LogLineSeconds(const std::string& line) {
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(line.c_str(), "ts=%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &ms) != 7)
    return 0;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<double>(timegm(&tm)) + ms / 1000.0;
}

using namespace std::chrono_literals;
using Probe = std::pair<std::string, int>;  // address, port

// The two target hosts: 127.N.0.10 and 127.N.0.11, N from the test
// process's pid, so that two runs on one machine (a CI job beside a
// developer's loop) never scan each other's listeners.
std::string TargetHost(int which) {
  return "127." + std::to_string(1 + getpid() % 250) + ".0." + std::to_string(10 + which);
}
std::string TargetHosts() { return TargetHost(0) + "-" + TargetHost(1); }
constexpr int kPortSpan = 2000;
// Per node: a shard of 200 probes takes about a second, so a scan of
// 20 shards per pool lasts several seconds on 2 or 3 nodes: time enough to
// kill one part-way.
constexpr const char* kRate = "200";
constexpr const char* kShards = "20";

int64_t WallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Open (address, port) pairs of JSON Lines output.
std::set<Probe> OpenProbes(const std::string& jsonl) {
  static const std::regex line(R"re("address":"([^"]+)".*?"port":(\d+).*?"state":"(\w+)")re");
  std::set<Probe> out;
  for (auto it = std::sregex_iterator(jsonl.begin(), jsonl.end(), line); it != std::sregex_iterator(); ++it)
    if ((*it)[3] == "open") out.insert({(*it)[1], std::stoi((*it)[2])});
  return out;
}

class MeshScan : public MeshProcess {
 protected:
  void SetUp() override {
    MeshProcess::SetUp();
    if (InNamespace()) {
      if (std::string why = ns_.Create(); !why.empty()) GTEST_SKIP() << why;
      prefix_ = ns_.Prefix();
    }
    port_lo_ = static_cast<uint16_t>(20000 + (getpid() % 40) * 200);
    std::mt19937 rng(static_cast<uint32_t>(getpid()));
    auto add = [&] {
      for (const std::string& host : {TargetHost(0), TargetHost(1)})
        for (int i = 0; i < 15; ++i) {
          uint16_t port = static_cast<uint16_t>(port_lo_ + rng() % kPortSpan);
          if (listeners_.Add(host, port)) open_.insert({host, port});
        }
    };
    if (InNamespace()) ASSERT_TRUE(ns_.RunInside(add));
    else add();
    ASSERT_GE(open_.size(), 20u);
  }
  void TearDown() override {
    for (auto& n : nodes_) Kill(n);
    ns_.Remove();
    MeshProcess::TearDown();
  }
  // Daemons and targets in a network namespace of the test's own.
  virtual bool InNamespace() const { return false; }

  std::string Ports() const { return std::to_string(port_lo_) + "-" + std::to_string(port_lo_ + kPortSpan - 1); }

  // a, b, c in dmz; d, e in internet; a is the seed.
  // `coordinator`: the node given the lowest priority, so that it takes the
  // coordinator role while alive (otherwise the lowest random id does).
  // `scanners`: nodes enrolled with a scanner token (the rest: operators).
  void StartFive(const char* coordinator = nullptr, const std::set<std::string>& scanners = {}) {
    const char* names[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; ++i) {
      Node& n = AddNode(names[i], "127.0.0." + std::to_string(i + 1));
      n.vantage = i < 3 ? "dmz" : "internet";
      if (scanners.count(n.name)) n.role = "scanner";
      if (i > 0) n.seeds = {nodes_[0].Address()};
      if (coordinator && n.name == coordinator) n.extra_args = {"--priority", "10"};
    }
    ASSERT_NO_FATAL_FAILURE(InitCluster(nodes_[0]));
    for (int i = 4; i >= 0; --i) ASSERT_NO_FATAL_FAILURE(Start(nodes_[i]));
    ASSERT_TRUE(WaitAgreed(All(), Names(All()), 60s));
    RecordIds();
  }

  std::string Submit(const Node& on, const char* rate = kRate) {
    auto r = RunArgv({NdoBinary(), "scan", TargetHosts(), "-p", Ports(), "--scope", "127.0.0.0/8", "--rate", rate,
                      "--shards", kShards, "--data-dir", on.data},
                     tmp_, "submit", 30s);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string id = r.out.substr(0, r.out.find('\n'));
    EXPECT_EQ(id.size(), 16u) << r.out << r.err;
    return id;
  }

  // `ndo scan status` of `n`, or empty when it cannot say.
  std::string Status(const Node& n, const std::string& id) {
    auto r = RunArgv({NdoBinary(), "scan", "status", id, "--data-dir", n.data}, tmp_, "status-" + n.name, 30s);
    return r.exit_code == 0 ? r.out : "";
  }

  bool Complete(const Node& n, const std::string& id) { return Status(n, id).find(" complete ") != std::string::npos; }

  // Done shards of `vantage` in n's status.
  int Done(const Node& n, const std::string& id, const std::string& vantage) {
    std::smatch m;
    std::string s = Status(n, id);
    if (!std::regex_search(s, m, std::regex("\\n  " + vantage + " +(\\d+) "))) return -1;
    return std::stoi(m[1]);
  }

  // Nodes working on `vantage`'s pool, as n's status names them.
  std::vector<std::string> Working(const Node& n, const std::string& id, const std::string& vantage) {
    std::smatch m;
    std::string s = Status(n, id);
    if (!std::regex_search(s, m, std::regex("\\n  " + vantage + " .* ([a-z,]+|-)\\n"))) return {};
    std::vector<std::string> out;
    std::stringstream ss(m[1]);
    std::string part;
    while (std::getline(ss, part, ','))
      if (part != "-") out.push_back(part);
    return out;
  }

  std::set<Probe> PoolView(const Node& n, const std::string& id, const std::string& vantage) {
    auto r = RunArgv({NdoBinary(), "view", id, "--vantage", vantage, "--format", "json", "--data-dir", n.data}, tmp_,
                     "view-" + n.name, 30s);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return OpenProbes(r.out);
  }

  // The same targets scanned by one node alone (no mesh).
  std::set<Probe> SingleNodeScan() {
    std::vector<std::string> argv = prefix_;  // inside the namespace, if any
    for (const std::string& a : {NdoBinary(), std::string("scan"), TargetHosts(), std::string("-p"), Ports(),
                                 std::string("--scope"), std::string("127.0.0.0/8"), std::string("--local"),
                                 std::string("--format"), std::string("json"), std::string("--no-progress"),
                                 std::string("--data-dir"), tmp_ + "/single"})
      argv.push_back(a);
    auto r = RunArgv(argv, tmp_, "single", 120s);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return OpenProbes(r.out);
  }

  // Every survivor, both vantages: the single-node scan, exactly.
  // The last shards' bundles reach every node within a few fetch rounds
  // (one a second) after the state says complete: waited for, up to 30 s,
  // and the time printed.
  void ExpectViewsEqualSingleNodeScan(const std::string& id, const std::vector<Node*>& survivors) {
    std::set<Probe> single = SingleNodeScan();
    EXPECT_EQ(single, open_) << "the single-node scan itself should find exactly the listeners";
    auto t0 = SteadyClock::now();
    bool equal = WaitFor(
        [&] {
          for (Node* n : survivors)
            for (const char* v : {"dmz", "internet"})
              if (PoolView(*n, id, v) != single) return false;
          return true;
        },
        30s);
    std::printf("[ scan     ] every survivor's views equal the single-node scan %.2f s after completion\n",
                std::chrono::duration<double>(SteadyClock::now() - t0).count());
    if (!equal)
      for (Node* n : survivors)
        for (const char* v : {"dmz", "internet"}) EXPECT_EQ(PoolView(*n, id, v), single) << n->name << " " << v;
  }

  // (vantage, shard) -> the nodes whose logs say they scanned it.
  std::map<std::pair<std::string, int>, std::vector<std::string>> Scanned() {
    static const std::regex line(R"re(msg="shard scanned" scan=\w+ vantage=(\w+) shard=(\d+))re");
    std::map<std::pair<std::string, int>, std::vector<std::string>> out;
    for (const auto& n : nodes_) {
      std::string log = Slurp(n.log);
      for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator(); ++it)
        out[{(*it)[1], std::stoi((*it)[2])}].push_back(n.name);
    }
    return out;
  }

  // A shard scanned by two nodes must have had a first holder that was
  // killed (whose scan may or may not have finished before it died).
  void ExpectRepeatsOnlyAfterAKill(const std::set<std::string>& killed) {
    for (const auto& [shard, by] : Scanned()) {
      if (by.size() < 2) continue;
      bool any_killed = false;
      for (const auto& name : by) any_killed |= killed.count(name) > 0;
      EXPECT_TRUE(any_killed) << shard.first << " shard " << shard.second << " scanned " << by.size()
                              << " times, by nodes none of which was killed";
    }
  }

  bool WaitComplete(const std::vector<Node*>& nodes, const std::string& id, SteadyClock::duration timeout) {
    return WaitFor(
        [&] {
          for (Node* n : nodes)
            if (!Complete(*n, id)) return false;
          return true;
        },
        timeout);
  }

  Node& ByName(const std::string& name) {
    for (auto& n : nodes_)
      if (n.name == name) return n;
    throw std::runtime_error("no node " + name);
  }

  std::vector<Node*> AllBut(const std::set<std::string>& names) {
    std::vector<Node*> out;
    for (auto& n : nodes_)
      if (!names.count(n.name)) out.push_back(&n);
    return out;
  }

  Netns ns_;
  AcceptingListeners listeners_;
  std::set<Probe> open_;
  uint16_t port_lo_ = 20000;
};

TEST_F(MeshScan, AWorkerKilledMidScan) {
  ASSERT_NO_FATAL_FAILURE(StartFive());
  std::string coordinator = Members(nodes_[0]).coordinator_id;
  std::string id = Submit(ByName("b"));
  // A dmz worker that is not the coordinator, while it holds a shard.
  std::string victim;
  ASSERT_TRUE(WaitFor(
      [&] {
        if (Done(nodes_[0], id, "dmz") < 2) return false;
        for (const auto& name : Working(nodes_[0], id, "dmz"))
          if (ids_[name] != coordinator) victim = name;
        return !victim.empty();
      },
      60s));
  Kill(ByName(victim));
  std::printf("[ scan     ] killed worker %s with %d of %s dmz shards done\n", victim.c_str(),
              Done(nodes_[0], id, "dmz"), kShards);
  auto survivors = AllBut({victim});
  ASSERT_TRUE(WaitComplete(survivors, id, 120s)) << Status(nodes_[0], id);
  ExpectViewsEqualSingleNodeScan(id, survivors);
  ExpectRepeatsOnlyAfterAKill({victim});
}

// Roles: b (dmz) and e (internet) joined with a scanner token. b's `ndo
// scan` and e's `ndo scan pause` are refused, clearly and before anything
// reaches the mesh, and logged; c, an operator by its token, submits; the
// scanners still scan their shards, and every view ends complete and exact
// (the refused pause never happened).
TEST_F(MeshScan, AScannerNodeMayNotSubmitOrPauseButScansWhatAnOperatorSubmits) {
  ASSERT_NO_FATAL_FAILURE(StartFive(nullptr, {"b", "e"}));
  auto refused = RunArgv({NdoBinary(), "scan", TargetHosts(), "-p", Ports(), "--scope", "127.0.0.0/8", "--rate", kRate,
                          "--shards", kShards, "--data-dir", ByName("b").data},
                         tmp_, "submit-scanner", 30s);
  EXPECT_NE(refused.exit_code, 0) << refused.out;
  EXPECT_NE(refused.err.find("this node's certificate gives it the role scanner; only an operator may submit scans"),
            std::string::npos)
      << refused.err;
  EXPECT_NE(refused.err.find("ndo token create --role operator"), std::string::npos) << refused.err;
  EXPECT_EQ(refused.out, "") << "no scan id for a refused submission";
  EXPECT_TRUE(WaitFor([&] { return Slurp(ByName("b").log).find("msg=\"control request refused\"") != std::string::npos; },
                      10s))
      << "the refusal is logged";

  std::string id = Submit(ByName("c"));
  ASSERT_EQ(id.size(), 16u);
  auto pause = RunArgv({NdoBinary(), "scan", "pause", id, "--data-dir", ByName("e").data}, tmp_, "pause-scanner", 30s);
  EXPECT_NE(pause.exit_code, 0) << pause.out;
  EXPECT_NE(pause.err.find("the role scanner; only an operator may pause scans"), std::string::npos) << pause.err;

  ASSERT_TRUE(WaitComplete(All(), id, 120s)) << Status(nodes_[0], id);
  EXPECT_EQ(Status(nodes_[0], id).find("paused"), std::string::npos);
  ExpectViewsEqualSingleNodeScan(id, All());
  size_t by_scanners = 0;
  for (const auto& [shard, by] : Scanned())
    for (const auto& name : by) by_scanners += name == "b" || name == "e";
  EXPECT_GT(by_scanners, 0u) << "scanner nodes scan the shards they lease";
}

TEST_F(MeshScan, TheCoordinatorKilledMidScan) {
  ASSERT_NO_FATAL_FAILURE(StartFive());
  View before = Members(nodes_[0]);
  std::string old = before.coordinator_id;
  Node* coord = ById(old);
  ASSERT_NE(coord, nullptr);
  std::string id = Submit(ByName(coord->name == "b" ? "c" : "b"));
  Node* watcher = nullptr;
  for (auto& n : nodes_)
    if (&n != coord) watcher = &n;
  ASSERT_TRUE(WaitFor([&] { return Done(*watcher, id, "dmz") >= 2 && Done(*watcher, id, "internet") >= 1; }, 60s));
  int64_t killed_at = WallMs();
  Kill(*coord);
  std::printf("[ scan     ] killed the coordinator %s with %d/%d shards done (dmz/internet)\n", coord->name.c_str(),
              Done(*watcher, id, "dmz"), Done(*watcher, id, "internet"));
  auto survivors = AllBut({coord->name});
  ASSERT_TRUE(WaitComplete(survivors, id, 180s)) << Status(*watcher, id);
  // Work resumed: the first lease the new coordinator granted, after the kill.
  static const std::regex granted(R"re(ts=(\S+) level=info msg="lease granted".* epoch=(\d+))re");
  int64_t first_grant = 0;
  for (Node* n : survivors) {
    std::string log = Slurp(n->log);
    for (auto it = std::sregex_iterator(log.begin(), log.end(), granted); it != std::sregex_iterator(); ++it) {
      if (std::stoull((*it)[2]) <= before.epoch) continue;
      std::tm tm{};
      std::string ts = (*it)[1];
      strptime(ts.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
      int64_t ms = static_cast<int64_t>(timegm(&tm)) * 1000 + std::stoi(ts.substr(20, 3));
      if (ms >= killed_at && (first_grant == 0 || ms < first_grant)) first_grant = ms;
    }
  }
  ASSERT_GT(first_grant, 0) << "no lease granted by a new coordinator";
  double resumed_s = (first_grant - killed_at) / 1000.0;
  std::printf("[ scan     ] the new coordinator granted its first lease %.2f s after the kill\n", resumed_s);
  EXPECT_LE(resumed_s, 5.0);
  ExpectViewsEqualSingleNodeScan(id, survivors);
  ExpectRepeatsOnlyAfterAKill({coord->name});
}

TEST_F(MeshScan, EveryNodeRestartedMidScan) {
  ASSERT_NO_FATAL_FAILURE(StartFive());
  std::string id = Submit(ByName("c"));
  ASSERT_TRUE(WaitFor([&] { return Done(nodes_[0], id, "dmz") >= 3; }, 60s));
  for (auto& n : nodes_) Kill(n);
  std::printf("[ scan     ] killed all five with %d dmz shards done; restarting them\n", Done(nodes_[0], id, "dmz"));
  for (auto& n : nodes_) ASSERT_NO_FATAL_FAILURE(Start(n));
  ASSERT_TRUE(WaitAgreed(All(), Names(All()), 60s));
  ASSERT_TRUE(WaitComplete(All(), id, 180s)) << Status(nodes_[0], id);
  ExpectViewsEqualSingleNodeScan(id, All());
  std::set<std::string> everyone;
  for (auto& n : nodes_) everyone.insert(n.name);
  ExpectRepeatsOnlyAfterAKill(everyone);
}

TEST_F(MeshScan, PauseAndStopReachEveryNode) {
  ASSERT_NO_FATAL_FAILURE(StartFive());
  std::string id = Submit(ByName("a"));
  ASSERT_TRUE(WaitFor([&] { return Done(nodes_[0], id, "dmz") >= 1; }, 60s));
  auto paused = RunArgv({NdoBinary(), "scan", "pause", id, "--data-dir", ByName("e").data}, tmp_, "pause", 30s);
  ASSERT_EQ(paused.exit_code, 0) << paused.err;
  auto t0 = SteadyClock::now();
  ASSERT_TRUE(WaitFor(
      [&] {
        for (auto& n : nodes_)
          if (Status(n, id).find(" paused ") == std::string::npos) return false;
        return true;
      },
      10s));
  double reach = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  std::printf("[ scan     ] pause seen by all five after %.2f s\n", reach);
  EXPECT_LE(reach, 2.0);
  // Paused: no shard is finished any more once the ones in hand stopped.
  std::this_thread::sleep_for(1500ms);
  int done = Done(nodes_[0], id, "dmz");
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(Done(nodes_[0], id, "dmz"), done) << "shards finished while paused";
  auto stopped = RunArgv({NdoBinary(), "scan", "stop", id, "--data-dir", ByName("d").data}, tmp_, "stop", 30s);
  ASSERT_EQ(stopped.exit_code, 0) << stopped.err;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (auto& n : nodes_)
          if (Status(n, id).find(" stopped ") == std::string::npos) return false;
        return true;
      },
      10s));
  // A stop is final: resume is refused.
  auto resumed = RunArgv({NdoBinary(), "scan", "resume", id, "--data-dir", ByName("b").data}, tmp_, "resume", 30s);
  EXPECT_NE(resumed.exit_code, 0);
  EXPECT_NE(resumed.err.find("final"), std::string::npos) << resumed.err;
}

// A partition held 40 s and healed, in a network namespace (root, iproute2
// and nftables; skipped elsewhere): {a, b, d} keep the coordinator's side
// (d, given the lowest priority) and scan on, their switch never engaged; {c, e}, two of five, are cut off from most of the mesh, so
// their dead man's switch stops them; after the heal the scan completes and
// every node's views equal the single-node scan. Shards may be scanned
// twice here: a holder on the other side looks dead.
class MeshScanPartition : public MeshScan {
 protected:
  bool InNamespace() const override { return true; }
};

TEST_F(MeshScanPartition, APartitionHeldAndHealed) {
  // The switch after 10 s cut off (the minority sees the others dead only
  // 10 to 15 s into the partition, and stays cut off for the rest of the 40 s).
  node_extra_args_ = {"--dead-man-after", "10"};
  // d coordinates, so the majority keeps its coordinator: it must not stop.
  ASSERT_NO_FATAL_FAILURE(StartFive("d"));
  // Slow enough (50 probes/s a node) that the scan outlasts the partition.
  std::string id = Submit(ByName("a"), "50");
  ASSERT_TRUE(WaitFor([&] { return Done(nodes_[0], id, "dmz") >= 1; }, 60s));
  ASSERT_TRUE(ns_.Partition("127.0.0.1, 127.0.0.2, 127.0.0.4", "127.0.0.3, 127.0.0.5", tmp_));
  const double partitioned_at = UnixSeconds();
  std::printf("[ scan     ] partitioned {a,b,d} | {c,e} with %d dmz shards done\n", Done(nodes_[0], id, "dmz"));
  std::this_thread::sleep_for(40s);
  int done_cut_off = Done(nodes_[0], id, "dmz");
  ASSERT_TRUE(ns_.Heal());
  std::printf("[ scan     ] healed with %d dmz shards done on a\n", done_cut_off);
  ASSERT_TRUE(WaitComplete(All(), id, 240s)) << Status(nodes_[0], id);
  ExpectViewsEqualSingleNodeScan(id, All());
  // The minority's switch: it stopped starting probes while cut off. On
  // failure, what each minority node saw of the mesh says why.
  for (const char* name : {"c", "e"}) {
    std::string log = Slurp(ByName(name).log);
    std::string story;
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);)
      if (line.find("member ") != std::string::npos || line.find("coordinator") != std::string::npos ||
          line.find("dead man") != std::string::npos)
        story += line + "\n";
    size_t engaged = log.find("dead man's switch engaged");
    EXPECT_NE(engaged, std::string::npos) << name << " saw:\n" << story;
    if (engaged == std::string::npos) continue;
    // When, from the log line's stamp: within the 40 s, and how soon.
    size_t line = log.rfind('\n', engaged);
    double at = LogLineSeconds(log.substr(line == std::string::npos ? 0 : line + 1));
    std::printf("[ scan     ] %s's dead man's switch engaged %.1f s into the partition\n", name, at - partitioned_at);
    EXPECT_LT(at - partitioned_at, 40.0);
  }
  // The majority kept its contact, and its scanning, all along.
  for (const char* name : {"a", "b", "d"})
    EXPECT_EQ(Slurp(ByName(name).log).find("dead man's switch engaged"), std::string::npos) << name;
}

}  // namespace
}  // namespace ndo::testing
