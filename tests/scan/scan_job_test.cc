// ScanJob on loopback: the engine's results and the follow-ups' evidence
// reach one sink; a sink that fails stops the scan before any follow-up; Stop
// abandons a follow-up that would take long. Traffic goes to 127.88.0.0/16
// only, and every spec carries an explicit 127.0.0.0/8 scope.
#include "scan/scan_job.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <mutex>
#include <set>

#include "support/service_servers.h"

namespace ndo {
namespace {

using ndo::testing::ServiceServers;
using ndo::testing::UnusedPort;
using Key = std::pair<std::string, uint16_t>;

class CollectingSink : public ScanJobSink {
 public:
  Status OnResults(ResultBatch&& batch) override {
    std::lock_guard lock(mu);
    if (!fail_results.ok()) return fail_results;
    for (const auto& r : batch.results) results[{r.address.ToString(), r.port}] = r.state;
    for (const auto& p : batch.progress)
      if (p.done) done_shards.insert(p.shard);
    return Status::Ok();
  }
  Status OnEvidence(std::vector<ServiceEvidence>&& batch) override {
    std::lock_guard lock(mu);
    for (auto& ev : batch) evidence[{ev.address.ToString(), ev.port}] = std::move(ev);
    return Status::Ok();
  }
  std::mutex mu;
  Status fail_results;  // returned by OnResults when set
  std::map<Key, PortState> results;
  std::set<uint32_t> done_shards;
  std::map<Key, ServiceEvidence> evidence;
};

// `hosts` (a range of 127.88.0.x) x `ports`, scoped to loopback, with fixed
// timeouts so that a closed or silent port costs little.
ScanSpec LoopbackSpec(const std::string& first, const std::string& last, std::vector<uint16_t> ports) {
  ScanSpec spec;
  spec.targets.addresses.Add({IpAddress::Parse(first)->value(), IpAddress::Parse(last)->value()});
  std::sort(ports.begin(), ports.end());
  spec.ports = std::move(ports);
  spec.has_scope = true;
  spec.scope.Add({IpAddress::Parse("127.0.0.0")->value(), IpAddress::Parse("127.255.255.255")->value()});
  spec.seed = 23;
  spec.shard_count = 2;
  spec.probe.concurrency = 16;
  spec.probe.max_retries = 1;
  spec.probe.timeout_ms = 300;
  return spec;
}

std::vector<ShardWork> AllShards(const ScanPlan& plan) {
  std::vector<ShardWork> work;
  for (uint32_t k = 0; k < plan.shard_count(); ++k) work.push_back({k, plan.Shard(k).begin, plan.Shard(k).end});
  return work;
}

EngineOptions Options(const ScanSpec& spec, const ScanPlan& plan) {
  EngineOptions eo = EngineOptionsForSpec(spec, plan.permutation().cycle_length(), 1);
  EXPECT_EQ(eo.scope, &spec.scope);  // the engine refuses anything off loopback
  return eo;
}

TEST(ScanJob, ResultsAndBannersOfOpenPortsReachTheSink) {
  const std::string greeting = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
  uint16_t open = UnusedPort("127.88.0.1"), closed = UnusedPort("127.88.0.2");
  ASSERT_NE(open, closed);
  ServiceServers servers;
  ASSERT_TRUE(servers.Banner("127.88.0.1", open, greeting));
  ScanSpec spec = LoopbackSpec("127.88.0.1", "127.88.0.2", {open, closed});
  spec.service.banners = true;
  spec.service.concurrency = 4;
  spec.service.timeout = std::chrono::milliseconds(4000);
  auto plan = ScanPlan::Create(spec);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();

  CollectingSink sink;
  auto job = ScanJob::Create(*plan, Options(spec, *plan), sink);
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  ASSERT_TRUE((*job)->follows_up());
  ASSERT_TRUE((*job)->Scan(AllShards(*plan)).ok());
  ASSERT_TRUE((*job)->Drain().ok());

  // Every probe answered once; only 127.88.0.1:open listens.
  std::map<Key, PortState> want;
  for (const std::string h : {"127.88.0.1", "127.88.0.2"})
    for (uint16_t p : {open, closed}) want[{h, p}] = PortState::kClosed;
  want[{"127.88.0.1", open}] = PortState::kOpen;
  EXPECT_EQ(sink.results, want);
  EXPECT_EQ(sink.done_shards, (std::set<uint32_t>{0, 1}));

  EngineProgress progress = (*job)->Progress();
  EXPECT_EQ(progress.open, 1u);
  EXPECT_EQ(progress.closed, 3u);
  const ServiceProbeCounters* c = (*job)->follow_up_counters();
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->queued.load(), 1u);
  EXPECT_EQ(c->done.load(), 1u);
  EXPECT_EQ(c->banners.load(), 1u);

