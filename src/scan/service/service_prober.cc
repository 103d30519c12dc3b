#include "scan/service/service_prober.h"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "scan/asio_endpoint.h"
#include "scan/port_list.h"
#include "scan/service/banner_session.h"
#include "scan/service/tls_session.h"

namespace ndo {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::vector<uint16_t> DefaultTlsPorts() {
  // HTTPS and its usual alternates, SMTPS, LDAPS, DNS over TLS, FTPS, IMAPS,
  // POP3S, IRC over TLS, SIPS, RDP-less admin consoles, MQTT/AMQP over TLS.
  return {261, 443, 448, 465, 563, 585, 614, 636, 853, 989, 990, 992, 993, 994, 995, 1443, 2083, 2087, 2096,
          2376, 3269, 4443, 5061, 5671, 5986, 6514, 6697, 8443, 8883, 9443, 10443};
}

bool WantsTls(const ServiceProbeOptions& o, uint16_t port) {
  if (!o.tls) return false;
  return o.tls_all_ports || std::binary_search(o.tls_ports.begin(), o.tls_ports.end(), port);
}

namespace {

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <typename T>
void Bump(std::atomic<T>& c) {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

struct U128Hash {
  size_t operator()(u128 v) const { return std::hash<uint64_t>()(static_cast<uint64_t>(v) ^ static_cast<uint64_t>(v >> 64)); }
};

}  // namespace

class ServiceProber::Impl {
 public:
  Impl(ServiceProbeOptions options, const TargetSet& names, const IntervalSet* scope, EvidenceSink& sink,
       std::shared_ptr<TlsClientContext> tls)
      : options_(std::move(options)), scope_(scope), sink_(sink), tls_(std::move(tls)), guard_(io_.get_executor()) {
    for (const auto& n : names.names) hostnames_.emplace(n.address.value(), n.hostname);
    thread_ = std::thread([this] { io_.run(); });
  }

