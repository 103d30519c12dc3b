// ndo-demo-targets: a little loopback "lab" for `make demo`. It opens
// accepting listeners (open ports), saturated ones (their full accept queue
// makes the kernel drop SYNs: filtered ports), services that greet with a
// banner, and TLS servers whose certificates it makes itself (a demo CA with
// two issuing organisations, expired and self-signed leaves), on given 127.x
// addresses; every other port there is closed. Runs until SIGTERM/SIGINT;
// writes --ready FILE once everything listens, and the demo CA to --ca-out.
// Loopback only: it refuses addresses outside 127.0.0.0/8.
#include <arpa/inet.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "support/loopback_listeners.h"
#include "support/service_servers.h"
#include "support/test_certs.h"

namespace {

bool SplitEndpoint(const std::string& s, std::string& ip, uint16_t& port) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return false;
  ip = s.substr(0, colon);
  in_addr a{};
  if (inet_pton(AF_INET, ip.c_str(), &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) return false;
  int p = std::atoi(s.c_str() + colon + 1);
  if (p < 1 || p > 65535) return false;
  port = static_cast<uint16_t>(p);
  return true;
}

// The demo's private PKI: two issuing CAs of different organisations.
struct DemoPki {
  ndo::testing::PkeyPtr campus_key = ndo::testing::MakeKey(ndo::testing::KeyType::kEcP256);
  ndo::testing::PkeyPtr le_key = ndo::testing::MakeKey(ndo::testing::KeyType::kEcP256);
  ndo::testing::X509Ptr campus = Ca("Demo Campus Issuing CA", "Demo University", campus_key.get(), "10");
  ndo::testing::X509Ptr le = Ca("R3 (demo)", "Let's Encrypt (demo)", le_key.get(), "11");
  std::vector<ndo::testing::PkeyPtr> keys;
  std::vector<ndo::testing::X509Ptr> certs;

  static ndo::testing::X509Ptr Ca(const std::string& cn, const std::string& o, EVP_PKEY* key, const std::string& serial) {
    ndo::testing::CertSpec s;
    s.cn = cn;
    s.o = o;
    s.key = key;
    s.not_before = ndo::testing::UnixTime(2015, 1, 1);
    s.not_after = ndo::testing::UnixTime(2045, 1, 1);
    s.is_ca = true;
    s.serial_hex = serial;
    return ndo::testing::MakeCert(s);
  }

  // kind: campus, letsencrypt, expired-2016, expired-2019, self-signed
  bool Serve(ndo::testing::ServiceServers& servers, const std::string& ip, uint16_t port, const std::string& kind) {
    ndo::testing::CertSpec s;
    s.cn = "host-" + ip + ".demo";
    s.o = "Demo Department";
    s.sans = {"DNS:" + s.cn};
    s.not_before = ndo::testing::UnixTime(2025, 1, 1);
    s.not_after = ndo::testing::UnixTime(2030, 1, 1);
    s.serial_hex = std::to_string(100 + certs.size());
    EVP_PKEY* issuer_key = campus_key.get();
    const X509* issuer = campus.get();
    if (kind == "letsencrypt") {
      issuer_key = le_key.get();
      issuer = le.get();
    } else if (kind == "expired-2016" || kind == "expired-2019") {
      int year = kind == "expired-2016" ? 2016 : 2019;
      s.not_before = ndo::testing::UnixTime(year - 2, 3, 1);
      s.not_after = ndo::testing::UnixTime(year, 3, 1);
    } else if (kind == "self-signed") {
      issuer_key = nullptr;
      issuer = nullptr;
    } else if (kind != "campus") {
      return false;
    }
    keys.push_back(ndo::testing::MakeKey(ndo::testing::KeyType::kEcP256));
    s.key = keys.back().get();
    s.issuer = issuer;
    s.issuer_key = issuer_key;
    certs.push_back(ndo::testing::MakeCert(s));
    std::vector<X509*> chain = {certs.back().get()};
    if (issuer) chain.push_back(const_cast<X509*>(issuer));
    return certs.back() && servers.Tls(ip, port, keys.back().get(), chain);
  }
};

}  // namespace

int main(int argc, char** argv) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  ndo::testing::AcceptingListeners open;
  std::vector<std::unique_ptr<ndo::testing::SaturatedListener>> filtered;
  std::string ready, ca_out;
  ndo::testing::ServiceServers services;
  DemoPki pki;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--ready" && i + 1 < argc) {
      ready = argv[++i];
      continue;
    }
    if (arg == "--ca-out" && i + 1 < argc) {
      ca_out = argv[++i];
      continue;
    }
    bool is_open = arg == "--open", is_filtered = arg == "--filtered";
    bool is_banner = arg == "--banner", is_tls = arg == "--tls";
    int values = is_banner || is_tls ? 2 : 1;
    if ((!is_open && !is_filtered && !is_banner && !is_tls) || i + values >= argc) {
      std::fprintf(stderr,
                   "usage: ndo-demo-targets [--open 127.X.Y.Z:PORT]... [--filtered 127.X.Y.Z:PORT]...\n"
                   "         [--banner 127.X.Y.Z:PORT TEXT]... [--tls 127.X.Y.Z:PORT campus|letsencrypt|"
                   "expired-2016|expired-2019|self-signed]...\n         [--ca-out FILE] [--ready FILE]\n");
      return 2;
    }
    std::string ip;
    uint16_t port = 0;
    if (!SplitEndpoint(argv[++i], ip, port)) {
      std::fprintf(stderr, "ndo-demo-targets: '%s' is not a 127.0.0.0/8 address:port\n", argv[i]);
      return 2;
    }
    bool ok = false;
    if (is_open) ok = open.Add(ip, port);
    else if (is_filtered) ok = (filtered.push_back(std::make_unique<ndo::testing::SaturatedListener>()),
                                filtered.back()->Open(ip, port));
    else if (is_banner) ok = services.Banner(ip, port, std::string(argv[++i]) + "\r\n");
    else ok = pki.Serve(services, ip, port, argv[++i]);
    if (!ok) {
      std::fprintf(stderr, "ndo-demo-targets: cannot listen on %s:%u: %s\n", ip.c_str(), port, std::strerror(errno));
      return 1;
    }
  }
  if (!ca_out.empty() && !ndo::testing::WriteCaFile(ca_out, {pki.campus.get(), pki.le.get()})) {
    std::fprintf(stderr, "ndo-demo-targets: cannot write %s\n", ca_out.c_str());
    return 1;
  }
  if (!ready.empty()) std::ofstream(ready) << "ready\n";
  int sig = 0;
  sigwait(&set, &sig);
  return 0;
}
