#include "scan/engine.h"

#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <mutex>
#include <thread>

#include "scan/asio_endpoint.h"

namespace ndo {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

int64_t WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

enum class ConnectVerdict { kOutcome, kLocalFailure, kIgnore };

// Maps what connect() said to what it means for the port.
ConnectVerdict Classify(const boost::system::error_code& ec, ProbeOutcome& out) {
  if (!ec) {
    out = ProbeOutcome::kConnected;
    return ConnectVerdict::kOutcome;
  }
  if (ec.category() != boost::system::system_category()) {
    out = ProbeOutcome::kUnreachable;
    return ConnectVerdict::kOutcome;
  }
  switch (ec.value()) {
    case ECONNREFUSED: out = ProbeOutcome::kRefused; return ConnectVerdict::kOutcome;
    case ECANCELED: return ConnectVerdict::kIgnore;
    // The kernel gave up on its own SYN retries: let the scheduler's timeout decide.
    case ETIMEDOUT: return ConnectVerdict::kIgnore;
    // Our side ran out of something: not an answer from the target.
    case EADDRNOTAVAIL: case ENOBUFS: case EMFILE: case ENFILE: case ENOMEM: case EAGAIN:
      return ConnectVerdict::kLocalFailure;
    default:  // EHOSTUNREACH, ENETUNREACH, EHOSTDOWN, EACCES (local firewall) ...
      out = ProbeOutcome::kUnreachable;
      return ConnectVerdict::kOutcome;
  }
}

}  // namespace

class Engine::Worker {
 public:
  Worker(Engine& engine, const ScanPlan& plan, SchedulerConfig cfg, WorkSource* work, ResultSink& sink)
      : engine_(engine),
        sink_(sink),
        timer_(io_),
        sched_(plan, cfg, work, std::chrono::steady_clock::now(), WallMicros()) {
    sockets_.reserve(cfg.concurrency);
    for (uint32_t i = 0; i < cfg.concurrency; ++i) sockets_.emplace_back(io_);
    generations_.assign(cfg.concurrency, 0);
  }

  void Run() {
    OnTimer();
    io_.run();
    Flush();
  }

  const ProbeScheduler& scheduler() const { return sched_; }
  const Status& status() const { return status_; }

