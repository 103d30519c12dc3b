// Everything that defines a scan. Stored with the scan so that --resume (and,
// later, every mesh peer) runs it with exactly the same settings, never re-typed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "scan/interval_set.h"
#include "scan/permutation.h"
#include "scan/service/service_prober.h"
#include "scan/target_parser.h"

namespace ndo {

struct ProbeOptions {
  double rate = 0;              // probes per second; 0 = unlimited (bounded by concurrency)
  uint32_t concurrency = 0;     // in-flight probes; 0 = as many as descriptors allow
  int32_t max_retries = -1;     // -1 = adaptive up to kDefaultRetryCap
  uint32_t timeout_ms = 0;      // 0 = adaptive between min and max RTT timeouts
  uint32_t initial_rtt_ms = 500;
  uint32_t min_rtt_ms = 100;
  uint32_t max_rtt_ms = 1250;
};

inline constexpr int32_t kDefaultRetryCap = 6;
inline constexpr int32_t kMaxRetries = 50;

struct ScanSpec {
  std::vector<std::string> arguments;  // the command line as typed, for display and XML
  TargetSet targets;                   // after exclusions
  std::vector<uint16_t> ports;         // sorted, unique
  bool has_scope = false;
  IntervalSet scope;
  uint64_t seed = 0;
  uint32_t shard_count = 1;
  bool store_all = false;
  ProbeOptions probe;
  ServiceProbeOptions service;  // follow-ups on open ports (banners, TLS)

  // hosts x ports
  u128 ProbeCount() const { return targets.addresses.size() * ports.size(); }
};

// Checks the spec before anything is sent: non-empty, within the size ndo
// supports, and inside the scope. OutOfScope names the first offending range.
Status ValidateSpec(const ScanSpec& spec);

// Shards for a local scan: enough for every worker thread to have work and for
// resume to be fine-grained, but never so many that progress records pile up.
uint32_t DefaultShardCount(u128 probes);

struct ProbeTarget {
  IpAddress address;
  uint16_t port;
};

// The spec made walkable: the permutation, and the index -> (address, port) map.
// Index i stands for host i % H and port i / H, so consecutive indices differ
// in host; the permutation scatters them further.
class ScanPlan {
 public:
  static Result<ScanPlan> Create(const ScanSpec& spec);

  const ScanSpec& spec() const { return *spec_; }
  const Permutation& permutation() const { return perm_; }
  uint64_t probe_count() const { return perm_.size(); }
  uint32_t shard_count() const { return spec_->shard_count; }
  PositionRange Shard(uint32_t k) const { return ShardPositions(k, spec_->shard_count, perm_.cycle_length()); }
  ProbeTarget TargetAt(uint64_t index) const;

 private:
  const ScanSpec* spec_ = nullptr;
  Permutation perm_;
  uint64_t hosts_ = 0;
};

}  // namespace ndo
