// Follow-ups on open ports, run beside the scan: a TLS handshake that collects
// the certificate chain (on TLS ports), and a banner grab (what the service
// says, or answers to a minimal HTTP request). Bounded like the scan itself:
// a concurrency limit and a deadline per port, so a hostile or stalled
// service costs one slot for at most `timeout`, never the scan.
//
// The protocol logic lives in the sans-IO TlsClientSession and BannerSession;
// this is their Asio driver, on one thread of its own.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "scan/interval_set.h"
#include "scan/service/evidence.h"
#include "scan/target_parser.h"

namespace ndo {

class TlsClientContext;

struct ServiceProbeOptions {
  bool banners = false;
  bool tls = false;
  bool tls_all_ports = false;       // --tls-ports all
  std::vector<uint16_t> tls_ports;  // sorted; used unless tls_all_ports
  uint32_t concurrency = 512;
  std::chrono::milliseconds timeout{4000};  // per follow-up connection, connect to last byte
  std::string tls_ca_file;          // extra trusted CAs (PEM)
};

// Nmap's usual TLS ports: HTTPS, SMTPS, LDAPS, DNS over TLS, IMAPS, POP3S, SIPS, ...
std::vector<uint16_t> DefaultTlsPorts();
bool WantsTls(const ServiceProbeOptions& o, uint16_t port);

// Receives evidence from the prober's thread, a batch at a time.
class EvidenceSink {
 public:
  virtual ~EvidenceSink() = default;
  virtual Status Consume(std::vector<ServiceEvidence>&& batch) = 0;
};

struct ServiceProbeCounters {
  std::atomic<uint64_t> queued{0};
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> tls_handshakes{0};
  std::atomic<uint64_t> banners{0};
};

class ServiceProber {
 public:
  // `names` (hostnames for SNI and HTTP Host) and `scope` must outlive the prober.
  static Result<std::unique_ptr<ServiceProber>> Create(ServiceProbeOptions options, const TargetSet& names,
                                                       const IntervalSet* scope, EvidenceSink& sink);
  ~ServiceProber();

  // Thread-safe: follow up on an open port.
  void Enqueue(IpAddress address, uint16_t port);
  // Waits until every queued follow-up is done, then stops the thread.
  Status Drain();
  // Thread-safe: abandon queued and running follow-ups soon.
  void Stop();
  const ServiceProbeCounters& counters() const;

 private:
  class Impl;
  explicit ServiceProber(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ndo
