// ProbeScheduler against a simulated network: a seeded, event-driven model of
// hosts that answer (open/closed), drop everything (dead), and a link that
// loses packets. Time is simulated, so every run is deterministic and fast.
#include "scan/probe_scheduler.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

namespace ndo {
namespace {

using namespace std::chrono_literals;

struct SimNetwork {
  std::set<std::pair<uint32_t, uint16_t>> open;  // (v4, port)
  std::set<uint32_t> alive;
  double loss = 0;  // each direction
  std::chrono::microseconds rtt = 300us;
  std::mt19937_64 rng{1};

  // What answer (if any) a probe gets.
  std::optional<ProbeOutcome> Answer(const ProbeTarget& t) {
    std::uniform_real_distribution<double> u(0, 1);
    if (u(rng) < loss) return std::nullopt;  // SYN lost
    if (!alive.count(t.address.v4())) return std::nullopt;
    if (u(rng) < loss) return std::nullopt;  // answer lost
    return open.count({t.address.v4(), t.port}) ? ProbeOutcome::kConnected : ProbeOutcome::kRefused;
  }
};

struct SimRun {
  std::vector<ProbeResult> results;
  std::vector<ShardProgress> progress;
  uint64_t attempts = 0;
  uint32_t max_in_flight = 0;
  SteadyTime end;
};

ScanSpec MakeSpec(uint32_t hosts, std::vector<uint16_t> ports, uint32_t shards, uint64_t seed = 3) {
  ScanSpec spec;
  spec.targets.addresses.Add({IpAddress::FromV4(0xc6120000u).value(), IpAddress::FromV4(0xc6120000u + hosts - 1).value()});
  spec.ports = std::move(ports);
  spec.shard_count = shards;
  spec.seed = seed;
  return spec;
}

std::vector<ShardWork> AllShards(const ScanPlan& plan) {
  std::vector<ShardWork> w;
  for (uint32_t k = 0; k < plan.shard_count(); ++k) w.push_back({k, plan.Shard(k).begin, plan.Shard(k).end});
  return w;
}

// Runs the scheduler to completion (or until `stop_after_results`) on the simulated network.
SimRun Simulate(const ScanPlan& plan, SchedulerConfig cfg, std::vector<ShardWork> work, SimNetwork& net,
                size_t stop_after_results = SIZE_MAX) {
  WorkSource source(std::move(work));
  SteadyTime now{};
  ProbeScheduler sched(plan, cfg, &source, now, 1'700'000'000'000'000);
  std::multimap<SteadyTime, std::pair<uint32_t, ProbeOutcome>> arrivals;
  std::map<uint32_t, uint64_t> slot_generation;  // detect answers to aborted probes
  std::map<uint32_t, uint64_t> pending_generation;
  uint64_t generation = 0;
  SimRun run;
  std::vector<ProbeRequest> start;
  std::vector<uint32_t> abort;
  for (int guard = 0; guard < 10'000'000 && !sched.Finished(); ++guard) {
    start.clear();
    abort.clear();
    sched.Poll(now, start, abort);
    for (uint32_t s : abort) {
      slot_generation[s] = ++generation;
      sched.OnTimeout(s, now);
    }
    for (const auto& req : start) {
      ++run.attempts;
      slot_generation[req.slot] = ++generation;
      if (auto answer = net.Answer(req.target)) {
        arrivals.emplace(now + net.rtt, std::make_pair(req.slot, *answer));
        pending_generation[req.slot] = generation;
      }
    }
    run.max_in_flight = std::max(run.max_in_flight, sched.in_flight());
    auto batch = sched.TakeBatch();
    run.results.insert(run.results.end(), batch.results.begin(), batch.results.end());
    run.progress.insert(run.progress.end(), batch.progress.begin(), batch.progress.end());
    if (run.results.size() >= stop_after_results) sched.Stop();
    SteadyTime wake = sched.NextWakeup(now);
    if (!arrivals.empty() && arrivals.begin()->first < wake) wake = arrivals.begin()->first;
    now = std::max(now, wake);
    while (!arrivals.empty() && arrivals.begin()->first <= now) {
      auto [slot, outcome] = arrivals.begin()->second;
      arrivals.erase(arrivals.begin());
      if (slot_generation[slot] == pending_generation[slot]) sched.OnOutcome(slot, outcome, now);
    }
  }
  auto batch = sched.TakeBatch();
  run.results.insert(run.results.end(), batch.results.begin(), batch.results.end());
  run.progress.insert(run.progress.end(), batch.progress.begin(), batch.progress.end());
  run.end = now;
  return run;
}

SimNetwork MakeNetwork(uint32_t hosts, const std::vector<uint16_t>& ports, uint64_t seed) {
  SimNetwork net;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  for (uint32_t h = 0; h < hosts; ++h) {
    if (u(rng) >= 0.35) continue;
    net.alive.insert(0xc6120000u + h);
    for (uint16_t p : ports)
      if (u(rng) < 0.15) net.open.insert({0xc6120000u + h, p});
  }
  return net;
}

double Recall(const SimRun& run, const SimNetwork& net) {
  size_t found = 0;
  for (const auto& r : run.results)
    if (r.state == PortState::kOpen && net.open.count({r.address.v4(), r.port})) ++found;
  return static_cast<double>(found) / static_cast<double>(net.open.size());
}

TEST(ProbeScheduler, LosslessScanFindsExactlyTheTruthAndProbesEachOnceOrRetriesDead) {
  std::vector<uint16_t> ports = {22, 80, 443, 3389};
  ScanSpec spec = MakeSpec(512, ports, 5);
  auto plan = ScanPlan::Create(spec);
  ASSERT_TRUE(plan.ok());
  SimNetwork net = MakeNetwork(512, ports, 11);
  SchedulerConfig cfg;
  cfg.concurrency = 256;
  SimRun run = Simulate(*plan, cfg, AllShards(*plan), net);

  ASSERT_EQ(run.results.size(), plan->probe_count());  // one result per probe
  std::set<std::pair<uint32_t, uint16_t>> seen, open;
  for (const auto& r : run.results) {
    EXPECT_TRUE(seen.insert({r.address.v4(), r.port}).second) << "duplicate result";
    bool alive = net.alive.count(r.address.v4()) > 0;
    if (r.state == PortState::kOpen) open.insert({r.address.v4(), r.port});
    EXPECT_EQ(r.state == PortState::kFiltered, !alive);
    EXPECT_EQ(r.attempts, alive ? 1 : 2);  // dead hosts: one retry, as nothing showed loss
  }
  EXPECT_EQ(open, net.open);
  EXPECT_LE(run.max_in_flight, 256u);
  // Every shard reports done exactly once, at its end.
  std::set<uint32_t> done;
  for (const auto& p : run.progress)
    if (p.done) {
      EXPECT_TRUE(done.insert(p.shard).second);
      EXPECT_EQ(p.next_position, plan->Shard(p.shard).end);
    }
  EXPECT_EQ(done.size(), 5u);
}

TEST(ProbeScheduler, TenPercentLossBothWaysKeepsRecallAbove99Percent) {
  std::vector<uint16_t> ports;
  for (uint16_t p = 1; p <= 50; ++p) ports.push_back(p);
  ScanSpec spec = MakeSpec(1024, ports, 8);
  auto plan = ScanPlan::Create(spec);
  SimNetwork net = MakeNetwork(1024, ports, 5);
  net.loss = 0.10;
  SchedulerConfig cfg;
  cfg.concurrency = 2048;
  SimRun run = Simulate(*plan, cfg, AllShards(*plan), net);
  double recall = Recall(run, net);
  EXPECT_GE(recall, 0.99) << "recall " << recall;
  // Loss was noticed: some answers only came on a retry, so probes got more tries.
  int max_attempts = 0;
  for (const auto& r : run.results) max_attempts = std::max<int>(max_attempts, r.attempts);
  EXPECT_GT(max_attempts, 3);
}

TEST(ProbeScheduler, ExplicitRetriesAreExact) {
  ScanSpec spec = MakeSpec(64, {80}, 1);
  auto plan = ScanPlan::Create(spec);
  SimNetwork net;  // everything dead
  SchedulerConfig cfg;
  cfg.max_retries = 0;
  SimRun run = Simulate(*plan, cfg, AllShards(*plan), net);
  EXPECT_EQ(run.attempts, 64u);
  cfg.max_retries = 4;
  run = Simulate(*plan, cfg, AllShards(*plan), net);
  EXPECT_EQ(run.attempts, 64u * 5);
}

TEST(ProbeScheduler, RateLimitIsHonouredInSimulatedTime) {
  ScanSpec spec = MakeSpec(256, {80, 443}, 1);
  auto plan = ScanPlan::Create(spec);
  SimNetwork net = MakeNetwork(256, {80, 443}, 2);
  net.alive.clear();
  for (uint32_t h = 0; h < 256; ++h) net.alive.insert(0xc6120000u + h);  // all answer: one try each
  SchedulerConfig cfg;
  cfg.rate = 1000;
  SimRun run = Simulate(*plan, cfg, AllShards(*plan), net);
  double seconds = std::chrono::duration<double>(run.end - SteadyTime{}).count();
  EXPECT_EQ(run.attempts, 512u);
  EXPECT_NEAR(seconds, 0.512, 0.02);  // 512 probes at 1000/s
}

TEST(ProbeScheduler, StopThenResumeFromProgressCoversEverythingOnce) {
  std::vector<uint16_t> ports = {21, 22, 23, 25, 80};
  ScanSpec spec = MakeSpec(300, ports, 3);
  auto plan = ScanPlan::Create(spec);
  SimNetwork net = MakeNetwork(300, ports, 9);
  SchedulerConfig cfg;
  cfg.concurrency = 64;
  SimRun first = Simulate(*plan, cfg, AllShards(*plan), net, 400);
  ASSERT_LT(first.results.size(), plan->probe_count());

  // Resume exactly as the CLI does: the latest checkpoint of each shard.
  std::map<uint32_t, ShardProgress> latest;
  for (const auto& p : first.progress) latest[p.shard] = p;
  std::vector<ShardWork> rest;
  for (uint32_t k = 0; k < plan->shard_count(); ++k) {
    auto it = latest.find(k);
    if (it != latest.end() && it->second.done) continue;
    uint64_t begin = it != latest.end() ? it->second.next_position : plan->Shard(k).begin;
    rest.push_back({k, begin, plan->Shard(k).end});
  }
  SimRun second = Simulate(*plan, cfg, rest, net);

  std::set<std::pair<uint32_t, uint16_t>> covered;
  for (const auto* run : {&first, &second})
    for (const auto& r : run->results) covered.insert({r.address.v4(), r.port});
  EXPECT_EQ(covered.size(), plan->probe_count());  // nothing skipped
  // Only probes finished above a checkpoint (in flight order) are redone: a small overlap.
  EXPECT_LT(first.results.size() + second.results.size(), plan->probe_count() + 3 * 64u);
}

TEST(ProbeScheduler, LocalFailuresRequeueWithoutCountingAnAttempt) {
  ScanSpec spec = MakeSpec(4, {80}, 1);
  auto plan = ScanPlan::Create(spec);
  std::vector<ShardWork> work = AllShards(*plan);
  WorkSource source(work);
  SchedulerConfig cfg;
  cfg.concurrency = 4;
  SteadyTime now{};
  ProbeScheduler sched(*plan, cfg, &source, now, 0);
  std::vector<ProbeRequest> start;
  std::vector<uint32_t> abort;
  sched.Poll(now, start, abort);
  ASSERT_EQ(start.size(), 4u);
  EXPECT_TRUE(abort.empty());
  ProbeTarget failed = start[0].target;
  sched.OnLocalFailure(start[0].slot, now);
  for (size_t i = 1; i < start.size(); ++i) sched.OnOutcome(start[i].slot, ProbeOutcome::kRefused, now);
  start.clear();
  sched.Poll(now, start, abort);
  ASSERT_EQ(start.size(), 1u);
  EXPECT_EQ(start[0].target.address, failed.address);
  EXPECT_EQ(start[0].attempt, 0);
  sched.OnOutcome(start[0].slot, ProbeOutcome::kConnected, now + 1ms);
  start.clear();
  sched.Poll(now + 1ms, start, abort);
  EXPECT_TRUE(sched.Finished());
  auto batch = sched.TakeBatch();
  EXPECT_EQ(batch.results.size(), 4u);
}

}  // namespace
}  // namespace ndo
