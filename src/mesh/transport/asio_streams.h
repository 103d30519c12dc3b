// The Asio pieces of the mesh's streams, shared by the translation units of
// ndo_mesh that use Asio (mesh_node.cc: the node and its control socket;
// stream_transports.cc: plain TCP and mutual TLS). Nothing else includes
// it: Asio is slow to compile.
#pragma once

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

#include "mesh/membership/address.h"
#include "mesh/membership/codec.h"
#include "base/log.h"
#include "mesh/transport/transport.h"

namespace ndo::mesh::detail {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using udp = asio::ip::udp;
using local_stream = asio::local::stream_protocol;
using boost::system::error_code;
using SteadyDuration = std::chrono::steady_clock::duration;

inline asio::ip::address ToAsio(IpAddress a) {
  if (a.is_v4()) return asio::ip::address_v4(a.v4());
  asio::ip::address_v6::bytes_type b;
  auto bytes = a.bytes();
  std::copy(bytes.begin(), bytes.end(), b.begin());
  return asio::ip::address_v6(b);
}

// IPv4-mapped IPv6 (a dual-stack socket's view of an IPv4 peer) becomes IPv4,
// so a peer has one spelling.
inline HostPort FromAsio(const asio::ip::address& a, uint16_t port) {
  if (a.is_v4()) return {IpAddress::FromV4(a.to_v4().to_uint()), port};
  auto b = a.to_v6().to_bytes();
  std::array<uint8_t, 16> bytes;
  std::copy(b.begin(), b.end(), bytes.begin());
  return {IpAddress::FromBytes(bytes), port};
}

inline double Seconds(SteadyDuration d) { return std::chrono::duration<double>(d).count(); }

// ---------------------------------------------------------------------------
// Frame streams over any Asio stream socket.

template <typename Socket>
class AsioFrameStream final : public FrameStream, public std::enable_shared_from_this<AsioFrameStream<Socket>> {
 public:
  // `budget`: the transport's StreamMemoryBudget (none for the control
  // socket, whose requests are tiny and whose clients are the local user).
  AsioFrameStream(Socket socket, std::string peer, SteadyDuration deadline, std::function<void()> on_destroy,
                  std::optional<StreamMemoryBudget> budget = std::nullopt)
      : socket_(std::move(socket)),
        timer_(socket_.get_executor()),
        peer_(std::move(peer)),
        deadline_(deadline),
        on_destroy_(std::move(on_destroy)),
        budget_(std::move(budget)) {}
  ~AsioFrameStream() override {
    if (on_destroy_) on_destroy_();
  }

  Socket& socket() { return socket_; }
  void set_peer(std::string peer) { peer_ = std::move(peer); }

  // Starts the deadline; the timer holds no reference, so an abandoned
  // stream still goes away.
  void StartDeadline() {
    timer_.expires_after(deadline_);
    std::weak_ptr<AsioFrameStream> weak = this->shared_from_this();
    timer_.async_wait([weak](const error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock()) {
        self->timed_out_ = true;
        self->Close();
      }
    });
  }

  void ReadFrame(size_t max_body, ReadHandler done) override {
    auto self = this->shared_from_this();
    asio::async_read(socket_, asio::buffer(header_), [self, max_body, done = std::move(done)](const error_code& ec, size_t) {
      if (ec) return done(self->Failure(ec, "reading a frame header"));
      auto len = ReadFrameLength(std::string_view(self->header_.data(), self->header_.size()));
      if (!len.ok()) return done(len.status());
      if (*len > max_body)
        return done(Status::InvalidArgument("frame of " + std::to_string(*len) + " bytes exceeds the limit of " +
                                            std::to_string(max_body)));
      if (!self->Reserve(*len, self->read_reservation_))
        return done(self->OverBudget(*len));
      self->body_.clear();
      self->ReadBody(*len, std::move(done));
    });
  }

