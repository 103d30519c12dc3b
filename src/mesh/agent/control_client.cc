// The client side of the control socket: plain blocking POSIX calls with a
// deadline (poll), since the CLI sends one request and exits; no Asio here.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "mesh/membership/codec.h"
#include "mesh/api/control.h"

namespace ndo::mesh {
namespace {

using SteadyClock = std::chrono::steady_clock;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

int MillisLeft(SteadyClock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// Waits until `fd` is ready for `events` or the deadline passes.
Status WaitFor(int fd, short events, SteadyClock::time_point deadline, const char* what) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, MillisLeft(deadline));
    if (n > 0) return Status::Ok();
    if (n == 0) return Status::Unavailable(std::string("timed out ") + what);
    if (errno != EINTR) return Status::IoError(std::string(what) + ": " + std::strerror(errno));
  }
}

Status WriteAll(int fd, std::string_view bytes, SteadyClock::time_point deadline) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (Status s = WaitFor(fd, POLLOUT, deadline, "sending the request"); !s.ok()) return s;
      continue;
    }
    return Status::IoError(std::string("sending the request: ") + std::strerror(errno));
  }
  return Status::Ok();
}

Status ReadExactly(int fd, std::string& out, size_t n, SteadyClock::time_point deadline) {
  char buf[65536];
  while (out.size() < n) {
    ssize_t got = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (got > 0) {
      out.append(buf, static_cast<size_t>(got));
      continue;
    }
    if (got == 0) return Status::IoError("the agent closed the connection before answering");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (Status s = WaitFor(fd, POLLIN, deadline, "waiting for the agent's answer"); !s.ok()) return s;
      continue;
    }
    return Status::IoError(std::string("reading the answer: ") + std::strerror(errno));
  }
  return Status::Ok();
}

// A non-blocking connected socket, or the errno of the failure.
int Connect(const std::string& path, SteadyClock::time_point deadline, int& err) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    err = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = errno;
    return -1;
  }
  for (;;) {
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    err = errno;
    if (err == EINTR) continue;
    // A non-blocking Unix socket whose listener's backlog is full fails
    // with EAGAIN and stays unconnected (there is no connect in progress to
    // poll for): try again until the deadline.
    if (err != EAGAIN || SteadyClock::now() >= deadline) break;
    std::this_thread::sleep_for(std::min<SteadyClock::duration>(std::chrono::milliseconds(10),
                                                                deadline - SteadyClock::now()));
  }
  if (err == EAGAIN) err = ETIMEDOUT;
  ::close(fd);
  return -1;
}

}  // namespace

Result<ControlResponse> CallControl(const std::string& data_dir, const ControlRequest& command,
                                    std::chrono::milliseconds timeout) {
  auto deadline = SteadyClock::now() + timeout;
  std::string path = ControlSocketPath(data_dir);
  int err = 0;
  Fd fd(Connect(path, deadline, err));
  if (fd.get() < 0)
    return Status::Unavailable("no ndo agent is running for data dir " + data_dir + " (connect to " + path + ": " +
                               std::strerror(err) + ")");
  auto request = EncodeControlRequest(command);
  if (!request.ok()) return request.status();
  std::string frame = FrameHeader(request->size()) + *request;
  if (Status s = WriteAll(fd.get(), frame, deadline); !s.ok()) return s.WithContext("control socket " + path);
  std::string header;
  if (Status s = ReadExactly(fd.get(), header, kFrameHeaderBytes, deadline); !s.ok())
    return s.WithContext("control socket " + path);
  auto length = ReadFrameLength(header);
  if (!length.ok()) return length.status().WithContext("control socket " + path);
  if (*length > kMaxControlBytes) return Status::Corruption("control socket " + path + ": answer too long");
  std::string body;
  if (Status s = ReadExactly(fd.get(), body, *length, deadline); !s.ok()) return s.WithContext("control socket " + path);
  auto response = DecodeControlResponse(body);
  if (!response.ok()) return response.status().WithContext("control socket " + path);
  if (!response->error.empty()) return Status::IoError("the agent says: " + response->error);
  return response;
}

bool ControlSocketAnswers(const std::string& socket_path) {
  int err = 0;
  int fd = Connect(socket_path, SteadyClock::now() + std::chrono::seconds(1), err);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

}  // namespace ndo::mesh
