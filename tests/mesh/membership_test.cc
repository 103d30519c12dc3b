// The SWIM core on a simulated network: seeded latency and loss, crashes,
// stalls and partitions, in simulated time. Deterministic for a seed.
#include "mesh/membership.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>

namespace ndo::mesh {
namespace {

using namespace std::chrono_literals;

class SimMesh {
 public:
  SimMesh(int n, uint64_t seed, double loss = 0, MembershipConfig cfg = {}) : rng_(seed), loss_(loss) {
    for (int i = 0; i < n; ++i) {
      MemberInfo info;
      info.id = {static_cast<uint64_t>(i + 1), rng_()};
      info.name = "node" + std::to_string(i);
      info.vantage = i % 2 ? "dmz" : "internet";
      info.address = "n" + std::to_string(i);
      nodes_.push_back(std::make_unique<Membership>(info, cfg, rng_(), now_));
      alive_.push_back(true);
    }
  }

  Membership& node(int i) { return *nodes_[i]; }
  Time now() const { return now_; }

  void JoinAllThrough(int seed_node) {
    for (int i = 0; i < static_cast<int>(nodes_.size()); ++i)
      if (i != seed_node) nodes_[i]->Join({"n" + std::to_string(seed_node)}, now_);
    Flush();
  }

  void Crash(int i) { alive_[i] = false; }
  void Partition(std::set<int> side) { side_ = std::move(side); }
  void Heal() { side_.clear(); }
  // The node handles nothing (no ticks, no messages) until `until`.
  void Stall(int i, Time until) { stalled_until_[i] = until; }

  // Runs the event loop until `until`; `check` runs after each step.
  template <typename Check>
  void RunUntil(Time until, Check&& check) {
    while (true) {
      Time next = until;
      if (!events_.empty()) next = std::min(next, events_.top().at);
      for (size_t i = 0; i < nodes_.size(); ++i)
        if (Runs(static_cast<int>(i))) next = std::min(next, std::max(now_, Wake(static_cast<int>(i))));
      if (next >= until && (events_.empty() || events_.top().at > until)) {
        now_ = until;
        return;
      }
      now_ = next;
      while (!events_.empty() && events_.top().at <= now_) {
        Event e = events_.top();
        events_.pop();
        if (Runs(e.to)) nodes_[e.to]->OnMessage("n" + std::to_string(e.from), e.msg, now_);
      }
      for (size_t i = 0; i < nodes_.size(); ++i)
        if (Runs(static_cast<int>(i)) && Wake(static_cast<int>(i)) <= now_) nodes_[i]->Tick(now_);
      Flush();
      check();
    }
  }
  void RunUntil(Time until) {
    RunUntil(until, [] {});
  }

  // Every live node sees `target` in state `s`.
  bool AllSee(int target, MemberState s) {
    for (size_t i = 0; i < nodes_.size(); ++i) {
      if (!alive_[i] || static_cast<int>(i) == target) continue;
      auto it = nodes_[i]->members().find(nodes_[target]->self().id);
      if (it == nodes_[i]->members().end() || it->second.state != s) return false;
    }
    return true;
  }

 private:
  struct Event {
    Time at;
    int from, to;
    Message msg;
    bool operator>(const Event& o) const { return at > o.at; }
  };

  bool Runs(int i) {
    if (!alive_[i]) return false;
    auto it = stalled_until_.find(i);
    return it == stalled_until_.end() || now_ >= it->second;
  }
  Time Wake(int i) { return nodes_[i]->NextWakeup(); }

  void Flush() {
    std::uniform_real_distribution<double> u(0, 1);
    std::uniform_int_distribution<int> latency_us(1000, 10000);
    for (size_t i = 0; i < nodes_.size(); ++i) {
      for (auto& o : nodes_[i]->TakeOutgoing()) {
        int to = std::stoi(o.address.substr(1));
        if (!alive_[i] || !alive_[to]) continue;
        if (!side_.empty() && (side_.count(static_cast<int>(i)) != side_.count(to))) continue;
        if (u(rng_) < loss_) continue;
        Time at = now_ + std::chrono::microseconds(latency_us(rng_));
        // A stalled receiver gets its mail late (the kernel queues it).
        if (auto s = stalled_until_.find(to); s != stalled_until_.end()) at = std::max(at, s->second);
        events_.push({at, static_cast<int>(i), to, std::move(o.message)});
      }
    }
  }