  void WriteFrame(std::string body, WriteHandler done) override {
    auto self = this->shared_from_this();
    if (!Reserve(kFrameHeaderBytes + body.size(), write_reservation_)) {
      // Posted: no handler runs inside the call that started it (transport.h).
      asio::post(socket_.get_executor(),
                 [done = std::move(done), refused = OverBudget(body.size())] { done(refused); });
      return;
    }
    out_ = FrameHeader(body.size());
    out_ += body;
    body = std::string();
    asio::async_write(socket_, asio::buffer(out_), [self, done = std::move(done)](const error_code& ec, size_t) {
      std::string().swap(self->out_);
      self->write_reservation_.Release();
      if (ec) return done(self->Failure(ec, "writing a frame"));
      done(Status::Ok());
    });
  }

  void Close() override {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    error_code ignored;
    // lowest_layer(): the TCP socket itself, also under a TLS stream.
    socket_.lowest_layer().close(ignored);
  }

  const std::string& peer() const override { return peer_; }
  const PeerIdentity& peer_identity() const override { return peer_identity_; }
  Result<std::string> ExportKeyingMaterial(std::string_view label, size_t bytes) const override {
    if (!exporter_) return Status::Unavailable("not a TLS stream");
    return exporter_(label, bytes);
  }

  // Set by a TLS transport once the handshake has checked the peer.
  using Exporter = std::function<Result<std::string>(std::string_view label, size_t bytes)>;
  void set_tls(PeerIdentity peer, Exporter exporter) {
    peer_identity_ = std::move(peer);
    exporter_ = std::move(exporter);
  }
  SteadyDuration deadline() const { return deadline_; }

  Status Failure(const error_code& ec, const char* doing) const {
    if (timed_out_)
      return Status::Unavailable(std::string("timed out ") + doing + " (stream deadline " +
                                 std::to_string(Seconds(deadline_)).substr(0, 4) + " s)");
    if (ec == asio::error::eof) return Status::IoError(std::string("connection closed by the peer while ") + doing);
    return Status::IoError(std::string(doing) + ": " + ec.message());
  }

 private:
  bool Reserve(size_t bytes, StreamMemoryBudget::Reservation& out) {
    return !budget_ || budget_->TryReserve(bytes, out);
  }
  Status OverBudget(size_t bytes) const {
    return Status::Unavailable("frame of " + std::to_string(bytes) + " bytes does not fit the stream memory budget (" +
                               std::to_string(budget_->in_use()) + " of " + std::to_string(budget_->limit()) +
                               " bytes in use)");
  }

  // Memory grows with the bytes that arrive, 64 KiB at a time, not with what
  // the header announced (the budget is reserved for all of it up front).
  void ReadBody(size_t length, ReadHandler done) {
    if (body_.size() == length) {
      // The body's bytes stay reserved until the handler is done with them.
      StreamMemoryBudget::Reservation held = std::move(read_reservation_);
      return done(std::exchange(body_, std::string()));
    }
    size_t chunk = std::min(length - body_.size(), chunk_.size());
    auto self = this->shared_from_this();
    asio::async_read(socket_, asio::buffer(chunk_.data(), chunk),
                     [self, length, done = std::move(done)](const error_code& ec, size_t n) mutable {
                       if (ec) return done(self->Failure(ec, "reading a frame body"));
                       self->body_.append(self->chunk_.data(), n);
                       self->ReadBody(length, std::move(done));
                     });
  }

  Socket socket_;
  asio::steady_timer timer_;
  std::string peer_;
  SteadyDuration deadline_;
  std::function<void()> on_destroy_;
  std::array<char, kFrameHeaderBytes> header_{};
  std::array<char, 65536> chunk_{};
  std::string body_, out_;
  bool closed_ = false, timed_out_ = false;
  PeerIdentity peer_identity_;
  Exporter exporter_;
  std::optional<StreamMemoryBudget> budget_;
  StreamMemoryBudget::Reservation read_reservation_, write_reservation_;
};

using TcpStream = AsioFrameStream<tcp::socket>;
using LocalStream = AsioFrameStream<local_stream::socket>;

