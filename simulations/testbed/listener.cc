// ndo-testbed-listener: a tiny TCP sink for the ndo scan testbed.
//
// Listens on 0.0.0.0 (and optionally [::]) on a list of TCP ports, accepts
// every connection and closes it at once, so the accept queue never fills even
// when a scanner opens tens of thousands of connections per second. It is meant
// to run inside the testbed's target network namespace (see testbed.sh), where
// an AnyIP route makes a whole address range local and nftables decides which
// host:port pairs reach it.
//
// Usage:
//   ndo-testbed-listener --ports 21,22,80,8000-8010 [--ready FILE] [--ipv6]
//                        [--backlog N] [--rst] [--stats]
//
// Exits 0 on SIGTERM/SIGINT. Plain C++20 + Linux epoll/signalfd, no deps.

#include <arpa/inet.h>
#include <csignal>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <string_view>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

constexpr const char* kProg = "ndo-testbed-listener";

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "%s: %s\n", kProg, msg.c_str());
  std::exit(2);
}

void usage(int code) {
  std::fprintf(code == 0 ? stdout : stderr,
               "usage: %s --ports LIST [--ready FILE] [--ipv6] [--backlog N] [--rst] [--stats]\n"
               "  --ports LIST   comma-separated TCP ports or ranges, e.g. 21,22,80,8000-8010\n"
               "  --ready FILE   write this file (containing the pid) once every socket listens\n"
               "  --ipv6         also listen on [::] (IPV6_V6ONLY); failure to do so is a warning\n"
               "  --backlog N    listen backlog (default 65535; the kernel caps it at somaxconn)\n"
               "  --rst          close accepted connections with SO_LINGER 0 (RST, no TIME_WAIT)\n"
               "  --stats        print the number of accepted connections on exit\n",
               kProg);
  std::exit(code);
}

bool parse_uint(std::string_view s, unsigned long max, unsigned long& out) {
  if (s.empty() || s.size() > 10) return false;
  unsigned long v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned long>(c - '0');
  }
  if (v > max) return false;
  out = v;
  return true;
}

std::vector<uint16_t> parse_ports(std::string_view list) {
  std::vector<bool> seen(65536, false);
  std::vector<uint16_t> ports;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    if (item.empty()) continue;
    unsigned long lo = 0, hi = 0;
    size_t dash = item.find('-');
    if (dash == std::string_view::npos) {
      if (!parse_uint(item, 65535, lo)) die("bad port: " + std::string(item));
      hi = lo;
    } else if (!parse_uint(item.substr(0, dash), 65535, lo) ||
               !parse_uint(item.substr(dash + 1), 65535, hi) || lo > hi) {
      die("bad port range: " + std::string(item));
    }
    if (lo == 0) die("port 0 is not allowed");
    for (unsigned long p = lo; p <= hi; ++p) {
      if (!seen[p]) {
        seen[p] = true;
        ports.push_back(static_cast<uint16_t>(p));
      }
    }
  }
  if (ports.empty()) die("no ports given (--ports LIST)");
  return ports;
}

void raise_nofile(size_t need) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur >= need) return;
  rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

int make_listener(int family, uint16_t port, int backlog, bool fatal) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    if (!fatal) return -1;
    die("socket: " + std::string(std::strerror(errno)));
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc;
  if (family == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = in6addr_any;
    sa.sin6_port = htons(port);
    rc = bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  } else {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    sa.sin_port = htons(port);
    rc = bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  }
  if (rc != 0 || listen(fd, backlog) != 0) {
    int err = errno;
    close(fd);
    std::string what = std::string(family == AF_INET6 ? "[::]:" : "0.0.0.0:") +
                       std::to_string(port) + ": " + std::strerror(err);
    if (!fatal) {
      std::fprintf(stderr, "%s: warning: cannot listen on %s\n", kProg, what.c_str());
      return -1;
    }
    die("cannot listen on " + what);
  }
  return fd;
}

void write_ready(const std::string& path) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) die("cannot write " + tmp + ": " + std::strerror(errno));
  std::fprintf(f, "%d\n", static_cast<int>(getpid()));
  if (std::fclose(f) != 0) die("cannot write " + tmp);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) die("cannot rename to " + path);
}

}  // namespace

int main(int argc, char** argv) {
  std::string ports_arg, ready_path;
  bool ipv6 = false, rst = false, stats = false;
  unsigned long backlog = 65535;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view name) -> std::string {
      if (i + 1 >= argc) die("missing value for " + std::string(name));
      return argv[++i];
    };
    if (a == "--ports" || a == "-p") ports_arg = value(a);
    else if (a.starts_with("--ports=")) ports_arg = std::string(a.substr(8));
    else if (a == "--ready") ready_path = value(a);
    else if (a.starts_with("--ready=")) ready_path = std::string(a.substr(8));
    else if (a == "--backlog") {
      if (!parse_uint(value(a), 1u << 30, backlog) || backlog == 0) die("bad --backlog");
    } else if (a == "--ipv6") ipv6 = true;
    else if (a == "--rst") rst = true;
    else if (a == "--stats") stats = true;
    else if (a == "-h" || a == "--help") usage(0);
    else {
      std::fprintf(stderr, "%s: unknown argument: %s\n", kProg, argv[i]);
      usage(2);
    }
  }
  if (ports_arg.empty()) usage(2);
  std::vector<uint16_t> ports = parse_ports(ports_arg);
  raise_nofile(ports.size() * (ipv6 ? 2 : 1) + 64);

  // Block the signals we handle and read them through a signalfd, so the
  // epoll loop is the only place anything happens.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &mask, nullptr) != 0) die("sigprocmask failed");
  std::signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) die("signalfd: " + std::string(std::strerror(errno)));

  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1: " + std::string(std::strerror(errno)));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = sfd;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) != 0) die("epoll_ctl(signalfd) failed");

  std::vector<int> listeners;
  auto add = [&](int fd) {
    if (fd < 0) return;
    epoll_event e{};
    e.events = EPOLLIN;  // level-triggered: anything not drained now comes back
    e.data.fd = fd;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0) die("epoll_ctl(listener) failed");
    listeners.push_back(fd);
  };
  for (uint16_t p : ports) {
    add(make_listener(AF_INET, p, static_cast<int>(backlog), true));
    if (ipv6) add(make_listener(AF_INET6, p, static_cast<int>(backlog), false));
  }
  if (!ready_path.empty()) write_ready(ready_path);
  std::fprintf(stderr, "%s: pid %d listening on %zu sockets (%zu ports)\n", kProg,
               static_cast<int>(getpid()), listeners.size(), ports.size());

  const linger lin0{1, 0};
  unsigned long long accepted = 0;
  std::vector<epoll_event> events(256);
  bool running = true;
  while (running) {
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait: " + std::string(std::strerror(errno)));
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == sfd) {
        signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) running = false;
        continue;
      }
      // Drain a bounded batch per wakeup so one busy port cannot starve others.
      for (int k = 0; k < 1024; ++k) {
        int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
          if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            std::fprintf(stderr, "%s: accept: %s\n", kProg, std::strerror(errno));
          }
          break;  // EAGAIN or an error we wait out
        }
        if (rst) setsockopt(c, SOL_SOCKET, SO_LINGER, &lin0, sizeof lin0);
        close(c);
        ++accepted;
      }
    }
  }

  for (int fd : listeners) close(fd);
  close(ep);
  close(sfd);
  if (!ready_path.empty()) unlink(ready_path.c_str());
  if (stats) std::fprintf(stderr, "%s: accepted %llu connections\n", kProg, accepted);
  return 0;
}
