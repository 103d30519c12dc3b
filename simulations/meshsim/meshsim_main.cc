// meshsim: runs one measured scenario of the membership core for N nodes on a
// simulated network and prints its figures; --csv appends them as rows,
// --curve writes the dissemination curve that plot.gp draws.
//
//   meshsim detect    --nodes 1000 --loss 0.01 --repeats 30
//   meshsim join      --nodes 1000 --loss 0.01 --repeats 10
//   meshsim falsepos  --nodes 1000 --loss 0.10 --duration 3600
//   meshsim partition --nodes 1000
//   meshsim coldjoin  --nodes 1000
//   meshsim detect    --nodes 1000 --loss 0.01 --repeats 40 --seal
//   meshsim work      --nodes 1000 --vantages 2 --shards-per-pool 1000 --crash-fraction 0.1
//   meshsim work      --nodes 1000 --vantages 2 --shards-per-pool 1000 --crash-fraction 0.1 --signatures
//   meshsim rejoin    --nodes 5 --island 1
//   meshsim keys      --nodes 1000 --cut-fraction 0.01
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "base/log.h"
#include "scenarios.h"
#include "sim_work.h"

namespace {

long PeakRssKb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace ndo::mesh::sim;
  CLI::App app{"meshsim: the ndo membership core on a simulated network"};
  std::string scenario;
  ScenarioOptions o;
  std::string csv, curve;
  bool no_bytes = false;
  app.add_option("scenario", scenario, "detect | join | falsepos | partition | coldjoin | work | rejoin | keys")
      ->required()
      ->check(CLI::IsMember({"detect", "join", "falsepos", "partition", "coldjoin", "work", "rejoin", "keys"}));
  app.add_option("--nodes", o.nodes, "number of nodes")->check(CLI::Range(3, 100000));
  app.add_option("--seed", o.seed, "seed of the whole run (same seed, same trace)");
  app.add_option("--loss", o.loss, "datagram loss rate, each way")->check(CLI::Range(0.0, 0.9));
  app.add_option("--repeats", o.repeats, "crashes or joins")->check(CLI::Range(1, 10000));
  app.add_option("--duration", o.duration_s, "simulated seconds (falsepos)")->check(CLI::Range(1.0, 1e6));
  app.add_option("--stall-fraction", o.stall_fraction, "share of nodes stalled at any time (falsepos)")
      ->check(CLI::Range(0.0, 0.5));
  app.add_option("--stall", o.stall_s, "seconds per stall (falsepos)")->check(CLI::Range(0.0, 60.0));
  app.add_option("--csv", csv, "append figures to this CSV file");
  app.add_option("--curve", curve, "write the dissemination curve (CSV) here");
  app.add_flag("--no-bytes", no_bytes, "do not encode datagrams to count bytes (faster; ignored with --seal)");
  app.add_flag("--seal", o.seal,
               "seal every datagram as the daemon does (encode, AES-256-GCM seal per sender, open with a replay "
               "window per sender, sender check, decode); bytes then include the seal's 53 bytes, and the "
               "seal_* figures count what the seals dropped (0 in a correct run). The counters are tied to "
               "each node's simulated wall clock as in the daemon. Slower (~2.5x CPU). Memory: each node keeps a replay window (~200 bytes with the "
               "map) per sender it heard, up to N^2 of them: 0.2-0.4 GB more at N=1000 (measured), 20 GB or "
               "more at N=10,000, which is why run_acceptance.sh does not run it there");
  bool seal_without_clock = false;
  app.add_flag("--seal-without-clock", seal_without_clock,
               "with --seal, do not tie the seals' counters to the wall clock as the daemon does "
               "(AeadSeal::SetClock): counters then rise by one per datagram, and a run gives the same trace "
               "as without --seal");
  // The node services (sim_services.cc): on unless turned off.
  bool no_rejoin = false, no_security_sync = false;
  app.add_flag("--no-rejoin", no_rejoin,
               "do not run the daemon's RejoinPolicy (joins not retried, no rejoin of a node alone); "
               "the rejoin scenario runs without it anyway for comparison");
  app.add_flag("--no-security-sync", no_security_sync,
               "with --seal, do not run SecuritySync (one keyring forever, no security traffic); keys needs it");
  app.add_option("--isolate", o.isolate_s,
                 "seconds the island is cut off (rejoin; default 0: until both sides have reaped each other)")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--island", o.island, "nodes cut off together (rejoin)")->check(CLI::Range(1, 100000));
  app.add_option("--cut-fraction", o.cut_fraction, "share of nodes cut off for 3 s as the rotation is pushed (keys)")
      ->check(CLI::Range(0.0, 0.5));
  int reap_after_s = 0;
  app.add_option("--reap-after", reap_after_s, "seconds after which a dead member is forgotten (default 600)")
      ->check(CLI::Range(1, 100000));
  // Protocol settings, to explore; the defaults are the daemon's.
  int probe_interval_ms = 0, probe_timeout_ms = 0, suspicion_floor_ms = 0, gossip_interval_ms = 0;
  app.add_option("--gossip-interval-ms", gossip_interval_ms)->check(CLI::Range(10, 60000));
  double suspicion_mult = 0;
  app.add_option("--probe-interval-ms", probe_interval_ms)->check(CLI::Range(10, 60000));
  app.add_option("--probe-timeout-ms", probe_timeout_ms)->check(CLI::Range(5, 60000));
  app.add_option("--suspicion-floor-ms", suspicion_floor_ms)->check(CLI::Range(0, 600000));
  app.add_option("--suspicion-mult", suspicion_mult)->check(CLI::Range(0.0, 100.0));
  // work: a distributed scan on top of the mesh (sim_work.h).
  WorkScenarioOptions w;
  app.add_option("--vantages", w.vantages, "vantages (work); node i is in vantage i % V")->check(CLI::Range(1, 64));
  app.add_option("--shards-per-pool", w.shards_per_pool, "shards of each vantage's pool (work)")
      ->check(CLI::Range(1u, 65536u));
  app.add_option("--crash-fraction", w.crash_fraction, "share of nodes crashed during the scan (work)")
      ->check(CLI::Range(0.0, 0.5));
  app.add_option("--coordinator-crashes", w.coordinator_crashes,
                 "of the crashes, how many take the coordinator of the moment (work)")
      ->check(CLI::Range(0, 1000));
  app.add_option("--coordinator-crash-at", w.coordinator_crash_at_s,
                 "seconds after the submission of the first coordinator crash (work; default: the middle crash)")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--shard-probes", w.shard_probes, "probes per shard (work)")->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32));
  app.add_option("--rate", w.rate, "probes per second per node, nominal (work)")->check(CLI::Range(1.0, 1e9));
  app.add_option("--hit-rate", w.hit_rate, "share of probes that yield a result (work)")->check(CLI::Range(0.0, 1.0));
  app.add_option("--time-limit", w.time_limit_s, "simulated seconds after the submission (work)")
      ->check(CLI::Range(1.0, 1e6));
  app.add_flag("--signatures", w.signatures,
               "sign and check scan records with a key and certificate per node, and measure it (work)");
  app.add_flag("--progress", w.progress, "print progress every 30 simulated seconds on stderr (work)");
  // The work cores log as in the daemon (every grant, every shard done): a
  // thousand of them would bury the figures, so only errors by default.
  std::string log_level = "error";
  app.add_option("--log-level", log_level, "log level of the cores (debug, info, warn, error)");
  CLI11_PARSE(app, argc, argv);
  if (auto level = ndo::ParseLogLevel(log_level); level.ok()) {
    ndo::SetLogLevel(*level);
  } else {
    std::fprintf(stderr, "meshsim: %s\n", level.status().message().c_str());
    return 2;
  }
  o.count_bytes = !no_bytes;
  o.seal_clock = !seal_without_clock;
  using std::chrono::milliseconds;
  if (probe_interval_ms) o.membership.probe_interval = milliseconds(probe_interval_ms);
  if (probe_timeout_ms) o.membership.probe_timeout = milliseconds(probe_timeout_ms);
  if (suspicion_floor_ms) o.membership.suspicion_floor = milliseconds(suspicion_floor_ms);
  if (suspicion_mult > 0) o.membership.suspicion_mult = suspicion_mult;
  if (gossip_interval_ms) o.membership.gossip_interval = milliseconds(gossip_interval_ms);
  if (reap_after_s) o.membership.reap_after = std::chrono::seconds(reap_after_s);
  o.rejoin = !no_rejoin;
  o.security_sync = !no_security_sync;

