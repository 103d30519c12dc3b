// Real TCP listeners on 127.x addresses for engine and CLI tests: accepting
// ("open") and saturated ("filtered": a full accept queue makes the kernel drop
// SYNs, so the prober sees no answer). Ports with no listener are "closed".
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace ndo::testing {

inline int BindListener(const std::string& ip, uint16_t port, int backlog) {
  // Close-on-exec: daemons a test spawns must not inherit (and keep open)
  // the test's listeners.
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, backlog) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

inline uint16_t LocalPort(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// A port on `ip` that nothing listens on (bound, then released).
inline uint16_t UnusedPort(const std::string& ip) {
  int fd = BindListener(ip, 0, 1);
  uint16_t p = LocalPort(fd);
  close(fd);
  return p;
}

// Accepts and closes connections on a set of sockets until destroyed.
class AcceptingListeners {
 public:
  ~AcceptingListeners() {
    stop_ = true;
    for (auto& t : threads_) t.join();
    for (int fd : fds_) close(fd);
  }
  bool Add(const std::string& ip, uint16_t port) {
    int fd = BindListener(ip, port, 4096);
    if (fd < 0) return false;
    fds_.push_back(fd);
    timeval tv{0, 20000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    threads_.emplace_back([this, fd] {
      while (!stop_) {
        int c = accept(fd, nullptr, nullptr);
        if (c >= 0) {
          accepted_++;
          close(c);
        }
      }
    });
    return true;
  }
  uint64_t accepted() const { return accepted_; }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> accepted_{0};
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
};

// A listener whose accept queue is full and never drained: SYNs to it are dropped.
class SaturatedListener {
 public:
  bool Open(const std::string& ip, uint16_t port) {
    listen_fd_ = BindListener(ip, port, 0);
    if (listen_fd_ < 0) return false;
    // Fill the queue (backlog 0 admits one) and then some, without accepting.
    for (int i = 0; i < 3; ++i) {
      int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
      connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a);
      clients_.push_back(c);
    }
    usleep(50000);  // let the handshakes settle into the queue
    return true;
  }
  ~SaturatedListener() {
    for (int c : clients_) close(c);
    if (listen_fd_ >= 0) close(listen_fd_);
  }

 private:
  int listen_fd_ = -1;
  std::vector<int> clients_;
};

}  // namespace ndo::testing
