#include "cli/scan_options.h"

#include <unistd.h>

#include <random>

#include "scan/port_list.h"

namespace ndo {

Result<ScanSpec> BuildScanSpec(const ScanOptions& o, const std::vector<std::string>& arguments,
                               const Resolver& resolve) {
  ScanSpec spec;
  spec.arguments = arguments;
  if (o.targets.empty() && o.input_lists.empty())
    return Status::InvalidArgument("no targets given (name them, or use -iL FILE)");
  for (const auto& t : o.targets)
    if (Status s = AddTargetList(t, resolve, spec.targets); !s.ok()) return s;
  for (const auto& f : o.input_lists)
    if (Status s = AddTargetFile(f, resolve, spec.targets); !s.ok()) return s;

  TargetSet excluded;
  for (const auto& e : o.excludes)
    if (Status s = AddTargetList(e, resolve, excluded); !s.ok()) return s.WithContext("--exclude");
  for (const auto& f : o.exclude_files)
    if (Status s = AddTargetFile(f, resolve, excluded); !s.ok()) return s.WithContext("--exclude-file");
  spec.targets.addresses.Subtract(excluded.addresses);
  std::erase_if(spec.targets.names, [&](const NamedAddress& n) { return !spec.targets.addresses.Contains(n.address.value()); });

  if (!o.ports.empty() && o.top_ports) return Status::InvalidArgument("give either -p or --top-ports, not both");
  auto ports = !o.ports.empty() ? ParsePortList(o.ports) : TopPorts(o.top_ports.value_or(kDefaultTopPorts));
  if (!ports.ok()) return ports.status();
  spec.ports = std::move(*ports);

  if (!o.scope.empty()) {
    auto scope = ParseAddressList(o.scope);
    if (!scope.ok()) return scope.status().WithContext("--scope");
    if (scope->empty()) return Status::InvalidArgument("--scope is empty");
    spec.has_scope = true;
    spec.scope = std::move(*scope);
  }

  spec.seed = o.seed ? *o.seed : (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  spec.store_all = o.store_all;
  if (o.rate < 0) return Status::InvalidArgument("--rate must not be negative");
  spec.probe.rate = o.rate;
  spec.probe.concurrency = o.concurrency;
  spec.probe.max_retries = o.max_retries.value_or(-1);
  if (o.max_retries && *o.max_retries < 0) return Status::InvalidArgument("--max-retries must not be negative");
  spec.probe.timeout_ms = o.timeout_ms;
  spec.probe.initial_rtt_ms = o.initial_rtt_ms;
  spec.probe.min_rtt_ms = o.min_rtt_ms;
  spec.probe.max_rtt_ms = o.max_rtt_ms;
  if (o.min_rtt_ms == 0 || o.min_rtt_ms > o.max_rtt_ms)
    return Status::InvalidArgument("--min-rtt-timeout must be positive and at most --max-rtt-timeout");
  if (o.shards && *o.shards == 0) return Status::InvalidArgument("--shards must be at least 1");

  spec.service.banners = o.banners;
  spec.service.tls = o.tls;
  if (o.tls_ports == "all") {
    spec.service.tls_all_ports = true;
  } else if (!o.tls_ports.empty()) {
    auto tp = ParsePortList(o.tls_ports);
    if (!tp.ok()) return tp.status().WithContext("--tls-ports");
    spec.service.tls_ports = std::move(*tp);
  } else {
    spec.service.tls_ports = DefaultTlsPorts();
  }
  if (!o.tls_ca_file.empty() && access(o.tls_ca_file.c_str(), R_OK) != 0)
    return Status::InvalidArgument("--tls-ca-file: cannot read '" + o.tls_ca_file + "'");
  spec.service.tls_ca_file = o.tls_ca_file;
  if (o.service_timeout_ms == 0 || o.service_concurrency == 0)
    return Status::InvalidArgument("--service-timeout and --service-concurrency must be positive");
  spec.service.timeout = std::chrono::milliseconds(o.service_timeout_ms);
  spec.service.concurrency = o.service_concurrency;

  if (Status valid = ValidateSpec(spec); !valid.ok()) return valid;  // scope and size
  spec.shard_count = o.shards ? *o.shards : DefaultShardCount(spec.ProbeCount());
  return spec;
}

}  // namespace ndo