// Accepts on `acceptor` forever, handing streams to `on_stream` while fewer
// than `max` are open and closing the rest at once. Accept errors (out of
// descriptors) back off for 100 ms instead of spinning.
// `StreamSocket` is what a stream runs over: the accepted socket itself, or
// a TLS stream around it, made by `wrap` (whose handshake the receiver of
// the stream then runs).
template <typename Protocol, typename StreamSocket = typename Protocol::socket>
class StreamAcceptLoop {
 public:
  using Stream = AsioFrameStream<StreamSocket>;
  using Wrap = std::function<StreamSocket(typename Protocol::socket)>;
  StreamAcceptLoop(asio::io_context& io, std::string what, StreamLimits limits,
                   std::function<void(std::shared_ptr<Stream>)> on_stream,
                   std::optional<StreamMemoryBudget> budget = std::nullopt, Wrap wrap = nullptr)
      : acceptor_(io),
        retry_(io),
        what_(std::move(what)),
        limits_(limits),
        on_stream_(std::move(on_stream)),
        budget_(std::move(budget)),
        wrap_(std::move(wrap)) {}

  typename Protocol::acceptor& acceptor() { return acceptor_; }

  void Start() { Next(); }
  void Close() {
    closed_ = true;
    error_code ignored;
    acceptor_.close(ignored);
    retry_.cancel();
  }

 private:
  void Next() {
    if (closed_) return;
    acceptor_.async_accept([this](const error_code& ec, typename Protocol::socket socket) {
      if (closed_ || ec == asio::error::operation_aborted) return;
      auto now = std::chrono::steady_clock::now();
      if (ec) {
        uint64_t suppressed = 0;
        if (limiter_.Allow(now, suppressed))
          Log(LogLevel::kWarn, "accept failed", {{"listener", what_}, {"error", ec.message()}, {"suppressed", suppressed}});
        retry_.expires_after(std::chrono::milliseconds(100));
        retry_.async_wait([this](const error_code& e) {
          if (!e) Next();
        });
        return;
      }
      std::string peer = Peer(socket);
      if (*open_ >= limits_.max_inbound) {
        uint64_t suppressed = 0;
        if (limiter_.Allow(now, suppressed))
          Log(LogLevel::kWarn, "refused stream",
              {{"listener", what_}, {"from", peer}, {"reason", "too many open streams"},
               {"limit", static_cast<uint64_t>(limits_.max_inbound)}, {"suppressed", suppressed}});
        error_code ignored;
        socket.close(ignored);
      } else {
        ++*open_;
        auto open = open_;
        auto stream = std::make_shared<Stream>(Wrapped(std::move(socket)), std::move(peer), limits_.deadline,
                                               [open] { --*open; }, budget_);
        stream->StartDeadline();
        on_stream_(std::move(stream));
      }
      Next();
    });
  }

  static std::string Peer(tcp::socket& s) {
    error_code ec;
    auto ep = s.remote_endpoint(ec);
    return ec ? "unknown" : FromAsio(ep.address(), ep.port()).ToString();
  }
  static std::string Peer(local_stream::socket&) { return "local"; }

  StreamSocket Wrapped(typename Protocol::socket socket) {
    if constexpr (std::is_same_v<StreamSocket, typename Protocol::socket>) {
      return socket;
    } else {
      return wrap_(std::move(socket));
    }
  }

  typename Protocol::acceptor acceptor_;
  asio::steady_timer retry_;
  std::string what_;
  StreamLimits limits_;
  std::function<void(std::shared_ptr<Stream>)> on_stream_;
  std::shared_ptr<size_t> open_ = std::make_shared<size_t>(0);  // outlives the loop: streams decrement it
  std::optional<StreamMemoryBudget> budget_;
  Wrap wrap_;
  LogLimiter limiter_{10, std::chrono::seconds(10)};
  bool closed_ = false;
};


}  // namespace ndo::mesh::detail
