// The Asio engine against real listeners on several 127.x addresses: the
// open, closed and filtered sets must come out exactly.
#include "scan/engine.h"

#include <gtest/gtest.h>

#include <mutex>
#include <set>

#include "support/loopback_listeners.h"

namespace ndo {
namespace {

using ndo::testing::AcceptingListeners;
using ndo::testing::SaturatedListener;

class CollectingSink : public ResultSink {
 public:
  Status Consume(ResultBatch&& batch) override {
    std::lock_guard lock(mu);
    results.insert(results.end(), batch.results.begin(), batch.results.end());
    for (const auto& p : batch.progress)
      if (p.done) done_shards.insert(p.shard);
    return Status::Ok();
  }
  std::mutex mu;
  std::vector<ProbeResult> results;
  std::set<uint32_t> done_shards;
};

using Key = std::pair<std::string, uint16_t>;

TEST(Engine, FindsExactOpenClosedAndFilteredSetsOnLoopback) {
  const std::vector<std::string> hosts = {"127.77.0.1", "127.77.0.2", "127.77.0.3"};
  // Two ports that listen on some hosts, one saturated port, one closed everywhere.
  int probe = ndo::testing::BindListener(hosts[0], 0, 16);
  ASSERT_GE(probe, 0);
  uint16_t open_a = ndo::testing::LocalPort(probe);
  close(probe);
  uint16_t open_b = ndo::testing::UnusedPort(hosts[1]);
  uint16_t filtered = ndo::testing::UnusedPort(hosts[2]);
  uint16_t closed = ndo::testing::UnusedPort(hosts[0]);
  std::set<uint16_t> distinct = {open_a, open_b, filtered, closed};
  ASSERT_EQ(distinct.size(), 4u);

  AcceptingListeners accepting;
  ASSERT_TRUE(accepting.Add(hosts[0], open_a));
  ASSERT_TRUE(accepting.Add(hosts[2], open_a));
  ASSERT_TRUE(accepting.Add(hosts[1], open_b));
  SaturatedListener saturated;
  ASSERT_TRUE(saturated.Open(hosts[1], filtered));

  ScanSpec spec;
  spec.targets.addresses.Add({IpAddress::Parse(hosts[0])->value(), IpAddress::Parse(hosts[2])->value()});
  spec.ports = {open_a, open_b, filtered, closed};
  std::sort(spec.ports.begin(), spec.ports.end());
  spec.shard_count = 3;
  spec.seed = 17;
  auto plan = ScanPlan::Create(spec);
  ASSERT_TRUE(plan.ok());

  EngineOptions eo;
  eo.threads = 2;
  eo.concurrency = 8;
  eo.max_retries = 1;
  eo.rtt.fixed = std::chrono::milliseconds(300);
  IntervalSet scope = *ParseAddressList("127.0.0.0/8");
  eo.scope = &scope;
  Engine engine(*plan, eo);
  CollectingSink sink;
  std::vector<ShardWork> work;
  for (uint32_t k = 0; k < 3; ++k) work.push_back({k, plan->Shard(k).begin, plan->Shard(k).end});
  ASSERT_TRUE(engine.Run(work, sink).ok());

  std::map<Key, PortState> got;
  for (const auto& r : sink.results) EXPECT_TRUE(got.emplace(Key{r.address.ToString(), r.port}, r.state).second);
  ASSERT_EQ(got.size(), 12u);
  std::map<Key, PortState> want;
  for (const auto& h : hosts)
    for (uint16_t p : spec.ports) want[{h, p}] = PortState::kClosed;
  want[{hosts[0], open_a}] = PortState::kOpen;
  want[{hosts[2], open_a}] = PortState::kOpen;
  want[{hosts[1], open_b}] = PortState::kOpen;
  want[{hosts[1], filtered}] = PortState::kFiltered;
  for (const auto& [k, state] : want)
    EXPECT_EQ(got[k], state) << k.first << ":" << k.second << " is " << PortStateName(got[k]);
  EXPECT_EQ(sink.done_shards.size(), 3u);
  for (const auto& r : sink.results) {
    if (r.state == PortState::kFiltered) {
      EXPECT_EQ(r.attempts, 2);  // first try + 1 retry
    }
    if (r.state == PortState::kOpen) {
      EXPECT_GT(r.time_us, 1'600'000'000'000'000);
    }
  }
  EngineProgress p = engine.Progress();
  EXPECT_EQ(p.open, 3u);
  EXPECT_EQ(p.filtered, 1u);
  EXPECT_EQ(p.closed, 8u);
}

TEST(Engine, ScopeGateSendsNothingOutsideTheAllowlist) {
  AcceptingListeners accepting;
  uint16_t port = ndo::testing::UnusedPort("127.78.0.1");
  ASSERT_TRUE(accepting.Add("127.78.0.1", port));
  ScanSpec spec;  // unscoped spec: only the engine's own gate stands in the way
  spec.targets.addresses.Add({IpAddress::Parse("127.78.0.1")->value(), IpAddress::Parse("127.78.0.1")->value()});
  spec.ports = {port};
  auto plan = ScanPlan::Create(spec);
  ASSERT_TRUE(plan.ok());
  IntervalSet scope = *ParseAddressList("127.99.0.0/16");
  EngineOptions eo;
  eo.scope = &scope;
  Engine engine(*plan, eo);
  CollectingSink sink;
  Status s = engine.Run({{0, plan->Shard(0).begin, plan->Shard(0).end}}, sink);
  EXPECT_EQ(s.code(), Status::Code::kOutOfScope);
  usleep(100000);
  EXPECT_EQ(accepting.accepted(), 0u);
}

TEST(Engine, StopEndsAScanEarlyWithCheckpointsBelowTheUnfinished) {
  // 127.79.0.0/22 x 1 port where nothing answers... no: closed ports answer at
  // once on loopback, so use a rate limit to make the scan long enough to stop.
  ScanSpec spec;
  spec.targets.addresses.Add({IpAddress::Parse("127.79.0.0")->value(), IpAddress::Parse("127.79.3.255")->value()});
  spec.ports = {ndo::testing::UnusedPort("127.79.0.1")};
  auto plan = ScanPlan::Create(spec);
  EngineOptions eo;
  eo.rate = 2000;
  Engine engine(*plan, eo);
  CollectingSink sink;
  std::thread stopper([&] {
    usleep(200000);
    engine.Stop();
  });
  ASSERT_TRUE(engine.Run({{0, plan->Shard(0).begin, plan->Shard(0).end}}, sink).ok());
  stopper.join();
  EXPECT_GT(sink.results.size(), 100u);
  EXPECT_LT(sink.results.size(), 1024u);
  EXPECT_TRUE(sink.done_shards.empty());
}

}  // namespace
}  // namespace ndo

namespace ndo {
namespace {

// Thousands of unanswered connects in flight while answered ones complete and
// their sockets are recycled: a stale or spurious readiness event must never
// make a still-connecting socket look open. (A saturated listener on the
// wildcard address drops every SYN to its port on every 127.x address.)
TEST(Engine, ManyUnansweredProbesNeverLookOpen) {
  uint16_t dropped = ndo::testing::UnusedPort("127.0.0.1");
  SaturatedListener saturated;
  ASSERT_TRUE(saturated.Open("0.0.0.0", dropped));
  AcceptingListeners accepting;
  uint16_t open_port = ndo::testing::UnusedPort("127.91.0.1");
  std::set<std::string> want_open;
  for (int h = 0; h < 4096; h += 37) {
    std::string ip = "127.91." + std::to_string(h / 256) + "." + std::to_string(h % 256);
    ASSERT_TRUE(accepting.Add(ip, open_port));
    want_open.insert(ip);
  }
  ScanSpec spec;
  spec.targets.addresses.Add({IpAddress::Parse("127.91.0.0")->value(), IpAddress::Parse("127.91.15.255")->value()});
  spec.ports = {dropped, open_port};
  std::sort(spec.ports.begin(), spec.ports.end());
  spec.shard_count = 8;
  auto plan = ScanPlan::Create(spec);
  ASSERT_TRUE(plan.ok());
  EngineOptions eo;
  eo.threads = 2;
  eo.concurrency = 4096;
  eo.max_retries = 0;
  eo.rtt.fixed = std::chrono::milliseconds(150);
  Engine engine(*plan, eo);
  CollectingSink sink;
  std::vector<ShardWork> work;
  for (uint32_t k = 0; k < 8; ++k) work.push_back({k, plan->Shard(k).begin, plan->Shard(k).end});
  ASSERT_TRUE(engine.Run(work, sink).ok());
  ASSERT_EQ(sink.results.size(), 8192u);
  std::set<std::string> got_open;
  size_t filtered = 0;
  for (const auto& r : sink.results) {
    if (r.port == dropped) {
      EXPECT_EQ(r.state, PortState::kFiltered) << r.address.ToString();
      filtered += r.state == PortState::kFiltered;
    } else if (r.state == PortState::kOpen) {
      got_open.insert(r.address.ToString());
    } else {
      EXPECT_EQ(r.state, PortState::kClosed) << r.address.ToString();
    }
  }
  EXPECT_EQ(filtered, 4096u);
  EXPECT_EQ(got_open, want_open);
}

}  // namespace
}  // namespace ndo