 private:
  void OnTimer() {
    auto now = std::chrono::steady_clock::now();
    Drive(now);
    if (done_) return;
    if (now - last_flush_ > std::chrono::milliseconds(250)) Flush();
    timer_.expires_at(sched_.NextWakeup(now));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) OnTimer();
    });
  }

  void Drive(std::chrono::steady_clock::time_point now) {
    if (engine_.stop_requested_.load(std::memory_order_relaxed)) sched_.Stop();
    // Two rounds at most: verdicts on expired probes may queue retries that
    // can start at once.
    for (int round = 0; round < 2; ++round) {
      starts_.clear();
      expired_.clear();
      sched_.Poll(now, starts_, expired_);
      for (uint32_t slot : expired_) Expire(slot, now);
      for (const ProbeRequest& req : starts_) Start(req, now);
      if (expired_.empty() || sched_.Finished()) break;
    }
    if (sched_.BatchReady()) Flush();
    if (sched_.Finished() && !done_) {
      done_ = true;
      timer_.cancel();
    }
    // Queued behind the answers the reactor has ready, so they are read first.
    if (sched_.MoreToStart() && !continue_posted_ && !done_) {
      continue_posted_ = true;
      asio::post(io_, [this] {
        continue_posted_ = false;
        Drive(std::chrono::steady_clock::now());
      });
    }
  }

  // A probe's deadline passed. Before calling it a timeout, look once more:
  // under load the answer may already sit in the kernel, not yet read by us,
  // and our own lateness must not turn an open port into a filtered one.
  void Expire(uint32_t slot, std::chrono::steady_clock::time_point now) {
    tcp::socket& sock = sockets_[slot];
    ++generations_[slot];  // the pending wait's handler is now stale
    int fd = sock.is_open() ? sock.native_handle() : -1;
    int err = -1;
    if (fd >= 0 && !sched_.stopping()) {
      pollfd pfd{fd, POLLOUT, 0};
      if (::poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLOUT | POLLERR | POLLHUP))) {
        socklen_t len = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = -1;
      }
    }
    ProbeOutcome outcome{};
    bool answered = err >= 0 && Classify(boost::system::error_code(err, boost::system::system_category()), outcome) ==
                                    ConnectVerdict::kOutcome;
    if (fd >= 0) CloseProbe(slot, fd, answered && outcome == ProbeOutcome::kConnected);
    if (sched_.stopping()) return;  // the scheduler already let go of every slot
    if (answered) sched_.OnOutcome(slot, outcome, now);
    else sched_.OnTimeout(slot, now);
  }

  // One probe, in as few system calls as the kernel allows: socket() already
  // non-blocking, connect(), and only if that is in progress, a wait for
  // writability in the reactor. SO_LINGER 0 is set only on a connected
  // socket (the one case where close() would otherwise leave TIME_WAIT).
  void Start(const ProbeRequest& req, std::chrono::steady_clock::time_point now) {
    const IntervalSet* scope = engine_.options_.scope;
    if (scope && !scope->Contains(req.target.address.value())) {
      // Unreachable by construction (specs are validated); kept as the last gate.
      status_ = Status::OutOfScope("refused to probe " + req.target.address.ToString() + " outside --scope");
      engine_.stop_requested_ = true;
      sched_.OnLocalFailure(req.slot, now);
      return;
    }
    tcp::endpoint ep = ToAsioEndpoint(req.target.address, req.target.port);
    int fd = ::socket(ep.protocol().family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      sched_.OnLocalFailure(req.slot, now);
      return;
    }
    int rc = ::connect(fd, ep.data(), static_cast<socklen_t>(ep.size()));
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      tcp::socket& sock = sockets_[req.slot];
      boost::system::error_code ec;
      sock.assign(ep.protocol(), fd, ec);
      if (ec) {
        ::close(fd);
        sched_.OnLocalFailure(req.slot, now);
        return;
      }
      uint32_t slot = req.slot;
      uint32_t gen = ++generations_[slot];
      sock.async_wait(tcp::socket::wait_write,
                      [this, slot, gen](const boost::system::error_code& result) { OnWritable(slot, gen, result); });
      return;
    }
    // Answered at once (loopback) or refused locally.
    Conclude(req.slot, fd, err, now);
  }

  // The reactor says the socket in `slot` is writable: read the verdict of
  // its connect(). The wakeup may be spurious (Asio recycles descriptor
  // state, so an event of a closed socket can reach the next socket in the
  // same slot), and SO_ERROR 0 alone also means "still connecting": only a
  // poll() that shows the socket writable or failed makes it an answer.
  void OnWritable(uint32_t slot, uint32_t gen, const boost::system::error_code& ec) {
    if (generations_[slot] != gen || ec == asio::error::operation_aborted) return;  // expired or stopped
    tcp::socket& sock = sockets_[slot];
    int fd = sock.native_handle();
    pollfd pfd{fd, POLLOUT, 0};
    if (::poll(&pfd, 1, 0) != 1 || !(pfd.revents & (POLLOUT | POLLERR | POLLHUP))) {
      sock.async_wait(tcp::socket::wait_write,
                      [this, slot, gen](const boost::system::error_code& result) { OnWritable(slot, gen, result); });
      return;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == ETIMEDOUT) return;  // the kernel gave up on its own: the scheduler's deadline decides
    ++generations_[slot];
    auto now = std::chrono::steady_clock::now();
    Conclude(slot, fd, err, now);
    Drive(now);
  }

  // Reports the outcome of connect() for `slot` and closes its descriptor
  // (through Asio when the reactor knows it, so it is deregistered).
  void Conclude(uint32_t slot, int fd, int err, std::chrono::steady_clock::time_point now) {
    ProbeOutcome outcome{};
    ConnectVerdict verdict = Classify(boost::system::error_code(err, boost::system::system_category()), outcome);
    CloseProbe(slot, fd, verdict == ConnectVerdict::kOutcome && outcome == ProbeOutcome::kConnected);
    if (verdict == ConnectVerdict::kOutcome) sched_.OnOutcome(slot, outcome, now);
    else sched_.OnLocalFailure(slot, now);
  }

  void CloseProbe(uint32_t slot, int fd, bool connected) {
    if (connected) {
      linger rst{1, 0};  // close with a RST: no TIME_WAIT on our side, no half-open on theirs
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof rst);
    }
    tcp::socket& sock = sockets_[slot];
    if (sock.is_open() && sock.native_handle() == fd) {
      boost::system::error_code ignored;
      sock.close(ignored);
    } else {
      ::close(fd);
    }
  }

  void Flush() {
    last_flush_ = std::chrono::steady_clock::now();
    ResultBatch batch = sched_.TakeBatch();
    if (batch.empty()) return;
    Status s = sink_.Consume(std::move(batch));
    if (!s.ok() && status_.ok()) {
      status_ = s;
      engine_.stop_requested_ = true;
    }
  }

  Engine& engine_;
  ResultSink& sink_;
  asio::io_context io_{1};
  asio::steady_timer timer_;
  ProbeScheduler sched_;
  std::vector<tcp::socket> sockets_;
  std::vector<uint32_t> generations_;
  std::vector<ProbeRequest> starts_;
  std::vector<uint32_t> expired_;
  std::chrono::steady_clock::time_point last_flush_ = std::chrono::steady_clock::now();
  bool done_ = false;
  bool continue_posted_ = false;
  Status status_;
};

