// The options of `ndo scan` as typed, and their translation into a ScanSpec.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "scan/scan_spec.h"

namespace ndo {

struct ScanOptions {
  std::vector<std::string> targets;
  std::vector<std::string> input_lists;  // -iL
  std::vector<std::string> excludes;     // --exclude
  std::vector<std::string> exclude_files;
  std::string ports;                     // -p
  std::optional<size_t> top_ports;
  std::string scope;
  std::optional<uint64_t> seed;
  double rate = 0;
  uint32_t concurrency = 0;
  std::optional<int32_t> max_retries;
  uint32_t timeout_ms = 0;
  uint32_t initial_rtt_ms = 500, min_rtt_ms = 100, max_rtt_ms = 1250;
  std::optional<uint32_t> shards;
  bool store_all = false;
  // Follow-ups on open ports.
  bool banners = false;
  bool tls = false;
  std::string tls_ports;  // list, "all", or "" for DefaultTlsPorts()
  std::string tls_ca_file;
  uint32_t service_timeout_ms = 4000;
  uint32_t service_concurrency = 512;
};

inline constexpr size_t kDefaultTopPorts = 1000;  // as Nmap

// Builds and validates the spec. `arguments` is the command line, kept for display.
Result<ScanSpec> BuildScanSpec(const ScanOptions& options, const std::vector<std::string>& arguments,
                               const Resolver& resolve);

}  // namespace ndo
