// Loopback servers for follow-up tests: banner servers (say something, then
// hold the line), TLS servers (a given key and chain), and hostile ones
// (garbage instead of TLS, a handshake that stalls, a banner that never ends).
// Each runs on its own thread until the object is destroyed.
#pragma once

#include <openssl/ssl.h>
#include <poll.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "support/loopback_listeners.h"
#include "support/test_certs.h"

namespace ndo::testing {

class ServiceServers {
 public:
  ~ServiceServers() {
    stop_ = true;
    for (auto& t : threads_) t.join();
    for (int fd : fds_) close(fd);
  }

  // Sends `banner` on connect (after reading a request when `wait_for_request`), then waits for the peer to close.
  bool Banner(const std::string& ip, uint16_t port, std::string banner, bool wait_for_request = false) {
    return Serve(ip, port, [banner, wait_for_request, this](int c) {
      if (wait_for_request) {
        char buf[1024];
        ReadSome(c, buf, sizeof buf);
      }
      SendAll(c, banner);
      Linger(c);
    });
  }

  // Sends `chunk` over and over until the peer goes away (a banner that never ends).
  bool Endless(const std::string& ip, uint16_t port, std::string chunk) {
    return Serve(ip, port, [chunk, this](int c) {
      while (!stop_ && SendAll(c, chunk)) {
      }
    });
  }

  // Accepts and says nothing at all (a TLS handshake that stalls forever).
  bool Silent(const std::string& ip, uint16_t port) {
    return Serve(ip, port, [this](int c) { Linger(c); });
  }

  // A TLS server with `key` and `chain` (leaf first).
  bool Tls(const std::string& ip, uint16_t port, EVP_PKEY* key, const std::vector<X509*>& chain) {
    SslCtxPtr owned = MakeServerCtx(key, chain);
    if (!owned) return false;
    SSL_CTX* ctx = owned.get();
    ctxs_.push_back(std::move(owned));
    return Serve(ip, port, [ctx, this](int c) {
      SSL* ssl = SSL_new(ctx);
      SSL_set_fd(ssl, c);
      if (SSL_accept(ssl) == 1) Linger(c);
      SSL_free(ssl);
    });
  }

 private:
  static bool SendAll(int fd, const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  ssize_t ReadSome(int fd, char* buf, size_t len) {
    pollfd p{fd, POLLIN, 0};
    for (int i = 0; i < 200 && !stop_; ++i)
      if (poll(&p, 1, 20) == 1) return recv(fd, buf, len, 0);
    return -1;
  }
  // Keeps the connection until the peer closes it or the server stops.
  void Linger(int fd) {
    char buf[256];
    pollfd p{fd, POLLIN, 0};
    while (!stop_) {
      if (poll(&p, 1, 20) == 1 && recv(fd, buf, sizeof buf, 0) <= 0) return;
    }
  }

  bool Serve(const std::string& ip, uint16_t port, std::function<void(int)> handle) {
    int fd = BindListener(ip, port, 64);
    if (fd < 0) return false;
    fds_.push_back(fd);
    threads_.emplace_back([this, fd, handle = std::move(handle)] {
      std::vector<std::thread> conns;
      pollfd p{fd, POLLIN, 0};
      while (!stop_) {
        if (poll(&p, 1, 20) != 1) continue;
        int c = accept(fd, nullptr, nullptr);
        if (c < 0) continue;
        conns.emplace_back([c, &handle] {
          handle(c);
          close(c);
        });
      }
      for (auto& t : conns) t.join();
    });
    return true;
  }

  std::atomic<bool> stop_{false};
  std::vector<int> fds_;
  std::vector<SslCtxPtr> ctxs_;  // outlive the serving threads (joined first)
  std::vector<std::thread> threads_;
};

}  // namespace ndo::testing
