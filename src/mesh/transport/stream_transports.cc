// The mesh's stream transports (transport.h): plain TCP, and mutual TLS 1.3
// against the cluster CA; and the enrolling node's side of enrolment. One
// transport template carries both: they differ only in what a stream runs
// over and in the handshake between connecting (or accepting) and handing
// the stream out. The second Asio translation unit of ndo_mesh.
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/ssl.hpp>
#include <ctime>

#include "mesh/transport/asio_streams.h"
#include "mesh/transport/enrol_client.h"
#include "mesh/security/tls_context.h"

namespace ndo::mesh {
namespace {

using namespace detail;
namespace ssl = asio::ssl;
using TlsSocket = ssl::stream<tcp::socket>;

int64_t NowUnix() { return static_cast<int64_t>(std::time(nullptr)); }

// Listens on `acc` at `at`; the address to send streams from, when specific.
Status ListenTcp(tcp::acceptor& acc, const HostPort& at, std::optional<asio::ip::address>& source) {
  tcp::endpoint ep(ToAsio(at.ip), at.port);
  error_code ec;
  acc.open(ep.protocol(), ec);
  // [::] takes IPv4 too only with IPV6_V6ONLY off, which the system's
  // default (net.ipv6.bindv6only) does not promise.
  if (!ec && at.dual_stack()) acc.set_option(asio::ip::v6_only(false), ec);
  if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::IoError("cannot listen on TCP " + at.ToString() + ": " + ec.message());
  if (!ep.address().is_unspecified()) source = ep.address();
  return Status::Ok();
}

// Plain TCP: nothing between connecting and using a stream.
struct PlainSecurity {
  using Socket = tcp::socket;
  static constexpr std::string_view kName = "tcp";
  Socket MakeSocket(asio::io_context& io) { return Socket(io); }
  typename StreamAcceptLoop<tcp, Socket>::Wrap Wrapper() { return nullptr; }
  template <typename Done>
  void Connected(std::shared_ptr<AsioFrameStream<Socket>> stream, Done done) {
    done(FrameStreamPtr(stream));
  }
  template <typename Deliver>
  void Accepted(std::shared_ptr<AsioFrameStream<Socket>> stream, Deliver deliver) {
    deliver(std::move(stream));
  }
};

// Mutual TLS: the handshake, then AuthenticatePeer, then the stream.
class MutualTlsSecurity {
 public:
  using Socket = TlsSocket;
  static constexpr std::string_view kName = "mtls";

  MutualTlsSecurity(std::shared_ptr<const ClusterMaterial> material, std::shared_ptr<const RevocationSet> revoked)
      : material_(std::move(material)), revoked_(std::move(revoked)) {}

  Status Init() {
    if (Status s = ConfigurePeerContext(client_.native_handle(), *material_, false); !s.ok()) return s;
    return ConfigurePeerContext(server_.native_handle(), *material_, true);
  }
  Socket MakeSocket(asio::io_context& io) { return Socket(io, client_); }
  typename StreamAcceptLoop<tcp, Socket>::Wrap Wrapper() {
    return [this](tcp::socket s) { return Socket(std::move(s), server_); };
  }

  template <typename Done>
  void Connected(std::shared_ptr<AsioFrameStream<Socket>> stream, Done done) {
    stream->socket().async_handshake(ssl::stream_base::client, [this, stream, done = std::move(done)](
                                                                     const error_code& ec) mutable {
      if (ec) return done(stream->Failure(ec, ("TLS handshake with " + stream->peer()).c_str()));
      auto peer = AuthenticatePeer(stream->socket().native_handle(), *material_, *revoked_, NowUnix());
      if (!peer.ok()) {
        stream->Close();
        return done(Status::InvalidArgument("refused " + stream->peer() + ": " + peer.status().message()));
      }
      Secure(*stream, *peer);
      done(FrameStreamPtr(stream));
    });
  }

  // A client without a certificate is handed out unauthenticated: the node
  // accepts nothing from it but an enrolment request.
  template <typename Deliver>
  void Accepted(std::shared_ptr<AsioFrameStream<Socket>> stream, Deliver deliver) {
    stream->socket().async_handshake(ssl::stream_base::server, [this, stream, deliver](const error_code& ec) {
      if (ec) return Refuse(*stream, "TLS handshake: " + ec.message());
      PeerIdentity peer;
      if (PeerPresentedCertificate(stream->socket().native_handle())) {
        auto checked = AuthenticatePeer(stream->socket().native_handle(), *material_, *revoked_, NowUnix());
        if (!checked.ok()) return Refuse(*stream, checked.status().message());
        peer = *checked;
      }
      Secure(*stream, peer);
      deliver(stream);
    });
  }

