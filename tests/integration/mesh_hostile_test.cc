// Attacks by an enrolled but hostile member on a secured mesh of real `ndo`
// daemons (issue 13, "Trust boundaries between vantages"; docs/security.md,
// "Attacks tested"). The mesh:
//
//   a  operator (the cluster's first node), vantage dmz, may scan 127.70.0.0/24
//   b  scanner (scanner token), vantage dmz, may scan 127.70.0.0/24
//   h  scanner (scanner token), vantage internet, no scan policy: the
//      stolen machine. support/hostile_member.cc speaks the work protocol
//      with h's certificate and key, as a member does.
//
// a submits a scan of 127.70.0.10 (listeners) and 127.73.0.10 (no node may
// scan it) for both vantages: the dmz pool's shard of 127.70.0.10 is done,
// its other shard and every shard of the internet pool are refused by
// policy and stay not done. Once every node holds the same settled state
// and views, each test runs one attack and checks that it is refused (the
// helper's reply, or the reason in the target's log), and that no node's
// scan states, status or views changed: the scan stays running, and the
// forged results (127.66.6.6) appear nowhere.
//
// The attack "a scan outside every node's policy" is MeshPolicy's
// AScanOutsideEveryPolicySendsNothingAndIsReportedRefused
// (mesh_policy_test.cc).
//
// Safety: every address is in 127.0.0.0/8; every scan (a's, and the one the
// helper submits) has scope 127.0.0.0/8.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
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

constexpr int kPortSpan = 400;
const char* const kForgedHost = "127.66.6.6";  // what hostile_member's forged bundles hold

