// A sans-IO banner grab: what a service says first (SSH, SMTP, FTP, POP3,
// IMAP, MySQL, ...), or what it answers to a minimal request on ports where
// the client speaks first (HTTP). The driver moves bytes and enforces time;
// the session bounds size and decides when the banner is complete.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "scan/service/evidence.h"

namespace ndo {

struct BannerConfig {
  size_t max_bytes = kMaxBannerBytes;
  std::string http_host;  // Host header for HTTP requests (hostname or address)
};

// True for ports where the client must speak first with HTTP (80, 8080, ...).
bool IsHttpPort(uint16_t port);

class BannerSession {
 public:
  enum class State { kReading, kDone };
  BannerSession(BannerConfig config, uint16_t port);

  // Bytes to send after connecting ("" for server-first protocols).
  std::string TakeOutput();
  State OnData(std::string_view bytes);
  State OnEof();
  // `error` is the driver's reason to stop early ("timeout", "reset"), or "".
  BannerEvidence Finish(const std::string& error = "");

 private:
  BannerConfig config_;
  uint16_t port_;
  std::string request_;
  bool sent_ = false;
  BannerEvidence evidence_;
  State state_ = State::kReading;
};

// The service a banner reveals ("ssh", "smtp", "ftp", "pop3", "imap", "mysql",
// "http", "redis", "vnc", ...), or "" when it reveals none.
std::string GuessService(std::string_view banner);

// Printable, single-line form of raw bytes: printable ASCII as is, \r \n \t
// \\ and \xNN escapes for the rest.
std::string EscapeBytes(std::string_view bytes);

}  // namespace ndo