  std::mt19937_64 rng_;
  double loss_;
  Time now_{};
  std::vector<std::unique_ptr<Membership>> nodes_;
  std::vector<bool> alive_;
  std::set<int> side_;
  std::map<int, Time> stalled_until_;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events_;
};

TEST(Membership, JoinThroughOneSeedReachesEveryone) {
  SimMesh mesh(20, 1);
  mesh.JoinAllThrough(0);
  mesh.RunUntil(mesh.now() + 10s);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(mesh.node(i).AliveCount(), 20u) << "node " << i;
}

TEST(Membership, CrashedNodeIsDeclaredDeadByAllWithoutFalsePositives) {
  SimMesh mesh(20, 2, 0.01);
  mesh.JoinAllThrough(0);
  mesh.RunUntil(mesh.now() + 10s);
  Time crash = mesh.now();
  mesh.Crash(7);
  Time detected{};
  mesh.RunUntil(crash + 30s, [&] {
    if (detected == Time{} && mesh.AllSee(7, MemberState::kDead)) detected = mesh.now();
  });
  ASSERT_NE(detected, Time{}) << "never declared dead by all";
  EXPECT_LT(detected - crash, 15s);
  for (int i = 0; i < 20; ++i) {
    if (i == 7) continue;
    for (const auto& [id, m] : mesh.node(i).members())
      if (id != mesh.node(7).self().id) {
        EXPECT_EQ(m.state, MemberState::kAlive) << "false positive at node " << i;
      }
  }
}

TEST(Membership, EveryoneFollowsTheSameCoordinatorAndANewOneAfterItDies) {
  SimMesh mesh(10, 4);
  mesh.JoinAllThrough(3);
  mesh.RunUntil(mesh.now() + 15s);
  std::set<NodeId> chosen;
  for (int i = 0; i < 10; ++i) chosen.insert(*mesh.node(i).Coordinator());
  ASSERT_EQ(chosen.size(), 1u);
  EXPECT_EQ(*chosen.begin(), mesh.node(0).self().id);  // the lowest id (priorities equal)
  mesh.Crash(0);
  mesh.RunUntil(mesh.now() + 40s);
  chosen.clear();
  for (int i = 1; i < 10; ++i) chosen.insert(*mesh.node(i).Coordinator());
  ASSERT_EQ(chosen.size(), 1u);
  EXPECT_EQ(*chosen.begin(), mesh.node(1).self().id);
}

TEST(Membership, AFalseSuspicionIsRefuted) {
  SimMesh mesh(5, 5);
  mesh.JoinAllThrough(0);
  mesh.RunUntil(mesh.now() + 10s);
  uint64_t before = mesh.node(2).incarnation();
  Message m;
  m.type = Message::Type::kAck;
  m.sender = mesh.node(1).self().id;
  Update u{Update::Kind::kSuspect, mesh.node(2).self(), before, mesh.node(1).self().id};
  m.updates.push_back(u);
  mesh.node(2).OnMessage("n1", m, mesh.now());
  EXPECT_EQ(mesh.node(2).incarnation(), before + 1);
  mesh.RunUntil(mesh.now() + 30s);
  EXPECT_TRUE(mesh.AllSee(2, MemberState::kAlive));
}

TEST(Membership, APartitionHeldThenHealedMergesBack) {
  SimMesh mesh(10, 6);
  mesh.JoinAllThrough(0);
  mesh.RunUntil(mesh.now() + 10s);
  mesh.Partition({0, 1, 2, 3, 4});
  mesh.RunUntil(mesh.now() + 60s);
  EXPECT_EQ(mesh.node(0).AliveCount(), 5u);
  EXPECT_EQ(mesh.node(9).AliveCount(), 5u);
  mesh.Heal();
  mesh.RunUntil(mesh.now() + 60s);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(mesh.node(i).AliveCount(), 10u) << "node " << i;
  std::set<NodeId> chosen;
  for (int i = 0; i < 10; ++i) chosen.insert(*mesh.node(i).Coordinator());
  EXPECT_EQ(chosen.size(), 1u);
}

TEST(Membership, GracefulLeaveIsSeenAsLeftNotDead) {
  SimMesh mesh(8, 7);
  mesh.JoinAllThrough(0);
  mesh.RunUntil(mesh.now() + 10s);
  mesh.node(5).Leave(mesh.now());
  mesh.RunUntil(mesh.now() + 10s);
  EXPECT_TRUE(mesh.AllSee(5, MemberState::kLeft));
}


}  // namespace
}  // namespace ndo::mesh