std::set<Probe> OpenProbes(const std::string& jsonl) {
  static const std::regex line(R"re("address":"([^"]+)".*?"port":(\d+).*?"state":"(\w+)")re");
  std::set<Probe> out;
  for (auto it = std::sregex_iterator(jsonl.begin(), jsonl.end(), line); it != std::sregex_iterator(); ++it)
    if ((*it)[3] == "open") out.insert({(*it)[1], std::stoi((*it)[2])});
  return out;
}

// What changes with the clock alone in `ndo scan status` / `view list`
// JSON (elapsed time, rates, ETAs) is blanked, so that equal outputs mean
// an equal state.
std::string WithoutClock(const std::string& json) {
  static const std::regex clocky(R"re("(elapsed_s|probes_per_s|eta_s|age_s|elapsed)":[^,}\]]*)re");
  return std::regex_replace(json, clocky, "\"$1\":_");
}

struct HelperReply {
  int exit_code = -1;
  std::string out, err;
  // "put", "push", "lease" -> the line's kind and error.
  std::map<std::string, std::pair<std::string, std::string>> replies;
  std::string Describe() const { return "exit " + std::to_string(exit_code) + "\n" + out + err; }
};

class MeshHostile : public MeshProcess {
 protected:
  void SetUp() override {
    MeshProcess::SetUp();
    port_lo_ = static_cast<uint16_t>(24000 + (getpid() % 40) * 400);
  }

  std::string Ports() const { return std::to_string(port_lo_) + "-" + std::to_string(port_lo_ + kPortSpan - 1); }

  void Listen(AcceptingListeners& on, const std::string& host, int count) {
    std::mt19937 rng(static_cast<uint32_t>(getpid()) ^ static_cast<uint32_t>(std::hash<std::string>{}(host)));
    for (int i = 0; i < count; ++i) {
      auto port = static_cast<uint16_t>(port_lo_ + rng() % kPortSpan);
      if (on.Add(host, port)) open_.insert({host, port});
    }
  }

  Node& A() { return nodes_[0]; }
  Node& B() { return nodes_[1]; }
  Node& H() { return nodes_[2]; }

  // The mesh, the scan, and every node holding the same settled state.
  void StartMeshAndScan() {
    Listen(listeners_, "127.70.0.10", 6);
    ASSERT_GE(open_.size(), 4u);
    const char* names[] = {"a", "b", "h"};
    const char* vantages[] = {"dmz", "dmz", "internet"};
    const char* roles[] = {"operator", "scanner", "scanner"};
    const char* allow[] = {"127.70.0.0/24", "127.70.0.0/24", ""};
    for (int i = 0; i < 3; ++i) {
      Node& n = AddNode(names[i], "127.0.0." + std::to_string(i + 1));
      n.vantage = vantages[i];
      n.role = roles[i];
      n.allow = allow[i];
      if (i > 0) n.seeds = {nodes_[0].Address()};
    }
    ASSERT_NO_FATAL_FAILURE(InitCluster(A()));
    for (int i = 2; i >= 0; --i) ASSERT_NO_FATAL_FAILURE(Start(nodes_[i]));
    ASSERT_TRUE(WaitAgreed(All(), Names(All()), 60s));
    RecordIds();
    // Every node's policy is known before the scan is cut into regions.
    ASSERT_TRUE(WaitFor(
        [&] {
          auto r = RunArgv({NdoBinary(), "members", "--data-dir", A().data}, tmp_, "members", 10s);
          return r.exit_code == 0 && r.out.find("127.70.0.0/24") != std::string::npos &&
                 r.out.find("none: takes no distributed work") != std::string::npos;
        },
        30s));
    auto r = RunArgv({NdoBinary(), "scan", "127.70.0.10,127.73.0.10", "-p", Ports(), "--scope", "127.0.0.0/8",
                      "--rate", "1000", "--data-dir", A().data},
                     tmp_, "submit", 30s);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    scan_ = r.out.substr(0, r.out.find('\n'));
    ASSERT_EQ(scan_.size(), 16u) << r.out;
    ASSERT_TRUE(WaitFor([&] { return Status(A()).find(" complete ") != std::string::npos; }, 120s)) << Status(A());
    // Settled: every node holds the bundles (its dmz view is what listens)
    // and the same state, twice in a row.
    std::string why;
    ASSERT_TRUE(WaitFor(
        [&] {
          for (Node& n : nodes_) {
            auto v = PoolView(n, "dmz");
            if (OpenProbes(v) != open_) return why = n.name + "'s dmz view is not complete yet", false;
          }
          std::string first;
          for (Node& n : nodes_) {
            std::string d = Digests(n);
            if (d.find("scan " + scan_) == std::string::npos) return why = n.name + ": " + d, false;
            if (!first.empty() && d != first) return why = "states differ: " + first + " / " + d, false;
            first = d;
          }
          if (first != settled_) return settled_ = first, why = "not twice the same yet", false;
          return true;
        },
        60s))
        << why;
    std::string status = Status(A());
    ASSERT_NE(status.find("refused by policy"), std::string::npos) << status;
    for (Node& n : nodes_) offsets_[n.name] = Slurp(n.log).size();
    for (Node& n : nodes_) before_[n.name] = Snapshot(n);
  }

  std::string Status(Node& n, bool json = false) {
    std::vector<std::string> argv = {NdoBinary(), "scan", "status", scan_, "--data-dir", n.data};
    if (json) argv.insert(argv.end(), {"--format", "json"});
    auto r = RunArgv(argv, tmp_, "status-" + n.name, 30s);
    return r.exit_code == 0 ? r.out : "error: " + r.err;
  }

  std::string PoolView(Node& n, const std::string& vantage) {
    auto r = RunArgv({NdoBinary(), "view", scan_, "--vantage", vantage, "--all", "--format", "json", "--data-dir",
                      n.data},
                     tmp_, "view-" + n.name, 30s);
    return r.exit_code == 0 ? r.out : "error: " + r.err;
  }

  HelperReply Helper(const std::string& attack, const Node& target, std::vector<std::string> extra) {
    std::vector<std::string> argv = {NDO_TEST_HOSTILE, attack, "--data-dir", H().data, "--target", target.Address()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto r = RunArgv(argv, tmp_, "hostile", 60s);
    HelperReply out{r.exit_code, r.out, r.err, {}};
    static const std::regex line(R"re((\w+): kind=(\S+) error="(.*)")re");
    for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), line); it != std::sregex_iterator(); ++it)
      out.replies[(*it)[1]] = {(*it)[2], (*it)[3]};
    return out;
  }

  // Every scan state `n` holds, with its digest (the helper's kSync).
  std::string Digests(Node& n) {
    auto r = Helper("digests", n, {});
    return r.exit_code == 0 ? r.out : "error: " + r.Describe();
  }

  // All that a node shows of the distributed scans.
  std::map<std::string, std::string> Snapshot(Node& n) {
    std::map<std::string, std::string> s;
    s["states"] = Digests(n);
    std::string done;
    for (size_t at = s["states"].find("done "); at != std::string::npos; at = s["states"].find("\ndone ", at + 1))
      done += s["states"].substr(at, s["states"].find('\n', at + 1) - at) + "\n";
    s["done records"] = done;
    s["status"] = WithoutClock(Status(n, true));
    auto list = RunArgv({NdoBinary(), "view", "list", "--format", "json", "--data-dir", n.data}, tmp_, "list", 30s);
    s["view list"] = WithoutClock(list.exit_code == 0 ? list.out : "error: " + list.err);
    s["dmz view"] = PoolView(n, "dmz");
    s["internet view"] = PoolView(n, "internet");
    return s;
  }

  // The attack has had the time to spread (gossip is sub-second, the
  // anti-entropy rounds a few seconds); then nothing changed anywhere.
  // `except`: a part not compared (see the forged-lease test).
  void ExpectNoNodeChanged(const std::string& except = "") {
    std::this_thread::sleep_for(6s);
    for (Node& n : nodes_) {
      auto after = Snapshot(n);
      for (const auto& [what, was] : before_[n.name]) {
        if (what != except) {
          EXPECT_EQ(after[what], was) << n.name << "'s " << what << " changed";
        }
        EXPECT_EQ(after[what].find(kForgedHost), std::string::npos) << n.name << "'s " << what << " shows forged results";
      }
      EXPECT_NE(after["status"].find("\"control\":\"running\""), std::string::npos) << n.name << ": " << after["status"];
    }
  }

  // What `n` logged since the attack began.
  std::string LogSince(Node& n) { return Slurp(n.log).substr(offsets_[n.name]); }

  // Whether `n` logged a line holding every one of `words` since the attack.
  bool Logged(Node& n, const std::vector<std::string>& words) {
    std::string log = LogSince(n);
    size_t start = 0;
    while (start < log.size()) {
      size_t end = log.find('\n', start);
      if (end == std::string::npos) end = log.size();
      std::string line = log.substr(start, end - start);
      bool all = true;
      for (const auto& w : words) all = all && line.find(w) != std::string::npos;
      if (all) return true;
      start = end + 1;
    }
    return false;
  }

  // Runs `attack` against `target` until one of `targets` logs a line with
  // every one of `words` (the refusal under test): a node that does not
  // know the certificate of a record's signer yet sets the record aside
  // for that reason and fetches it, so the attacker (as a real one would)
  // tries again, up to three times, until the refusal under test is logged
  // and any put was answered on its merits. The last reply.
  HelperReply Attack(const std::string& attack, Node& target, const std::vector<std::string>& extra,
                     const std::vector<Node*>& targets_logging, const std::vector<std::string>& words) {
    HelperReply r;
    std::vector<std::string> args = extra;
    for (int attempt = 0; attempt < 3; ++attempt) {
      r = Helper(attack, target, args);
      if (r.exit_code != 0) return r;
      // Again at the same shard (the helper picks the first one not done,
      // which would be the next one if the first attack got through).
      std::smatch shard;
      if (attempt == 0 && std::regex_search(r.out, shard, std::regex(R"re(shard \S+ (\d+))re")))
        args.insert(args.end(), {"--shard", shard[1]});
      bool logged = WaitFor(
          [&] {
            for (Node* n : targets_logging)
              if (Logged(*n, words)) return true;
            return false;
          },
          attempt == 2 ? 10s : 5s);
      // A put is judged before the push that follows it, so its first
      // answer may be that same "not known yet".
      bool put_judged = !r.replies.count("put") ||
                        r.replies["put"].second.find("certificate not known here") == std::string::npos;
      if (logged && put_judged) return r;
    }
    std::string logs;
    for (Node* n : targets_logging) logs += "---- " + n->name + " since the attack:\n" + LogSince(*n);
    ADD_FAILURE() << "no refusal logged with every one of the words of " << ::testing::PrintToString(words) << "\n"
                  << r.Describe() << logs;
    return r;
  }

  uint16_t port_lo_ = 0;
  AcceptingListeners listeners_;
  std::set<Probe> open_;
  std::string scan_, settled_;
  std::map<std::string, size_t> offsets_;
  std::map<std::string, std::map<std::string, std::string>> before_;
};