 private:
  static void Secure(AsioFrameStream<Socket>& stream, PeerIdentity peer) {
    SSL* ssl = stream.socket().native_handle();
    std::weak_ptr<AsioFrameStream<Socket>> weak = stream.shared_from_this();
    stream.set_tls(std::move(peer), [weak, ssl](std::string_view label, size_t n) -> Result<std::string> {
      if (weak.expired()) return Status::Unavailable("stream closed");
      return ExportKeyingMaterial(ssl, label, n);
    });
  }
  void Refuse(AsioFrameStream<Socket>& stream, const std::string& reason) {
    uint64_t suppressed = 0;
    if (refusals_.Allow(std::chrono::steady_clock::now(), suppressed))
      Log(LogLevel::kWarn, "refused stream", {{"from", stream.peer()}, {"reason", reason}, {"suppressed", suppressed}});
    stream.Close();
  }

  std::shared_ptr<const ClusterMaterial> material_;
  std::shared_ptr<const RevocationSet> revoked_;
  ssl::context client_{ssl::context::tls_client};
  ssl::context server_{ssl::context::tls_server};
  LogLimiter refusals_{10, std::chrono::seconds(10)};
};

template <typename Security>
class FramedTransport final : public StreamTransport {
  using Socket = typename Security::Socket;
  using Stream = AsioFrameStream<Socket>;

 public:
  FramedTransport(asio::io_context& io, const StreamLimits& limits, Security security)
      : io_(io), limits_(limits), budget_(limits.memory_budget), security_(std::move(security)) {}
  ~FramedTransport() override { Close(); }

  Security& security() { return security_; }

  void Connect(const HostPort& to, ConnectHandler done) override {
    auto stream = std::make_shared<Stream>(security_.MakeSocket(io_), to.ToString(), limits_.deadline, nullptr, budget_);
    stream->StartDeadline();
    tcp::endpoint ep(ToAsio(to.ip), to.port);
    auto& socket = stream->socket().lowest_layer();
    // Streams leave from the address the node listens on (when it is a
    // specific one), as its datagrams do: peers and firewalls see one address
    // per node, and a partition made by address filters cuts streams too.
    if (source_ && source_->is_v4() == ep.address().is_v4()) {
      error_code ec;
      socket.open(ep.protocol(), ec);
      if (!ec) socket.bind(tcp::endpoint(*source_, 0), ec);
      if (ec) {
        auto failure = stream->Failure(ec, ("binding a stream to " + source_->to_string()).c_str());
        asio::post(io_, [done = std::move(done), failure = std::move(failure)]() mutable { done(std::move(failure)); });
        return;
      }
    }
    socket.async_connect(ep, [this, stream, done = std::move(done)](const error_code& ec) mutable {
      if (ec) return done(stream->Failure(ec, ("connecting to " + stream->peer()).c_str()));
      error_code ignored;
      stream->socket().lowest_layer().set_option(tcp::no_delay(true), ignored);
      security_.Connected(stream, std::move(done));
    });
  }

  Status Listen(const HostPort& at, AcceptHandler on_stream) override {
    loop_ = std::make_unique<StreamAcceptLoop<tcp, Socket>>(
        io_, std::string(Security::kName) + " " + at.ToString(), limits_,
        [this, on_stream](std::shared_ptr<Stream> s) {
          security_.Accepted(std::move(s), [on_stream](std::shared_ptr<Stream> ready) { on_stream(std::move(ready)); });
        },
        budget_, security_.Wrapper());
    if (Status s = ListenTcp(loop_->acceptor(), at, source_); !s.ok()) return s;
    loop_->Start();
    return Status::Ok();
  }

  void Close() override {
    if (loop_) loop_->Close();
  }

  std::string_view name() const override { return Security::kName; }

 private:
  asio::io_context& io_;
  StreamLimits limits_;
  StreamMemoryBudget budget_;  // shared by every stream of this transport, inbound and outbound
  Security security_;
  std::optional<asio::ip::address> source_;  // the listen address, when specific
  std::unique_ptr<StreamAcceptLoop<tcp, Socket>> loop_;
};

}  // namespace

Result<std::unique_ptr<StreamTransport>> MakeTcpTransport(asio::io_context& io, const StreamLimits& limits) {
  return std::unique_ptr<StreamTransport>(new FramedTransport<PlainSecurity>(io, limits, PlainSecurity{}));
}

StreamTransportFactory MutualTlsTransportFactory(std::shared_ptr<const ClusterMaterial> material,
                                                 std::shared_ptr<const RevocationSet> revoked) {
  return [material, revoked](asio::io_context& io,
                             const StreamLimits& limits) -> Result<std::unique_ptr<StreamTransport>> {
    auto transport = std::make_unique<FramedTransport<MutualTlsSecurity>>(io, limits, MutualTlsSecurity(material, revoked));
    if (Status s = transport->security().Init(); !s.ok()) return s;
    return std::unique_ptr<StreamTransport>(std::move(transport));
  };
}

}  // namespace ndo::mesh