  ~Impl() {
    Stop();
    guard_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  void Enqueue(IpAddress a, uint16_t port) {
    Bump(counters_.queued);
    asio::post(io_, [this, a, port] {
      if (stopping_) return;
      queue_.push_back({a, port});
      Pump();
    });
  }

  Status Drain() {
    {
      std::lock_guard lock(mu_);
      if (drained_) return status_;
    }
    asio::post(io_, [this] {
      draining_ = true;
      MaybeFinish();
    });
    if (thread_.joinable()) thread_.join();
    std::lock_guard lock(mu_);
    drained_ = true;
    return status_;
  }

  void Stop() {
    asio::post(io_, [this] {
      stopping_ = true;
      queue_.clear();
      std::vector<Job*> running(running_.begin(), running_.end());  // Abort completes jobs
      for (Job* j : running) j->Abort();
      MaybeFinish();
    });
  }

  const ServiceProbeCounters& counters() const { return counters_; }

 private:
  struct Target {
    IpAddress address;
    uint16_t port;
  };

  // One open port's follow-up: a TLS handshake and/or a banner grab, each on
  // its own connection, each bounded by the deadline.
  class Job : public std::enable_shared_from_this<Job> {
   public:
    Job(Impl& impl, Target t) : impl_(impl), socket_(impl.io_), deadline_(impl.io_) {
      evidence_.address = t.address;
      evidence_.port = t.port;
    }

    void Begin() {
      if (WantsTls(impl_.options_, evidence_.port) && impl_.tls_) StartTls();
      else StartBanner();
    }

    void Abort() {
      aborted_ = true;
      EndPhase("stopped");
    }

   private:
    enum class Phase { kTls, kBanner };

    std::string Hostname() const {
      auto it = impl_.hostnames_.find(evidence_.address.value());
      return it == impl_.hostnames_.end() ? "" : it->second;
    }

    void StartTls() {
      phase_ = Phase::kTls;
      auto s = TlsClientSession::Create(impl_.tls_, Hostname());
      if (!s.ok()) {
        TlsEvidence t;
        t.error = s.status().message();
        evidence_.tls = std::move(t);
        return AfterTls();
      }
      tls_ = std::move(*s);
      Connect();
    }

    void StartBanner() {
      if (!impl_.options_.banners) return Complete();
      phase_ = Phase::kBanner;
      BannerConfig cfg;
      std::string host = Hostname();
      if (host.empty()) host = evidence_.address.is_v4() ? evidence_.address.ToString() : "[" + evidence_.address.ToString() + "]";
      cfg.http_host = host;
      banner_ = std::make_unique<BannerSession>(cfg, evidence_.port);
      Connect();
    }

    void Connect() {
      ++gen_;
      phase_open_ = true;
      uint32_t gen = gen_;
      auto self = shared_from_this();
      deadline_.expires_after(impl_.options_.timeout);
      deadline_.async_wait([self, gen](const boost::system::error_code& ec) {
        if (!ec && gen == self->gen_) self->EndPhase("timeout");
      });
      boost::system::error_code ec;
      tcp::endpoint ep = ToAsioEndpoint(evidence_.address, evidence_.port);
      socket_.open(ep.protocol(), ec);
      if (!ec) socket_.set_option(asio::socket_base::linger(true, 0), ec);
      if (ec) return EndPhase("socket: " + ec.message());
      socket_.async_connect(ep, [self, gen](const boost::system::error_code& ec) {
        if (gen != self->gen_) return;
        if (ec) return self->EndPhase("connect: " + ec.message());
        self->SendPending();
      });
    }

    // Sends what the session wants to say, then reads.
    void SendPending() {
      out_ = phase_ == Phase::kTls ? tls_->TakeOutput() : banner_->TakeOutput();
      if (out_.empty()) return Read();
      auto self = shared_from_this();
      uint32_t gen = gen_;
      asio::async_write(socket_, asio::buffer(out_), [self, gen](const boost::system::error_code& ec, size_t) {
        if (gen != self->gen_) return;
        if (ec) return self->EndPhase("write: " + ec.message());
        self->Read();
      });
    }

    void Read() {
      auto self = shared_from_this();
      uint32_t gen = gen_;
      socket_.async_read_some(asio::buffer(buf_), [self, gen](const boost::system::error_code& ec, size_t n) {
        if (gen != self->gen_) return;
        self->OnRead(ec, n);
      });
    }

    void OnRead(const boost::system::error_code& ec, size_t n) {
      bool eof = ec == asio::error::eof;
      if (ec && !eof) return EndPhase(ec == asio::error::connection_reset ? "reset" : "read: " + ec.message());
      if (phase_ == Phase::kTls) {
        auto st = eof ? tls_->OnEof() : tls_->OnData(std::string_view(buf_.data(), n));
        if (st == TlsClientSession::State::kHandshaking) return SendPending();
        return EndPhase("");
      }
      auto st = eof ? banner_->OnEof() : banner_->OnData(std::string_view(buf_.data(), n));
      if (st == BannerSession::State::kReading) return Read();
      EndPhase("");
    }

    // The current connection is over (done, failed, timed out or stopped).
    void EndPhase(const std::string& error) {
      if (!phase_open_) return;
      phase_open_ = false;
      ++gen_;  // every pending handler of this phase is now stale
      deadline_.cancel();
      boost::system::error_code ignored;
      socket_.close(ignored);
      if (phase_ == Phase::kTls) {
        evidence_.tls = tls_->Finish(static_cast<time_t>(UnixNow()), error);
        Bump(impl_.counters_.tls_handshakes);
        tls_.reset();
        return AfterTls();
      }
      evidence_.banner = banner_->Finish(error);
      Bump(impl_.counters_.banners);
      banner_.reset();
      Complete();
    }

    // A TLS port that gave no certificate may speak something else (with
    // --tls-ports all, most do): the banner tells what.
    void AfterTls() {
      if (!aborted_ && evidence_.tls && evidence_.tls->chain.empty()) return StartBanner();
      Complete();
    }

    void Complete() {
      if (evidence_.banner) evidence_.service = GuessService(evidence_.banner->bytes);
      if (evidence_.service.empty() && evidence_.tls && evidence_.tls->error.empty())
        evidence_.service = "ssl/" + std::string(ServiceName(evidence_.port));
      impl_.OnJobDone(this, std::move(evidence_));
    }

    Impl& impl_;
    tcp::socket socket_;
    asio::steady_timer deadline_;
    Phase phase_ = Phase::kTls;
    bool phase_open_ = false;
    bool aborted_ = false;
    uint32_t gen_ = 0;
    std::unique_ptr<TlsClientSession> tls_;
    std::unique_ptr<BannerSession> banner_;
    std::array<char, 4096> buf_{};
    std::string out_;
    ServiceEvidence evidence_;
  };

  void Pump() {
    while (!stopping_ && !queue_.empty() && running_.size() < std::max<uint32_t>(1, options_.concurrency)) {
      Target t = queue_.front();
      queue_.pop_front();
      if (scope_ && !scope_->Contains(t.address.value())) continue;  // never outside the allowlist
      auto job = std::make_shared<Job>(*this, t);
      running_.insert(job.get());
      owned_.emplace(job.get(), job);
      job->Begin();
    }
    MaybeFinish();
  }

  void OnJobDone(Job* job, ServiceEvidence&& ev) {
    batch_.push_back(std::move(ev));
    Bump(counters_.done);
    running_.erase(job);
    // The job may still be on the stack: release it once this handler returns.
    asio::post(io_, [this, job] { owned_.erase(job); });
    if (batch_.size() >= 256) Flush();
    Pump();
  }

  void Flush() {
    if (batch_.empty()) return;
    Status s = sink_.Consume(std::move(batch_));
    batch_.clear();
    if (!s.ok()) {
      std::lock_guard lock(mu_);
      if (status_.ok()) status_ = s;
    }
  }

  void MaybeFinish() {
    if ((draining_ || stopping_) && running_.empty() && (queue_.empty() || stopping_)) {
      Flush();
      if (draining_) guard_.reset();  // io_.run() returns once the last handler ran
    }
  }

  ServiceProbeOptions options_;
  const IntervalSet* scope_;
  EvidenceSink& sink_;
  std::shared_ptr<TlsClientContext> tls_;
  std::unordered_map<u128, std::string, U128Hash> hostnames_;
  asio::io_context io_{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
  // Owned by the io thread:
  std::deque<Target> queue_;
  std::unordered_set<Job*> running_;
  std::unordered_map<Job*, std::shared_ptr<Job>> owned_;
  std::vector<ServiceEvidence> batch_;
  bool draining_ = false;
  bool stopping_ = false;
  ServiceProbeCounters counters_;
  // Shared with callers:
  std::mutex mu_;
  Status status_;
  bool drained_ = false;
};

Result<std::unique_ptr<ServiceProber>> ServiceProber::Create(ServiceProbeOptions options, const TargetSet& names,
                                                             const IntervalSet* scope, EvidenceSink& sink) {
  std::shared_ptr<TlsClientContext> tls;
  if (options.tls) {
    auto ctx = TlsClientContext::Create(options.tls_ca_file);
    if (!ctx.ok()) return ctx.status();
    tls = *ctx;
  }
  std::sort(options.tls_ports.begin(), options.tls_ports.end());
  return std::unique_ptr<ServiceProber>(
      new ServiceProber(std::make_unique<Impl>(std::move(options), names, scope, sink, std::move(tls))));
}

ServiceProber::ServiceProber(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ServiceProber::~ServiceProber() = default;
void ServiceProber::Enqueue(IpAddress address, uint16_t port) { impl_->Enqueue(address, port); }
Status ServiceProber::Drain() { return impl_->Drain(); }
void ServiceProber::Stop() { impl_->Stop(); }
const ServiceProbeCounters& ServiceProber::counters() const { return impl_->counters(); }

}  // namespace ndo