TEST_F(MeshHostile, AScannerSubmittingAScanIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartMeshAndScan());
  // A target inside the dmz nodes' policy, listening: were the scan taken,
  // a or b would lease its shard and connect within seconds.
  AcceptingListeners bait;
  uint16_t port = static_cast<uint16_t>(port_lo_ + 7);
  ASSERT_TRUE(bait.Add("127.70.0.11", port));
  auto r = Attack("submit", B(), {"--vantage", "dmz", "--targets", "127.70.0.11", "--ports", std::to_string(port)},
                  {&B()}, {"scan state refused", "not an operator"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.out, m, std::regex("scan ([0-9a-f]{16})"))) << r.out;
  std::string forged = m[1];
  ExpectNoNodeChanged();
  for (Node& n : nodes_) EXPECT_EQ(Digests(n).find(forged), std::string::npos) << n.name << " holds the scan";
  EXPECT_EQ(bait.accepted(), 0u) << "a node scanned the target of a scan a scanner submitted";
}

TEST_F(MeshHostile, AScannerPausingAScanIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartMeshAndScan());
  auto r = Attack("pause", B(), {"--scan", scan_}, {&B()}, {"control register refused", scan_, "not an operator"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ExpectNoNodeChanged();
}

TEST_F(MeshHostile, AScannerStoppingAScanIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartMeshAndScan());
  auto r = Attack("stop", A(), {"--scan", scan_}, {&A()}, {"control register refused", scan_, "not an operator"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ExpectNoNodeChanged();
}

TEST_F(MeshHostile, AForgedBundleForAShardNotLeasedIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartMeshAndScan());
  // A shard of h's own vantage that nobody leased, the done record naming
  // the lease as it is (none): only the lease check can refuse it.
  auto r = Attack("forge-bundle", B(), {"--scan", scan_, "--vantage", "internet"}, {&B()},
                  {"done record refused", "did not hold the lease"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.replies["put"].first, "refused") << r.Describe();
  EXPECT_NE(r.replies["put"].second.find("did not hold the lease"), std::string::npos) << r.Describe();
  ExpectNoNodeChanged();
}

// DISABLED: this attack is NOT refused yet, and the test fails as it should.
// Leases are not signed, so a member can push a lease in its own name and
// then a done record that passes "the signer held the lease". Signing
// leases by the coordinator that granted them closes it (docs/security.md,
// "Left"; issue 13 stays open for it). Run it with
// --gtest_also_run_disabled_tests.
TEST_F(MeshHostile, DISABLED_AForgedBundleWithALeaseForgedInItsOwnNameIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartMeshAndScan());
  // The same, by a member that forges the lease too: in the put, and in the
  // pushed state (held by itself, of the latest epoch, a counter above
  // the coordinator's), so that "the signer held the lease" would hold of
  // the lease it brought. Leases are the coordinator's to grant: one that
  // a member brings for itself proves nothing, and the done record and
  // the bundle must be refused. The forged lease itself is expired (the
  // done check does not look at expiry): leases are not signed, so a
  // lease a member pushes merges like any other (docs/security.md,
  // "Left"), and the whole states' digests are not compared here; their
  // done records, status and views are.
  auto r = Attack("forge-bundle", B(), {"--scan", scan_, "--vantage", "internet", "--forge-lease"}, {&B()},
                  {"done record refused", "did not hold the lease"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.replies["put"].first, "refused") << r.Describe();
  ExpectNoNodeChanged("states");
}

TEST_F(MeshHostile, ADoneRecordInAnotherNodesNameIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartMeshAndScan());
  // The dmz shard that is done, in the name of the node that held its
  // lease, with that lease: only the signature (h's key, not that node's)
  // is wrong. Sent to a and to b: one of them is the node named, which
  // knows its own certificate whatever else it has learnt.
  for (Node* target : {&A(), &B()}) {
    auto r = Helper("impersonate", *target, {"--scan", scan_, "--vantage", "dmz"});
    ASSERT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.replies["put"].first, "refused") << target->name << ": " << r.Describe();
  }
  auto r = Attack("impersonate", B(), {"--scan", scan_, "--vantage", "dmz"}, {&A(), &B()},
                  {"done record refused", "bad signature"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  ExpectNoNodeChanged();
}

TEST_F(MeshHostile, ADoneRecordForAPoolOfAnotherVantageIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartMeshAndScan());
  // A dmz shard not done (refused by policy), correctly signed by h, whose
  // certificate binds the internet vantage.
  auto r = Attack("other-vantage", B(), {"--scan", scan_, "--vantage", "dmz"}, {&B()},
                  {"done record refused", "for a pool of vantage dmz signed by a node of vantage internet"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.replies["put"].first, "refused") << r.Describe();
  EXPECT_NE(r.replies["put"].second.find("vantage internet"), std::string::npos) << r.Describe();
  ExpectNoNodeChanged();
}

TEST_F(MeshHostile, AVantageClaimedAgainstTheCertificateIsRefused) {
  ASSERT_NO_FATAL_FAILURE(StartMeshAndScan());
  // To the coordinator, which grants leases: a request for dmz work, and
  // leases of every dmz shard not done reported as held.
  View v = Members(A());
  ASSERT_TRUE(v.ok) << v.error;
  Node* coordinator = ById(v.coordinator_id);
  ASSERT_NE(coordinator, nullptr) << v.Describe();
  auto r = Attack("claim-vantage", *coordinator, {"--scan", scan_, "--vantage", "dmz"}, {coordinator},
                  {"work request refused", "member of vantage internet asked for vantage dmz"});
  ASSERT_EQ(r.exit_code, 0) << r.Describe();
  EXPECT_EQ(r.replies["lease"].first, "refused") << r.Describe();
  EXPECT_NE(r.replies["lease"].second.find("member of vantage internet asked for vantage dmz"), std::string::npos)
      << r.Describe();
  ExpectNoNodeChanged();
}

}  // namespace
}  // namespace ndo::testing
