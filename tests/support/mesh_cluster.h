// The fixture of the multi-process mesh tests (mesh_process_test.cc,
// mesh_security_test.cc): real `ndo agent` / `ndo join` daemons on loopback
// addresses, watched through `ndo members --format json` (their control sockets),
// and helpers that send raw datagrams and streams to them. Safety rule:
// every packet these tests send, and every address a daemon is given, is in
// 127.0.0.0/8 (or ::1).
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/run_command.h"

namespace ndo::testing {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------
// What `ndo members --format json` says.

struct MemberView {
  std::string id, name, address, state;
  uint64_t incarnation = 0;
  bool self = false;
  std::string vantage;
};

struct View {
  bool ok = false;
  std::string error;
  std::map<std::string, MemberView> by_name;
  std::string self_id, coordinator_id;
  uint64_t epoch = 0;

  std::string StateOf(const std::string& name) const {
    auto it = by_name.find(name);
    return it == by_name.end() ? "unknown" : it->second.state;
  }
  std::string Describe() const {
    if (!ok) return "error: " + error;
    std::string s;
    for (const auto& [name, m] : by_name) s += name + "=" + m.state + "/" + std::to_string(m.incarnation) + " ";
    return s + "coordinator=" + coordinator_id.substr(0, 8) + " epoch=" + std::to_string(epoch);
  }
};

inline View ParseMembers(const CommandResult& r) {
  View v;
  if (r.exit_code != 0) {
    v.error = r.err;
    return v;
  }
  static const std::regex member(
      R"re("record":"member","id":"([0-9a-f]{32})","name":"([^"]*)","vantage":"([^"]*)","address":"([^"]*)","state":"(\w+)","incarnation":(\d+),"priority":\d+,"self":(true|false))re");
  static const std::regex coordinator(R"re("record":"coordinator","id":(?:"([0-9a-f]{32})"|null).*"epoch":(\d+))re");
  std::smatch m;
  std::string::const_iterator begin = r.out.begin();
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), member); it != std::sregex_iterator(); ++it) {
    MemberView mv{(*it)[1], (*it)[2], (*it)[4], (*it)[5], std::stoull((*it)[6]), (*it)[7] == "true", (*it)[3]};
    if (mv.self) v.self_id = mv.id;
    v.by_name[mv.name] = mv;
  }
  if (std::regex_search(begin, r.out.cend(), m, coordinator)) {
    v.coordinator_id = m[1];
    v.epoch = std::stoull(m[2]);
  }
  v.ok = !v.by_name.empty() && !v.self_id.empty();
  if (!v.ok) v.error = "unparsable output: " + r.out;
  return v;
}

// A string field of a one-line JSON record, e.g. `ndo token create --format json`.
inline std::string JsonField(const std::string& json, const std::string& field) {
  std::smatch m;
  if (!std::regex_search(json, m, std::regex("\"" + field + "\":\"([^\"]*)\""))) return {};
  return m[1];
}

// ---------------------------------------------------------------------------
// A cluster of daemons.

struct Node {
  std::string name, ip;
  uint16_t port = 0;
  std::string data, log;
  pid_t pid = -1;
  std::vector<std::string> seeds;  // empty: `ndo agent`
  std::string vantage = "lab";
  // The role its join token gives it (the first node, `ndo init`'s, is an
  // operator whatever this says). Operator unless a test says otherwise:
  // the tests submit, pause and remove members from any node.
  std::string role = "operator";
  // --allow, the node's scan policy: the loopback targets tests may scan
  // (the network safety rule); "" passes none (the saved policy stays).
  std::string allow = "127.0.0.0/8,::1";
  std::vector<std::string> extra_args;  // this daemon's own, after the fixture's node_extra_args_
  std::string Address() const { return (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip) + ":" + std::to_string(port); }
};

// Test ports lie below the kernel's ephemeral range, from which outgoing
// connections (ours, the daemons', anyone's on the machine) take their
// local ports: a port checked free there may be taken a moment later.
inline std::pair<uint16_t, uint16_t> TestPortRange() {
  unsigned low = 32768, high = 60999;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%u %u", &low, &high) != 2) low = 32768;
    std::fclose(f);
  }
  if (low > 11000) return {10000, static_cast<uint16_t>(low - 1)};
  return {1024, static_cast<uint16_t>(std::max(low, 2048u) - 1)};  // an unusual range: whatever is below it
}