  ASSERT_EQ(sink.evidence.size(), 1u);
  const ServiceEvidence& ev = sink.evidence.begin()->second;
  EXPECT_EQ(sink.evidence.begin()->first, (Key{"127.88.0.1", open}));
  ASSERT_TRUE(ev.banner.has_value());
  EXPECT_EQ(ev.banner->bytes, greeting);
  EXPECT_EQ(ev.service, "ssh");
}

TEST(ScanJob, WithoutBannersOrTlsThereAreNoFollowUps) {
  uint16_t open = UnusedPort("127.88.0.3");
  ServiceServers servers;
  ASSERT_TRUE(servers.Banner("127.88.0.3", open, "hello\r\n"));
  ScanSpec spec = LoopbackSpec("127.88.0.3", "127.88.0.3", {open});
  auto plan = ScanPlan::Create(spec);
  ASSERT_TRUE(plan.ok());
  CollectingSink sink;
  auto job = ScanJob::Create(*plan, Options(spec, *plan), sink);
  ASSERT_TRUE(job.ok());
  EXPECT_FALSE((*job)->follows_up());
  EXPECT_EQ((*job)->follow_up_counters(), nullptr);
  (*job)->FollowUp(*IpAddress::Parse("127.88.0.3"), open);  // ignored
  ASSERT_TRUE((*job)->Scan(AllShards(*plan)).ok());
  ASSERT_TRUE((*job)->Drain().ok());
  EXPECT_EQ(sink.results, (std::map<Key, PortState>{{{"127.88.0.3", open}, PortState::kOpen}}));
  EXPECT_TRUE(sink.evidence.empty());
}

TEST(ScanJob, ASinkThatFailsStopsTheScanAndFollowsNothingUp) {
  uint16_t open = UnusedPort("127.88.0.4");
  ServiceServers servers;
  ASSERT_TRUE(servers.Banner("127.88.0.4", open, "hello\r\n"));
  ScanSpec spec = LoopbackSpec("127.88.0.4", "127.88.0.4", {open});
  spec.service.banners = true;
  auto plan = ScanPlan::Create(spec);
  ASSERT_TRUE(plan.ok());
  CollectingSink sink;
  sink.fail_results = Status::Unavailable("disk full");
  auto job = ScanJob::Create(*plan, Options(spec, *plan), sink);
  ASSERT_TRUE(job.ok());
  Status s = (*job)->Scan(AllShards(*plan));
  EXPECT_EQ(s.code(), Status::Code::kUnavailable) << s.ToString();
  ASSERT_TRUE((*job)->Drain().ok());
  EXPECT_EQ((*job)->follow_up_counters()->queued.load(), 0u);
  EXPECT_TRUE(sink.evidence.empty());
}

TEST(ScanJob, StopAbandonsAFollowUpThatWouldTakeLong) {
  // A service that never speaks, with a minute's follow-up deadline.
  uint16_t silent = UnusedPort("127.88.0.5");
  ServiceServers servers;
  ASSERT_TRUE(servers.Silent("127.88.0.5", silent));
  ScanSpec spec = LoopbackSpec("127.88.0.5", "127.88.0.5", {silent});
  spec.service.banners = true;
  spec.service.timeout = std::chrono::milliseconds(60'000);
  auto plan = ScanPlan::Create(spec);
  ASSERT_TRUE(plan.ok());
  CollectingSink sink;
  auto job = ScanJob::Create(*plan, Options(spec, *plan), sink);
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE((*job)->Scan(AllShards(*plan)).ok());
  EXPECT_EQ(sink.results.size(), 1u);
  const ServiceProbeCounters* c = (*job)->follow_up_counters();
  EXPECT_EQ(c->queued.load(), 1u);
  auto stopped_at = std::chrono::steady_clock::now();
  (*job)->Stop();
  EXPECT_TRUE((*job)->Drain().ok());
  EXPECT_LT(std::chrono::steady_clock::now() - stopped_at, std::chrono::seconds(10));
  // The abandoned follow-up still reports, as cut short.
  EXPECT_EQ(c->done.load(), 1u);
  std::lock_guard lock(sink.mu);
  ASSERT_EQ(sink.evidence.size(), 1u);
  const ServiceEvidence& ev = sink.evidence.begin()->second;
  ASSERT_TRUE(ev.banner.has_value());
  EXPECT_TRUE(ev.banner->bytes.empty());
  EXPECT_FALSE(ev.banner->error.empty());
}

}  // namespace
}  // namespace ndo