namespace ndo::mesh {

Result<EnrolReply> EnrolThrough(const HostPort& server, const std::optional<HostPort>& source, const std::string& ca_hash,
                                const std::function<Result<EnrolRequest>(std::string_view exporter)>& make_request,
                                std::chrono::milliseconds timeout) {
  using namespace detail;
  namespace ssl = asio::ssl;
  try {
    asio::io_context io;
    ssl::context ctx(ssl::context::tls_client);
    if (Status s = ConfigureEnrolClientContext(ctx.native_handle()); !s.ok()) return s;
    auto stream = std::make_shared<AsioFrameStream<ssl::stream<tcp::socket>>>(
        ssl::stream<tcp::socket>(io, ctx), server.ToString(), timeout, nullptr, StreamMemoryBudget(4 * kMaxEnrolMessageBytes));
    stream->StartDeadline();
    Result<EnrolReply> result = Status::Unavailable("enrolment with " + server.ToString() + " did not finish");
    auto fail = [&](Status s) {
      result = std::move(s);
      stream->Close();
    };
    tcp::endpoint ep(ToAsio(server.ip), server.port);
    if (source && !source->unspecified() && SameFamily(*source, server)) {
      error_code ec;
      stream->socket().lowest_layer().open(ep.protocol(), ec);
      if (!ec) stream->socket().lowest_layer().bind(tcp::endpoint(ToAsio(source->ip), 0), ec);
      // A listen address this machine does not have: a mistake, not worth a retry.
      if (ec) return Status::InvalidArgument("binding the enrolment connection to " + source->ip.ToString() + ": " + ec.message());
    }
    stream->socket().lowest_layer().async_connect(ep, [&](const error_code& ec) {
      if (ec) return fail(stream->Failure(ec, ("connecting to " + server.ToString()).c_str()));
      stream->socket().async_handshake(ssl::stream_base::client, [&](const error_code& hec) {
        if (hec) return fail(stream->Failure(hec, ("TLS handshake with " + server.ToString()).c_str()));
        SSL* native = stream->socket().native_handle();
        auto pinned = AuthenticateEnrolServer(native, ca_hash, static_cast<int64_t>(std::time(nullptr)));
        if (!pinned.ok()) return fail(pinned.status());
        auto exporter = ExportKeyingMaterial(native, kEnrolExporterLabel, kEnrolExporterBytes);
        if (!exporter.ok()) return fail(exporter.status());
        auto request = make_request(*exporter);
        if (!request.ok()) return fail(request.status());
        auto body = EncodeEnrolRequest(*request);
        if (!body.ok()) return fail(body.status());
        stream->WriteFrame(std::move(*body), [&, pinned_ca = *pinned](Status written) {
          if (!written.ok()) return fail(written);
          stream->ReadFrame(kMaxEnrolMessageBytes, [&, pinned_ca](Result<std::string> frame) {
            if (!frame.ok()) return fail(frame.status().WithContext("reading the enrolment reply"));
            auto reply = DecodeEnrolReply(*frame);
            if (!reply.ok()) return fail(reply.status().WithContext("enrolment reply"));
            if (!reply->error.empty()) {
              // A member that cannot enrol right now (the CA holder down, the
              // rate limit) is worth another try; a verdict on the token is not.
              bool transient = reply->error.rfind("enrolment unavailable", 0) == 0 ||
                               reply->error.rfind("too many enrolment attempts", 0) == 0;
              std::string why = server.ToString() + " refused: " + reply->error;
              return fail(transient ? Status::Unavailable(why) : Status::InvalidArgument(why));
            }
            if (reply->ca_pem != pinned_ca)
              return fail(Status::InvalidArgument("the enrolment reply's CA is not the pinned one"));
            result = std::move(*reply);
            stream->Close();
          });
        });
      });
    });
    io.run();
    return result;
  } catch (const std::exception& e) {
    return Status::IoError(std::string("enrolment: ") + e.what());
  }
}

}  // namespace ndo::mesh
