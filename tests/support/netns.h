// A network namespace of a test's own (root, iproute2 and nftables needed):
// the daemons run inside it (`ip netns exec NAME ...`), nftables rules
// there cut it in parts, and it has no route out (only its loopback is up).
// Named after the test process's pid, so that a later run removes the ones
// a crashed run left behind.
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

namespace ndo::testing {

class Netns {
 public:
  ~Netns() { Remove(); }

  static int Sh(const std::string& cmd) {
    int s = std::system((cmd + " >/dev/null 2>&1").c_str());
    return WIFEXITED(s) ? WEXITSTATUS(s) : -1;
  }

  // Empty on success, else why the test should skip.
  std::string Create() {
    if (geteuid() != 0) return "needs root (network namespaces, nftables)";
    if (Sh("command -v ip >/dev/null && command -v nft") != 0) return "needs iproute2 and nftables";
    RemoveStale();
    std::string name = "ndo-meshtest-" + std::to_string(getpid());
    if (Sh("ip netns add " + name) != 0) return "cannot create a network namespace";
    name_ = name;
    if (Sh("ip -n " + name_ + " link set lo up") != 0 || Sh(In() + "nft list ruleset") != 0)
      return "no loopback or nftables in the namespace";
    return {};
  }

  void Remove() {
    if (name_.empty()) return;
    // Anything still in the namespace is ours (by pid).
    Sh("for p in $(ip netns pids " + name_ + " 2>/dev/null); do kill -9 $p; done");
    Sh("ip netns del " + name_);
    name_.clear();
  }

  const std::string& name() const { return name_; }
  std::string In() const { return "ip netns exec " + name_ + " "; }
  // nsenter execs the command itself (`ip netns exec` forks and waits), so
  // the pid a test holds is the daemon's, and a signal reaches it.
  std::vector<std::string> Prefix() const { return {"nsenter", "--net=/var/run/netns/" + name_, "--"}; }

  // Loads nftables `rules` (nft -f syntax) in the namespace, through a file
  // under `dir`. True on success.
  bool LoadRules(const std::string& rules, const std::string& dir) const {
    std::string file = dir + "/rules.nft";
    FILE* f = std::fopen(file.c_str(), "w");
    if (!f) return false;
    std::fputs(rules.c_str(), f);
    std::fclose(f);
    return Sh(In() + "nft -f '" + file + "'") == 0;
  }

  // Drops every packet between the two sets of loopback addresses, both
  // ways (table inet ndo_partition); Heal removes it.
  bool Partition(const std::string& side_a, const std::string& side_b, const std::string& dir) const {
    return LoadRules("add table inet ndo_partition\n"
                     "add chain inet ndo_partition out { type filter hook output priority 0; }\n"
                     "add rule inet ndo_partition out ip saddr { " + side_a + " } ip daddr { " + side_b + " } drop\n"
                     "add rule inet ndo_partition out ip saddr { " + side_b + " } ip daddr { " + side_a + " } drop\n",
                     dir);
  }
  bool Heal() const { return Sh(In() + "nft delete table inet ndo_partition") == 0; }

  // Runs fn on a thread that entered the namespace: sockets it creates
  // (listeners, say) live there for good.
  bool RunInside(const std::function<void()>& fn) const {
    bool ok = false;
    std::thread t([&] {
      int fd = open(("/var/run/netns/" + name_).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return;
      ok = setns(fd, CLONE_NEWNET) == 0;
      close(fd);
      if (ok) fn();
    });
    t.join();
    return ok;
  }

 private:
  static void RemoveStale() {
    FILE* list = popen("ip netns list 2>/dev/null", "r");
    if (!list) return;
    std::vector<std::string> stale;
    char line[256];
    static const std::regex ours(R"(^ndo-meshtest-(\d+)\b)");
    while (std::fgets(line, sizeof line, list)) {
      std::cmatch m;
      if (!std::regex_search(line, m, ours)) continue;
      pid_t pid = static_cast<pid_t>(std::stol(m[1]));
      if (pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(m[0]);
    }
    pclose(list);
    for (const auto& ns : stale) {
      Sh("for p in $(ip netns pids " + ns + " 2>/dev/null); do kill -9 $p; done");
      if (Sh("ip netns del " + ns) == 0) std::printf("[ mesh     ] removed stale network namespace %s\n", ns.c_str());
    }
  }

  std::string name_;
};

}  // namespace ndo::testing