  auto wall_start = std::chrono::steady_clock::now();
  Figures f;
  if (scenario == "detect") f = CrashDetection(o);
  else if (scenario == "join") f = JoinDissemination(o);
  else if (scenario == "falsepos") f = FalsePositives(o);
  else if (scenario == "partition") f = PartitionHeal(o);
  else if (scenario == "work") f = DistributedScan(o, w);
  else if (scenario == "rejoin") f = IsolatedRejoin(o);
  else if (scenario == "keys") f = KeyRotation(o);
  else f = ColdJoin(o);
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  f.Add("wall_s", wall);
  f.Add("peak_rss_mb", static_cast<double>(PeakRssKb()) / 1024.0);

  std::printf("scenario %s seed %llu\n", scenario.c_str(), static_cast<unsigned long long>(o.seed));
  for (const auto& [k, v] : f.values) std::printf("  %-32s %.3f\n", k.c_str(), v);

  if (!csv.empty()) {
    bool fresh = !std::ifstream(csv).good();
    std::ofstream out(csv, std::ios::app);
    if (!out) {
      std::fprintf(stderr, "meshsim: cannot write %s\n", csv.c_str());
      return 1;
    }
    if (fresh) out << "scenario,nodes,loss,seed,metric,value\n";
    for (const auto& [k, v] : f.values)
      out << scenario << ',' << o.nodes << ',' << o.loss << ',' << o.seed << ',' << k << ',' << v << '\n';
  }
  if (!curve.empty()) {
    std::ofstream out(curve);
    if (!out) {
      std::fprintf(stderr, "meshsim: cannot write %s\n", curve.c_str());
      return 1;
    }
    out << "series,seconds,fraction\n";
    for (const auto& [series, t, frac] : f.curve) out << series << ',' << t << ',' << frac << '\n';
  }
  return 0;
}