inline bool CanBind(const std::string& ip, uint16_t port, int type) {
  bool v6 = ip.find(':') != std::string::npos;
  int fd = socket(v6 ? AF_INET6 : AF_INET, type, 0);
  if (fd < 0) return false;
  bool ok;
  if (v6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    inet_pton(AF_INET6, ip.c_str(), &a.sin6_addr);
    ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  close(fd);
  return ok;
}

class MeshProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    // A short hash of the test's name, not the name: control socket paths
    // (tmp_/NODE/control.sock) must stay under sun_path's 107 bytes.
    char hash[16];
    std::snprintf(hash, sizeof hash, "%08zx",
                  std::hash<std::string>{}(::testing::UnitTest::GetInstance()->current_test_info()->name()) &
                      0xffffffffu);
    tmp_ = ::testing::TempDir() + "/ndo-mesh-" + std::to_string(getpid()) + "-" + hash;
    std::filesystem::remove_all(tmp_);
    std::filesystem::create_directories(tmp_);
    ports_ = TestPortRange();
    next_port_ = static_cast<uint16_t>(ports_.first + (getpid() * 137u) % (ports_.second - ports_.first + 1u));
  }

  void TearDown() override {
    for (auto& n : nodes_) Kill(n);
    if (HasFailure()) {
      for (auto& n : nodes_) {
        std::string log = Slurp(n.log);
        if (log.size() > 6000) log = "..." + log.substr(log.size() - 6000);
        std::fprintf(stderr, "---- log of %s (%s) ----\n%s\n", n.name.c_str(), n.Address().c_str(), log.c_str());
      }
    }
    std::filesystem::remove_all(tmp_);
  }

  // A node on `ip` with a port free for both UDP and TCP there.
  Node& AddNode(const std::string& name, const std::string& ip) {
    Node n;
    n.name = name;
    n.ip = ip;
    for (int tries = 0; tries < 2000; ++tries) {
      uint16_t p = next_port_++;
      if (next_port_ > ports_.second || next_port_ < ports_.first) next_port_ = ports_.first;
      if (CanBind(ip, p, SOCK_STREAM) && CanBind(ip, p, SOCK_DGRAM)) {
        n.port = p;
        break;
      }
    }
    n.data = tmp_ + "/" + name;
    n.log = tmp_ + "/" + name + ".log";
    nodes_.push_back(n);
    return nodes_.back();
  }

  std::vector<std::string> NodeArgs(const Node& n) const {
    std::vector<std::string> args = prefix_;
    args.push_back(NdoBinary());
    if (n.seeds.empty()) {
      args.push_back("agent");
    } else {
      args.push_back("join");
      for (const auto& s : n.seeds) args.push_back(s);
    }
    for (const std::string& a : {std::string("--listen"), n.Address(), std::string("--data-dir"), n.data,
                                 std::string("--vantage"), n.vantage, std::string("--name"), n.name})
      args.push_back(a);
    if (!n.allow.empty()) {
      args.push_back("--allow");
      args.push_back(n.allow);
    }
    for (const auto& a : node_extra_args_) args.push_back(a);
    for (const auto& a : n.extra_args) args.push_back(a);
    // A secured cluster, as in production: joiners enrol with the token on
    // their first start (later starts find their certificate and ignore it).
    if (insecure_) {
      args.push_back("--insecure");
    } else if (!n.seeds.empty()) {
      const std::string& token = n.role == "scanner" ? scanner_token_ : token_;
      for (const std::string& a : {std::string("--token"), token, std::string("--ca-hash"), ca_hash_}) args.push_back(a);
    }
    return args;
  }

  // `ndo init` in the first node's data dir (bound to its vantage) and two
  // tokens for everyone else, an operator's and a scanner's, all offline,
  // before any node starts (joiners start first and retry).
  void InitCluster(const Node& first) {
    auto init = RunArgv({NdoBinary(), "init", "--data-dir", first.data, "--vantage", first.vantage}, tmp_, "init", 30s);
    ASSERT_EQ(init.exit_code, 0) << init.err;
    for (std::string role : {"operator", "scanner"}) {
      auto token = RunArgv({NdoBinary(), "token", "create", "--data-dir", first.data, "--uses", "0", "--ttl", "1h",
                            "--role", role, "--format", "json"},
                           tmp_, "token", 30s);
      ASSERT_EQ(token.exit_code, 0) << token.err;
      ASSERT_EQ(JsonField(token.out, "role"), role) << token.out;
      (role == "operator" ? token_ : scanner_token_) = JsonField(token.out, "token");
      ca_hash_ = JsonField(token.out, "ca_hash");
    }
    ASSERT_FALSE(token_.empty());
    ASSERT_FALSE(scanner_token_.empty());
    ASSERT_FALSE(ca_hash_.empty());
  }

  // The first start of a cluster's first node initialises the cluster; a
  // joiner started before its seed initialises the seed's data dir.
  void Start(Node& n) {
    if (token_.empty() && !insecure_) {
      const Node* first = &n;
      if (!n.seeds.empty())
        for (const auto& other : nodes_)
          if (other.Address() == n.seeds.front()) first = &other;
      ASSERT_TRUE(first->seeds.empty()) << n.name << "'s seed is not a node of this test";
      ASSERT_NO_FATAL_FAILURE(InitCluster(*first));
    }
    n.pid = SpawnArgv(NodeArgs(n), n.log);
    ASSERT_GT(n.pid, 0);
  }

  // Signals `n` and waits for it; a node that does not exit stays tracked
  // (TearDown kills it again, PR_SET_PDEATHSIG at the latest).
  void Kill(Node& n, int sig = SIGKILL) {
    if (n.pid <= 0) return;
    kill(n.pid, sig);
    if (Reap(n, 10s) == kStillRunning)
      ADD_FAILURE() << n.name << " (pid " << n.pid << ") still runs 10 s after signal " << sig;
  }

  // The exit code of `n` within `timeout`, forgetting its pid only once it
  // has exited: kStillRunning otherwise.
  int Reap(Node& n, SteadyClock::duration timeout) {
    int code = WaitForExit(n.pid, std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
    if (code != kStillRunning) n.pid = -1;
    return code;
  }

  View Members(const Node& n) {
    return ParseMembers(RunArgv({NdoBinary(), "members", "--data-dir", n.data, "--format", "json"}, tmp_, "members", 30s));
  }

  // Polls `pred` every 200 ms until it holds or `timeout` passes.
  static bool WaitFor(const std::function<bool()>& pred, SteadyClock::duration timeout) {
    auto deadline = SteadyClock::now() + timeout;
    for (;;) {
      if (pred()) return true;
      if (SteadyClock::now() >= deadline) return false;
      std::this_thread::sleep_for(200ms);
    }
  }

  // Every node in `watchers` sees exactly `alive` alive (the rest of the
  // names it knows in `gone_state`), and all follow one coordinator.
  bool Agreed(const std::vector<Node*>& watchers, const std::set<std::string>& alive, std::string* coordinator,
              std::string* why, const std::string& gone_state = "") {
    std::string coord;
    for (Node* w : watchers) {
      View v = Members(*w);
      if (!v.ok) return *why = w->name + ": " + v.error, false;
      for (const auto& name : alive)
        if (v.StateOf(name) != "alive") return *why = w->name + " sees " + v.Describe(), false;
      for (const auto& [name, m] : v.by_name)
        if (!alive.count(name) && (m.state == "alive" || m.state == "suspect" ||
                                   (!gone_state.empty() && m.state != gone_state)))
          return *why = w->name + " sees " + v.Describe(), false;
      if (v.coordinator_id.empty()) return *why = w->name + " has no coordinator: " + v.Describe(), false;
      if (!coord.empty() && coord != v.coordinator_id) return *why = "coordinators differ: " + w->name + " " + v.Describe(), false;
      coord = v.coordinator_id;
    }
    if (coordinator) *coordinator = coord;
    return true;
  }

  bool WaitAgreed(const std::vector<Node*>& watchers, const std::set<std::string>& alive,
                  SteadyClock::duration timeout, std::string* coordinator = nullptr,
                  const std::string& gone_state = "") {
    std::string why;
    bool ok = WaitFor([&] { return Agreed(watchers, alive, coordinator, &why, gone_state); }, timeout);
    if (!ok) ADD_FAILURE() << "no agreement within " << std::chrono::duration<double>(timeout).count() << " s: " << why;
    return ok;
  }

  std::vector<Node*> All() {
    std::vector<Node*> v;
    for (auto& n : nodes_) v.push_back(&n);
    return v;
  }
  std::set<std::string> Names(const std::vector<Node*>& nodes) {
    std::set<std::string> s;
    for (Node* n : nodes) s.insert(n->name);
    return s;
  }
  Node* ById(const std::string& id) {
    for (auto& n : nodes_)
      if (ids_[n.name] == id) return &n;
    return nullptr;
  }
  void RecordIds() {
    for (auto& n : nodes_) {
      View v = Members(n);
      ASSERT_TRUE(v.ok) << v.error;
      ids_[n.name] = v.self_id;
    }
  }

  // Waits until every node answers on its control socket (it binds its port
  // first). True if one exited because its port was taken meanwhile (the
  // check in AddNode reserves nothing): then the caller starts over.
  bool PortTakenMeanwhile(SteadyClock::duration timeout) {
    std::vector<bool> up(nodes_.size());
    auto deadline = SteadyClock::now() + timeout;
    while (SteadyClock::now() < deadline) {
      bool all = true;
      for (size_t i = 0; i < nodes_.size(); ++i) {
        if (up[i]) continue;
        Node& n = nodes_[i];
        if (n.pid > 0 && Reap(n, 0s) != kStillRunning) {
          std::string log = Slurp(n.log);
          if (log.find("cannot bind") != std::string::npos || log.find("cannot listen") != std::string::npos)
            return true;
          return false;  // exited for another reason: WaitAgreed reports it, with the logs
        }
        up[i] = Members(n).ok;
        all = all && up[i];
      }
      if (all) return false;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  // Starts `count` nodes on 127.0.0.1..count, the first as `ndo agent`, the
  // others joining through it, and waits until all agree.
  void StartCluster(int count, SteadyClock::duration timeout, std::string* coordinator = nullptr) {
    for (int attempt = 1;; ++attempt) {
      for (int i = 0; i < count; ++i)
        AddNode("node-" + std::string(1, static_cast<char>('a' + i)), "127.0.0." + std::to_string(i + 1));
      for (int i = 1; i < count; ++i) nodes_[i].seeds = {nodes_[0].Address()};
      if (!insecure_) {
        ASSERT_NO_FATAL_FAILURE(InitCluster(nodes_[0]));
      }
      // Joiners first: they retry (enrolling, then joining) until the seed is up.
      for (int i = count - 1; i >= 0; --i) Start(nodes_[i]);
      if (attempt == 3 || !PortTakenMeanwhile(20s)) break;
      std::printf("[ mesh     ] a port was taken between its check and its bind; starting over on others\n");
      for (auto& n : nodes_) {
        Kill(n);
        std::filesystem::remove_all(n.data);
        std::filesystem::remove(n.log);
      }
      nodes_.clear();
      token_.clear();
      scanner_token_.clear();
    }
    auto t0 = SteadyClock::now();
    ASSERT_TRUE(WaitAgreed(All(), Names(All()), timeout, coordinator));
    std::printf("[ mesh     ] %d nodes converged in %.2f s\n", count,
                std::chrono::duration<double>(SteadyClock::now() - t0).count());
    RecordIds();
  }

  std::string tmp_;
  std::string token_, ca_hash_;  // the cluster's operator join token and CA hash (InitCluster)
  std::string scanner_token_;    // its scanner join token (Node::role "scanner")
  bool insecure_ = false;        // run the nodes with --insecure (plaintext, no certificates)
  std::vector<std::string> prefix_;  // e.g. nsenter --net=... --
  std::vector<std::string> node_extra_args_;  // given to every daemon
  std::deque<Node> nodes_;  // a deque: references stay valid as nodes are added
  std::map<std::string, std::string> ids_;
  std::pair<uint16_t, uint16_t> ports_{10000, 32767};
  uint16_t next_port_ = 10000;
};

// ---------------------------------------------------------------------------
// Raw traffic to a node.

// Sends `bytes` to 127.0.0.x:port from an ephemeral UDP socket.
inline void SendUdp(const std::string& ip, uint16_t port, const std::vector<std::string>& datagrams) {
  ASSERT_EQ(ip.rfind("127.", 0), 0u) << "tests only send to 127.0.0.0/8";
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  int big = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  for (const auto& d : datagrams) {
    sendto(fd, d.data(), d.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    std::this_thread::sleep_for(50us);  // no overrun of the receiver's buffer: every datagram is judged
  }
  close(fd);
}

inline int ConnectTcp(const std::string& ip, uint16_t port) {
  if (ip.rfind("127.", 0) != 0) return -1;  // tests only connect to 127.0.0.0/8
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// How many of `fds` the peer closes (EOF or reset) within `timeout`, all
// watched at once; -1 (never connected) counts as closed.
inline int CountClosedWithin(const std::vector<int>& fds, std::chrono::milliseconds timeout) {
  std::vector<bool> closed(fds.size());
  int count = 0;
  for (size_t i = 0; i < fds.size(); ++i)
    if (fds[i] < 0) closed[i] = true, ++count;
  auto deadline = SteadyClock::now() + timeout;
  char buf[256];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) return count;
    std::vector<pollfd> p;
    std::vector<size_t> index;
    for (size_t i = 0; i < fds.size(); ++i)
      if (!closed[i]) p.push_back({fds[i], POLLIN, 0}), index.push_back(i);
    if (p.empty()) return count;
    int n = poll(p.data(), p.size(), static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return count;
    for (size_t k = 0; k < p.size(); ++k)
      if (p[k].revents && recv(p[k].fd, buf, sizeof buf, 0) <= 0) closed[index[k]] = true, ++count;
  }
}

// Whether the peer closed `fd` (EOF or reset) within `timeout`.
inline bool ClosedWithin(int fd, std::chrono::milliseconds timeout) {
  auto deadline = SteadyClock::now() + timeout;
  char buf[256];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left)) <= 0) return false;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return true;
  }
}

inline std::string Be32(uint32_t n) {
  return {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n)};
}

}  // namespace ndo::testing