namespace {
std::mutex g_workers_mu;  // guards Engine::workers_ between Run and Progress
}

Engine::Engine(const ScanPlan& plan, EngineOptions options) : plan_(plan), options_(options) {}
Engine::~Engine() = default;

void Engine::Stop() { stop_requested_ = true; }

Status Engine::Run(std::vector<ShardWork> work, ResultSink& sink) {
  if (running_.exchange(true)) return Status::InvalidArgument("Engine::Run called twice");
  WorkSource source(std::move(work));
  uint32_t threads = std::max<uint32_t>(1, options_.threads);
  uint32_t concurrency = std::max<uint32_t>(threads, options_.concurrency);
  {
    std::lock_guard lock(g_workers_mu);
    for (uint32_t i = 0; i < threads; ++i) {
      SchedulerConfig cfg;
      cfg.concurrency = concurrency / threads + (i < concurrency % threads ? 1 : 0);
      cfg.rate = options_.rate / threads;
      cfg.max_retries = options_.max_retries;
      cfg.rtt = options_.rtt;
      workers_.push_back(std::make_unique<Worker>(*this, plan_, cfg, &source, sink));
    }
  }
  std::vector<std::thread> pool;
  for (uint32_t i = 1; i < threads; ++i) pool.emplace_back([w = workers_[i].get()] { w->Run(); });
  workers_[0]->Run();
  for (auto& t : pool) t.join();
  for (const auto& w : workers_)
    if (!w->status().ok()) return w->status();
  return Status::Ok();
}

EngineProgress Engine::Progress() const {
  EngineProgress p;
  std::lock_guard lock(g_workers_mu);
  for (const auto& w : workers_) {
    const SchedulerCounters& c = w->scheduler().counters();
    p.positions_done += c.positions_done.load(std::memory_order_relaxed);
    p.probes_sent += c.probes_sent.load(std::memory_order_relaxed);
    p.open += c.open.load(std::memory_order_relaxed);
    p.closed += c.closed.load(std::memory_order_relaxed);
    p.filtered += c.filtered.load(std::memory_order_relaxed);
    p.unreachable += c.unreachable.load(std::memory_order_relaxed);
  }
  return p;
}

uint64_t RaiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  return rl.rlim_cur == RLIM_INFINITY ? (1u << 20) : rl.rlim_cur;
}

uint32_t AutoConcurrency(uint64_t file_limit) {
  // Descriptors kept for RocksDB (its max_open_files is bounded), output files and stdio.
  constexpr uint64_t kReserve = 512;
  // Beyond this, more sockets in SYN_SENT only add kernel memory, not speed.
  constexpr uint64_t kCap = 32768;
  if (file_limit <= kReserve + 64) return 64;
  return static_cast<uint32_t>(std::min(file_limit - kReserve, kCap));
}

EngineOptions EngineOptionsForSpec(const ScanSpec& spec, uint64_t positions, uint32_t threads) {
  uint32_t concurrency = AutoConcurrency(RaiseFileLimit());
  if (spec.probe.concurrency > 0) concurrency = std::min(concurrency, spec.probe.concurrency);
  // No more slots (and sockets) than there are probes left.
  concurrency = static_cast<uint32_t>(std::clamp<uint64_t>(positions, 1, concurrency));
  EngineOptions eo;
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  eo.threads = threads ? threads : std::min(cores, 4u);
  eo.threads = std::min<uint32_t>(eo.threads, std::max<uint32_t>(1, concurrency / 64));
  eo.concurrency = concurrency;
  eo.rate = spec.probe.rate;
  eo.max_retries = spec.probe.max_retries;
  eo.rtt.initial = std::chrono::milliseconds(spec.probe.initial_rtt_ms);
  eo.rtt.floor = std::chrono::milliseconds(spec.probe.min_rtt_ms);
  eo.rtt.ceiling = std::chrono::milliseconds(spec.probe.max_rtt_ms);
  eo.rtt.fixed = std::chrono::milliseconds(spec.probe.timeout_ms);
  eo.scope = spec.has_scope ? &spec.scope : nullptr;
  return eo;
}

}  // namespace ndo
