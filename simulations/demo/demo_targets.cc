// ndo-demo-targets: a little loopback "lab" for `make demo`. It opens
// accepting listeners (open ports) and saturated ones (their full accept queue
// makes the kernel drop SYNs: filtered ports) on given 127.x addresses; every
// other port there is closed. Runs until SIGTERM/SIGINT; writes --ready FILE
// once everything listens. Loopback only: it refuses non-127/8 addresses.
#include <arpa/inet.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "support/loopback_listeners.h"

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

}  // namespace

int main(int argc, char** argv) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  ndo::testing::AcceptingListeners open;
  std::vector<std::unique_ptr<ndo::testing::SaturatedListener>> filtered;
  std::string ready;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--ready" && i + 1 < argc) {
      ready = argv[++i];
      continue;
    }
    bool is_open = arg == "--open", is_filtered = arg == "--filtered";
    if ((!is_open && !is_filtered) || i + 1 >= argc) {
      std::fprintf(stderr, "usage: ndo-demo-targets [--open 127.X.Y.Z:PORT]... [--filtered 127.X.Y.Z:PORT]... [--ready FILE]\n");
      return 2;
    }
    std::string ip;
    uint16_t port = 0;
    if (!SplitEndpoint(argv[++i], ip, port)) {
      std::fprintf(stderr, "ndo-demo-targets: '%s' is not a 127.0.0.0/8 address:port\n", argv[i]);
      return 2;
    }
    bool ok = is_open ? open.Add(ip, port) : (filtered.push_back(std::make_unique<ndo::testing::SaturatedListener>()),
                                              filtered.back()->Open(ip, port));
    if (!ok) {
      std::fprintf(stderr, "ndo-demo-targets: cannot listen on %s:%u: %s\n", ip.c_str(), port, std::strerror(errno));
      return 1;
    }
  }
  if (!ready.empty()) std::ofstream(ready) << "ready\n";
  int sig = 0;
  sigwait(&set, &sig);
  return 0;
}
