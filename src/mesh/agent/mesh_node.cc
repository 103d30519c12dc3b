// The Asio driver of a mesh node: the only translation unit of ndo_mesh that
// includes Asio (it is slow to compile). It holds the TCP StreamTransport,
// the frame streams (TCP and the Unix control socket share one template),
// and the node itself. The node's decisions live in sans-IO pieces: the
// membership core, the work core (through agent/work_service.h), and the
// node's services (rejoin_policy.h, security_sync.h, enrolment_relay.h,
// control_router.h). This file feeds them inputs and the time, and carries
// out what they return on sockets, timers, streams and the store.
#include "mesh/api/node.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <optional>
#include <random>

#include "mesh/transport/asio_streams.h"
#include "mesh/membership/codec.h"
#include "mesh/api/control.h"
#include "mesh/agent/control_router.h"
#include "mesh/agent/data_dir.h"
#include "mesh/agent/membership_report.h"
#include "mesh/security/enrolment.h"
#include "mesh/security/enrolment_relay.h"
#include "mesh/security/gossip_seal.h"
#include "mesh/membership/rejoin_policy.h"
#include "mesh/security/security_state.h"
#include "mesh/security/security_sync.h"
#include "mesh/membership/stream_frame.h"
#include "mesh/security/tls_context.h"
#include "mesh/work/work_messages.h"
#include "mesh/agent/work_service.h"
#include "mesh/agent/record_keys_store.h"
#include "mesh/membership/scan_policy.h"
#include "base/log.h"
#include "store/store.h"

namespace ndo::mesh {
namespace {

using namespace detail;  // the Asio stream pieces (mesh/transport/asio_streams.h)

// ---------------------------------------------------------------------------
// The node.

constexpr size_t kMaxOutstandingSends = 1024;
constexpr size_t kMaxOutboundStreams = 32;
constexpr size_t kMaxControlStreams = 8;
constexpr std::string_view kSecurityStateKey = "mesh.security";

std::string_view StateMessage(MemberState s) {
  switch (s) {
    case MemberState::kAlive: return "member alive";
    case MemberState::kSuspect: return "member suspect";
    case MemberState::kDead: return "member dead";
    case MemberState::kLeft: return "member left";
  }
  return "member changed";
}

class Node {
 public:
  // `bound_control_socket` is set to the control socket's path once it is
  // bound; the caller removes the file after the node, and with it the
  // store, is gone (RunMeshNode).
  Node(const MeshNodeOptions& opts, std::string* bound_control_socket)
      : opts_(opts),
        udp_(io_),
        timer_(io_),
        signals_(io_),
        seal_(opts.seal),
        bound_control_socket_(bound_control_socket) {}

  ~Node() {
    // Listeners stop before the members go; the io_context (declared
    // before every socket) is destroyed after them.
    if (streams_) streams_->Close();
    if (control_) control_->Close();
  }

  Status Start();
  Status Run();

 private:
  Time Now() const { return Clock::now(); }
  Status Stopped(const std::string& what);

  Status OpenState();
  Status BindControlSocket();
  Status BindGossip();

  void ReceiveNext();
  void OnDatagram(size_t n);
  void Drop(const std::string& from, size_t bytes, const std::string& reason);
  void AfterInput();
  void Send(const Outgoing& o);
  void StartPushPull(StreamRequest req);
  using ReplyHandler = std::function<void(Result<std::string> reply, const NodeId& peer)>;
  // One frame out, one frame back over a new stream to `address`.
  void RequestReply(const std::string& address, std::string body, ReplyHandler on_reply);
  // The replicated security state (secured clusters, mesh/security/security_sync.h):
  // what the service asks for, carried out.
  Status LoadSecurityState();
  void DrainSecurity();
  void PutInForce(const SecurityChange& change);
  void SendSecuritySync(const SecuritySyncRequest& request);
  void OnSecuritySync(const FrameStreamPtr& stream, std::string_view body);
  std::vector<SecurityPeer> AlivePeers() const;
  int64_t UnixNow() const { return static_cast<int64_t>(std::time(nullptr)); }
  ControlResponse RotateKeys();
  ControlResponse RemoveMember(const std::string& who);
  void PushPullFailed(const std::string& address, const std::string& reason);
  void OnInboundStream(const FrameStreamPtr& stream);
  void OnPushPullStream(const FrameStreamPtr& stream, std::string_view body);
  void OnEnrolStream(const FrameStreamPtr& stream);
  EnrolReply Enrol(const EnrolRequest& request, std::string_view exporter, const std::string& source,
                   const std::string& from);
  void RelayEnrolment(const FrameStreamPtr& stream, std::string request_bytes, const EnrolRequest& request,
                      std::string exporter, const std::string& source);
  void OnRelayedEnrol(const FrameStreamPtr& stream, std::string_view body);
  void RefuseEnrolment(const std::string& from, const std::string& token, const std::string& reason);
  void Answer(const FrameStreamPtr& stream, const EnrolReply& reply, std::optional<FrameKind> kind = std::nullopt);
  ControlResponse CreateTokenFor(const TokenParams& params);
  // Distributed scans (mesh/agent/work_service.h).
  Status SetUpWork();
  MeshView WorkView() const;
  void LearnPeerCertificate(const PeerIdentity& peer);
  void WorkTick(Time now);
  void OnWorkStream(const FrameStreamPtr& stream, std::string_view body);
  void SendWork(const std::string& address, const WorkMessage& message, WorkEnv::ReplyHandler on_reply);
  ControlResponse SubmitScan(const ControlRequest& request);
  ControlResponse ControlScan(const ControlRequest& request);
  Status SetUpSecurity();
  void DropStream(const FrameStreamPtr& stream, const std::string& reason);
  void OnControlStream(const std::shared_ptr<LocalStream>& stream);
  void LogEvent(const MemberEvent& e);
  void ArmTimer();
  void OnTimer();
  void MaybeSave(bool force);
  void PersistCounters();
  void StartRejoin(Time now);
  void LogRejoinEvents();
  void BeginLeave(const std::string& why);
  void Finish();

  MeshNodeOptions opts_;
  asio::io_context io_;  // before every socket and timer: destroyed after them
  udp::socket udp_;
  asio::steady_timer timer_;
  asio::signal_set signals_;
  std::shared_ptr<DatagramSeal> seal_;
  // Security (a secured cluster only): revocations are consulted at every
  // TLS handshake and datagram.
  std::shared_ptr<RevocationSet> revoked_ = std::make_shared<RevocationSet>();
  std::unique_ptr<EnrolmentAuthority> authority_;  // when this node holds the CA key
  std::shared_ptr<AeadSeal> aead_;                 // the seal, when the node made it
  std::optional<SecuritySync> security_;          // a secured cluster only
  EnrolmentRelay relay_{0};                         // reseeded at start
  EnrolmentLimiter enrol_limiter_;
  LogLimiter enrol_refusals_{20, std::chrono::seconds(10)};
  std::unique_ptr<StreamTransport> streams_;
  std::unique_ptr<StreamAcceptLoop<local_stream>> control_;
  std::unique_ptr<Store> store_;
  // Signs and checks scan records (a secured cluster only); between the
  // store it writes learnt certificates to and the work service using it.
  std::unique_ptr<CertificateKeys> record_keys_;
  std::unique_ptr<WorkService> work_;  // after the store: destroyed (engines joined) before it
  std::optional<Membership> core_;
  NodeState state_;
  HostPort listen_;
  std::string control_path_;
  std::string* bound_control_socket_;
  bool udp_v6_ = false;

  std::array<char, 65536> rx_{};
  udp::endpoint rx_from_;
  size_t sends_outstanding_ = 0;
  size_t outbound_streams_ = 0;
  uint64_t timer_generation_ = 0;

  // Joining and rejoining (mesh/membership/rejoin_policy.h), from the start on.
  std::optional<RejoinPolicy> rejoin_;
  std::vector<std::string> initial_join_;  // seeds first, then saved members
  size_t initial_seed_count_ = 0;
  std::mt19937_64 rng_{0};  // seeds the work service

  // Persistence. saved_* are the counters known to be on disk (synced).
  bool dirty_ = false;
  Time next_save_{};
  uint64_t saved_incarnation_ = 0, saved_epoch_ = 0;

  bool leaving_ = false, finished_ = false;
  Time leave_done_{};

  LogLimiter datagram_drops_{10, std::chrono::seconds(10)};
  LogLimiter stream_drops_{10, std::chrono::seconds(10)};
  LogLimiter send_drops_{10, std::chrono::seconds(10)};
  LogLimiter save_errors_{10, std::chrono::seconds(10)};
};

Status Node::OpenState() {
  auto store = OpenDataDirStore(opts_.data_dir);
  if (!store.ok()) return store.status();
  store_ = std::move(*store);
  std::optional<NodeState> saved;
  auto loaded = LoadNodeState(*store_);
  if (loaded.ok()) {
    saved = std::move(*loaded);
  } else if (loaded.status().code() != Status::Code::kNotFound) {
    return loaded.status().WithContext("data dir " + opts_.data_dir);
  }
  IdentityRequest request = opts_.identity;
  if (opts_.cluster) {
    request.id = opts_.cluster->node;
    if (!opts_.cluster->vantage.empty()) request.certified_vantage = opts_.cluster->vantage;
  }
  if (!saved && !request.allow) {
    // The first start of the node `ndo init --allow` made.
    if (auto init = store_->GetMeta(kInitPolicyKey); init.ok()) {
      auto policy = DecodeScanPolicy(*init);
      if (!policy.ok()) return policy.status().WithContext("the scan policy ndo init saved");
      request.allow = std::move(*policy);
    }
  }
  if (saved && request.allow && EncodeScanPolicy(*request.allow) != EncodeScanPolicy(saved->self.allow))
    Log(LogLevel::kInfo, "scan policy replaced",
        {{"was", FormatAddressSet(saved->self.allow)}, {"now", FormatAddressSet(*request.allow)}});
  auto resolved = ResolveIdentity(saved, request);
  if (!resolved.ok()) return resolved.status();
  state_ = std::move(*resolved);
  if (state_.self.allow.empty())
    Log(LogLevel::kWarn, "no scan policy: this node takes no distributed work (give --allow LIST)");
  else
    Log(LogLevel::kInfo, "scan policy", {{"allow", FormatAddressSet(state_.self.allow)}});
  auto listen = ParseHostPort(state_.listen);
  if (!listen.ok()) return listen.status();
  listen_ = *listen;
  // The listen address may be the saved one: checked here, not only by the CLI.
  for (const auto& seed : opts_.seeds)
    if (!SameFamily(listen_, seed))
      return Status::InvalidArgument("seed " + seed.ToString() + " and the listen address " + listen_.ToString() +
                                     " are of different address families (IPv4 and IPv6); a node reaches only "
                                     "its own family (or both from --listen [::]:PORT)");
  // Saved, on disk, before any traffic: a node that crashes now (or loses
  // power) still never reuses this incarnation.
  if (Status s = SaveNodeState(*store_, state_, /*sync=*/true); !s.ok()) return s;
  saved_incarnation_ = state_.incarnation;
  saved_epoch_ = state_.max_epoch_seen;
  std::vector<std::string> seeds;
  for (const auto& s : opts_.seeds) seeds.push_back(s.ToString());
  initial_join_ = RejoinAddresses(state_, seeds);
  initial_seed_count_ = std::min(seeds.size(), initial_join_.size());
  if (saved)
    Log(LogLevel::kInfo, "restarting with saved identity",
        {{"id", state_.self.id.Hex()}, {"incarnation", state_.incarnation},
         {"known_members", static_cast<uint64_t>(state_.members.size())}});
  return Status::Ok();
}

Status Node::BindControlSocket() {
  control_path_ = ControlSocketPath(opts_.data_dir);
  std::error_code fec;
  if (std::filesystem::exists(std::filesystem::symlink_status(control_path_, fec))) {
    if (ControlSocketAnswers(control_path_))
      return Status::Unavailable("an ndo agent is already running for data dir " + opts_.data_dir + " (it answers on " +
                                 control_path_ + ")");
    if (::unlink(control_path_.c_str()) != 0 && errno != ENOENT)
      return Status::IoError("cannot remove stale control socket " + control_path_ + ": " + std::strerror(errno));
    Log(LogLevel::kInfo, "removed stale control socket", {{"path", control_path_}});
  }
  StreamLimits limits{std::chrono::seconds(5), kMaxControlStreams};
  control_ = std::make_unique<StreamAcceptLoop<local_stream>>(
      io_, "control " + control_path_, limits, [this](std::shared_ptr<LocalStream> s) { OnControlStream(s); });
  auto& acc = control_->acceptor();
  local_stream::endpoint ep(control_path_);
  error_code ec;
  acc.open(ep.protocol(), ec);
  // The socket file is created by bind(), and Linux gives it the mode of
  // the socket's inode (less the umask): set to 0600 first, it is never
  // accessible to others, not even for an instant. Not the process-wide
  // umask: other threads (RocksDB's) create files meanwhile. Where bind()
  // ignores the inode's mode, the chmod right after closes the gap, and the
  // data directory (0700) keeps others out meanwhile.
  if (!ec && ::fchmod(acc.native_handle(), 0600) != 0) ec = error_code(errno, boost::system::system_category());
  if (!ec) acc.bind(ep, ec);
  if (!ec) *bound_control_socket_ = control_path_;
  if (!ec && ::chmod(control_path_.c_str(), 0600) != 0) ec = error_code(errno, boost::system::system_category());
  if (!ec) acc.listen(16, ec);
  if (ec) return Status::IoError("cannot create control socket " + control_path_ + ": " + ec.message());
  control_->Start();
  return Status::Ok();
}

Status Node::BindGossip() {
  udp::endpoint ep(ToAsio(listen_.ip), listen_.port);
  error_code ec;
  udp_.open(ep.protocol(), ec);
  // [::] takes IPv4 too only with IPV6_V6ONLY off, which the system's
  // default (net.ipv6.bindv6only) does not promise.
  if (!ec && listen_.dual_stack()) udp_.set_option(asio::ip::v6_only(false), ec);
  // No SO_REUSEADDR on UDP: it would let a second node share the port.
  if (!ec) udp_.bind(ep, ec);
  if (ec) return Status::IoError("cannot bind UDP " + listen_.ToString() + ": " + ec.message());
  udp_v6_ = ep.protocol() == udp::v6();
  StreamTransportFactory factory = opts_.stream_transport;
  if (!factory) factory = opts_.cluster ? MutualTlsTransportFactory(opts_.cluster, revoked_) : MakeTcpTransport;
  auto transport = factory(io_, opts_.streams);
  if (!transport.ok()) return transport.status();
  streams_ = std::move(*transport);
  return streams_->Listen(listen_, [this](FrameStreamPtr s) { OnInboundStream(s); });
}

Status Node::Start() {
  if (Status s = MakeDataDir(opts_.data_dir); !s.ok()) return s;
  if (Status s = OpenState(); !s.ok()) return s;
  if (Status s = SetUpSecurity(); !s.ok()) return s;
  if (Status s = BindGossip(); !s.ok()) return s;
  if (Status s = BindControlSocket(); !s.ok()) return s;

  auto seed = RandomSeed();
  if (!seed.ok()) return seed.status();
  Time now = Now();
  core_.emplace(state_.self, opts_.membership, *seed, now, state_.incarnation);
  core_->set_max_epoch_seen(state_.max_epoch_seen);
  rng_.seed(*seed ^ 0x5bd1e995);
  RejoinConfig rejoin{opts_.join_retry_first, opts_.join_retry_max, kRejoinWhenAloneAfter, opts_.membership.reap_after};
  rejoin_.emplace(rejoin, rng_());
  relay_ = EnrolmentRelay(rng_());
  if (Status s = SetUpWork(); !s.ok()) return s;
  Log(LogLevel::kInfo, "node started",
      {{"id", state_.self.id.Hex()}, {"name", state_.self.name}, {"vantage", state_.self.vantage},
       {"addr", state_.self.address}, {"listen", listen_.ToString()}, {"priority", state_.self.priority},
       {"incarnation", state_.incarnation}, {"streams", std::string(streams_->name())},
       {"data_dir", opts_.data_dir}});
  rejoin_->Start(initial_join_, initial_seed_count_, now);  // the first attempt from the first timer

  signals_.add(SIGINT);
  signals_.add(SIGTERM);
  signals_.async_wait([this](const error_code& ec, int sig) {
    if (ec) return;
    BeginLeave(sig == SIGINT ? "SIGINT" : "SIGTERM");
    signals_.async_wait([this](const error_code& ec2, int sig2) {
      if (ec2) return;
      Log(LogLevel::kWarn, "second signal: exiting without waiting", {{"signal", sig2}});
      Finish();
    });
  });
  ReceiveNext();
  AfterInput();
  return Status::Ok();
}

Status Node::Run() {
  // Asio and the standard library throw on resource exhaustion, and a bug
  // may throw anything: whatever escapes a handler ends the node here, with
  // the reason logged and a non-zero exit, so a supervisor restarts it.
  try {
    io_.run();
    return Status::Ok();
  } catch (const std::exception& e) {
    return Stopped(e.what());
  } catch (...) {
    return Stopped("unknown exception");
  }
}

Status Node::Stopped(const std::string& what) {
  Log(LogLevel::kError, "unexpected error in the event loop; stopping", {{"error", what}});
  // The exception left a handler, not a destructor: the core and the store
  // are whole objects, so what the core knows is still worth saving. A
  // second failure only costs that save.
  if (!finished_ && core_ && store_) {
    try {
      PersistCounters();
      MaybeSave(true);
    } catch (...) {
      Log(LogLevel::kError, "could not save the node state after the error");
    }
  }
  finished_ = true;
  return Status::IoError("mesh node stopped by an unexpected error: " + what);
}

void Node::ReceiveNext() {
  udp_.async_receive_from(asio::buffer(rx_), rx_from_, [this](const error_code& ec, size_t n) {
    if (ec == asio::error::operation_aborted || finished_) return;
    if (ec) {
      // ICMP errors from earlier sends surface here on Linux (connection
      // refused): nothing to do but read on.
      Log(LogLevel::kDebug, "udp receive error", {{"error", ec.message()}});
    } else {
      OnDatagram(n);
    }
    ReceiveNext();
  });
}

void Node::Drop(const std::string& from, size_t bytes, const std::string& reason) {
  uint64_t suppressed = 0;
  if (datagram_drops_.Allow(std::chrono::steady_clock::now(), suppressed))
    Log(LogLevel::kWarn, "dropped datagram",
        {{"from", from}, {"bytes", static_cast<uint64_t>(bytes)}, {"reason", reason}, {"suppressed", suppressed}});
}

void Node::OnDatagram(size_t n) {
  std::string from = FromAsio(rx_from_.address(), rx_from_.port()).ToString();
  if (n > kMaxDatagramBytes + seal_->Overhead()) return Drop(from, n, "oversized");
  if (n == 0) return Drop(from, n, "empty");
  auto opened = seal_->Open(std::string_view(rx_.data(), n));
  if (!opened.ok()) return Drop(from, n, opened.status().message());
  if (!opened->sender.empty() && revoked_->IsRevoked(opened->sender))
    return Drop(from, n, "sender " + opened->sender.Hex() + " is revoked");
  auto msg = DecodeMessage(opened->plain);
  if (!msg.ok()) return Drop(from, n, msg.status().message());
  // The seal authenticated who sealed it: a member may not speak for another.
  if (!opened->sender.empty() && opened->sender != msg->sender)
    return Drop(from, n, "sealed by " + opened->sender.Hex() + " but sent in the name of " + msg->sender.Hex());
  core_->OnMessage(from, *msg, Now());
  AfterInput();
}

void Node::Send(const Outgoing& o) {
  auto fail = [&](const std::string& reason) {
    uint64_t suppressed = 0;
    if (send_drops_.Allow(std::chrono::steady_clock::now(), suppressed))
      Log(LogLevel::kWarn, "datagram not sent", {{"to", o.address}, {"reason", reason}, {"suppressed", suppressed}});
  };
  auto to = ParseHostPort(o.address);
  if (!to.ok()) return fail(to.status().message());
  auto bytes = EncodeMessage(o.message);
  if (!bytes.ok()) return fail(bytes.status().message());
  auto sealed = seal_->Seal(*bytes);
  if (!sealed.ok()) return fail(sealed.status().message());
  if (sends_outstanding_ >= kMaxOutstandingSends) return fail("send queue full");
  udp::endpoint ep(ToAsio(to->ip), to->port);
  if ((ep.protocol() == udp::v6()) != udp_v6_) {
    // An IPv4 socket cannot reach IPv6 members: the mesh must share a
    // family (a dual-stack [::] listener reaches both).
    if (udp_v6_) {
      ep = udp::endpoint(asio::ip::make_address_v6(asio::ip::v4_mapped, ep.address().to_v4()), ep.port());
    } else {
      return fail("IPv6 member unreachable from an IPv4 socket");
    }
  }
  auto buf = std::make_shared<std::string>(std::move(*sealed));
  ++sends_outstanding_;
  udp_.async_send_to(asio::buffer(*buf), ep, [this, buf](const error_code& ec, size_t) {
    --sends_outstanding_;
    if (ec && ec != asio::error::operation_aborted) Log(LogLevel::kDebug, "udp send error", {{"error", ec.message()}});
  });
}

void Node::PushPullFailed(const std::string& address, const std::string& reason) {
  Log(LogLevel::kDebug, "push-pull failed", {{"addr", address}, {"reason", reason}});
  core_->OnPushPullFailed(address, Now());
  AfterInput();
}

// Frames between members, secured or not, are enveloped with their kind
// (stream_frame.h): the same stream port carries push-pulls, work messages,
// security-state syncs and relayed enrolments.

void Node::StartPushPull(StreamRequest req) {
  std::string address = req.address;
  auto body = EncodePushPull(req.request);
  if (!body.ok()) {
    // Posted, so the core is never re-entered from inside AfterInput.
    return asio::post(io_, [this, address, reason = body.status().message()] { PushPullFailed(address, reason); });
  }
  RequestReply(address, EncodeFrame(FrameKind::kPushPull, *body), [this, address](Result<std::string> frame,
                                                                                   const NodeId& peer) {
    if (!frame.ok()) return PushPullFailed(address, frame.status().message());
    auto bytes = ExpectFrame(*frame, FrameKind::kPushPull);
    if (!bytes.ok()) return PushPullFailed(address, "bad reply: " + bytes.status().message());
    auto reply = DecodePushPull(*bytes);
    if (!reply.ok()) return PushPullFailed(address, "bad reply: " + reply.status().message());
    if (opts_.cluster && reply->sender != peer)
      return PushPullFailed(address, "reply in the name of " + reply->sender.Hex() + " from node " + peer.Hex());
    core_->OnPushPullReply(address, *reply, Now());
    AfterInput();
  });
}

void Node::RequestReply(const std::string& address, std::string body, ReplyHandler on_reply) {
  // Every outcome is delivered from the event loop, never from inside this
  // call: the caller may be driving the core (AfterInput).
  auto fail_later = [this, on_reply](std::string reason) {
    asio::post(io_, [on_reply, reason] { on_reply(Status::Unavailable(reason), NodeId{}); });
  };
  auto to = ParseHostPort(address);
  if (!to.ok()) return fail_later(to.status().message());
  if (outbound_streams_ >= kMaxOutboundStreams) return fail_later("too many outbound streams in flight");
  ++outbound_streams_;
  auto done = [this](const FrameStreamPtr& s) {
    --outbound_streams_;
    if (s) s->Close();
  };
  // Transports complete asynchronously (transport.h); one that called back
  // from inside Connect would re-enter the core from inside AfterInput, so
  // such a call is deferred here.
  auto in_connect = std::make_shared<bool>(true);
  auto on_connect = [this, body = std::move(body), done, on_reply](Result<FrameStreamPtr> connected) mutable {
    if (!connected.ok()) {
      done(nullptr);
      return on_reply(connected.status(), NodeId{});
    }
    FrameStreamPtr s = *connected;
    s->WriteFrame(std::move(body), [this, s, done, on_reply](Status written) {
      if (!written.ok()) {
        done(s);
        return on_reply(written, NodeId{});
      }
      s->ReadFrame(kMaxStreamBytes, [this, s, done, on_reply](Result<std::string> frame) {
        done(s);
        // As for inbound frames: a peer revoked meanwhile is not listened to.
        if (frame.ok() && opts_.cluster && revoked_->IsRevoked(s->authenticated_peer()))
          return on_reply(Status::InvalidArgument("node " + s->authenticated_peer().Hex() + " is revoked"), NodeId{});
        on_reply(std::move(frame), s->authenticated_peer());
      });
    });
  };
  streams_->Connect(*to, [this, in_connect, on_connect = std::move(on_connect)](
                             Result<FrameStreamPtr> connected) mutable {
    if (*in_connect) {
      asio::post(io_, [on_connect, connected = std::move(connected)]() mutable { on_connect(std::move(connected)); });
      return;
    }
    on_connect(std::move(connected));
  });
  *in_connect = false;
}

void Node::DropStream(const FrameStreamPtr& stream, const std::string& reason) {
  uint64_t suppressed = 0;
  if (stream_drops_.Allow(std::chrono::steady_clock::now(), suppressed))
    Log(LogLevel::kWarn, "dropped stream", {{"from", stream->peer()}, {"reason", reason}, {"suppressed", suppressed}});
  stream->Close();
}

void Node::OnInboundStream(const FrameStreamPtr& stream) {
  // Where a stream and its frame go is stream_frame.h's RouteStream and
  // RouteFrame; what is done there is here.
  auto facts = [this, stream] {
    const NodeId& peer = stream->authenticated_peer();
    bool secured = static_cast<bool>(opts_.cluster);
    return StreamFacts{secured, !peer.empty(), secured && revoked_->IsRevoked(peer)};
  };
  if (RouteStream(facts()) == Route::kEnrol) return OnEnrolStream(stream);
  stream->ReadFrame(kMaxStreamBytes, [this, stream, facts](Result<std::string> frame) {
    if (!frame.ok()) return DropStream(stream, frame.status().message());
    auto decoded = DecodeFrame(*frame);
    if (!decoded.ok()) return DropStream(stream, decoded.status().message());
    // Revocation is looked up now, for every frame, not only at the
    // handshake: a node revoked while its stream was open gets nothing more.
    Routing routing = RouteFrame(decoded->kind, facts());
    switch (routing.route) {
      case Route::kPushPull:
        return OnPushPullStream(stream, decoded->body);
      case Route::kWork:
        return OnWorkStream(stream, decoded->body);
      case Route::kSecuritySync:
        return OnSecuritySync(stream, decoded->body);
      case Route::kEnrolRelay:
        return OnRelayedEnrol(stream, decoded->body);
      case Route::kReadFrame:
      case Route::kEnrol:  // RouteStream's, never RouteFrame's
      case Route::kDrop:
        break;
    }
    const NodeId& peer = stream->authenticated_peer();
    DropStream(stream, routing.reason + (peer.empty() ? "" : " (node " + peer.Hex() + ")"));
  });
}

void Node::OnPushPullStream(const FrameStreamPtr& stream, std::string_view body) {
  auto request = DecodePushPull(body);
  if (!request.ok()) return DropStream(stream, request.status().message());
  if (opts_.cluster && request->sender != stream->authenticated_peer())
    return DropStream(stream, "push-pull in the name of " + request->sender.Hex() + " from node " +
                                  stream->authenticated_peer().Hex());
  PushPull reply = core_->OnPushPullRequest(*request, Now());
  AfterInput();
  auto reply_body = EncodePushPull(reply);
  if (!reply_body.ok()) {
    Log(LogLevel::kError, "cannot encode push-pull reply", {{"reason", reply_body.status().message()}});
    return stream->Close();
  }
  stream->WriteFrame(EncodeFrame(FrameKind::kPushPull, *reply_body), [stream](Status) { stream->Close(); });
}

void Node::OnControlStream(const std::shared_ptr<LocalStream>& stream) {
  stream->ReadFrame(kMaxControlRequestBytes, [this, stream](Result<std::string> frame) {
    if (!frame.ok()) return DropStream(stream, "control: " + frame.status().message());
    auto request = DecodeControlRequest(*frame);
    ControlFacts facts{static_cast<bool>(opts_.cluster), opts_.cluster && opts_.cluster->holds_ca_key(),
                       opts_.cluster ? opts_.cluster->role : NodeRole::kScanner};
    ControlRoute route = RouteControl(request, facts);
    ControlResponse response;
    switch (route.call) {
      case ControlCall::kRefuse:
        Log(LogLevel::kWarn, "control request refused", {{"reason", route.error}});
        response.error = route.error;
        break;
      case ControlCall::kCreateToken: response = CreateTokenFor(request->token); break;
      case ControlCall::kRotateKeys: response = RotateKeys(); break;
      case ControlCall::kRemoveMember: response = RemoveMember(request->member); break;
      case ControlCall::kSubmitScan: response = SubmitScan(*request); break;
      case ControlCall::kScanControl: response = ControlScan(*request); break;
      case ControlCall::kDescribe:
        response = DescribeMembership(*core_, request->command);
        if (route.leave) response.leaving = true;
        break;
    }
    auto body = EncodeControlResponse(response);
    if (!body.ok()) {
      ControlResponse err;
      err.error = body.status().message();
      body = EncodeControlResponse(err);
      if (!body.ok()) return stream->Close();
    }
    // A rotation or revocation may have scheduled a key change.
    ArmTimer();
    bool leave = route.leave;
    stream->WriteFrame(std::move(*body), [this, stream, leave](Status) {
      stream->Close();
      if (leave) BeginLeave("control request");
    });
  });
}

Status Node::SetUpSecurity() {
  if (!opts_.cluster) {
    if (!seal_) seal_ = std::make_shared<PlaintextSeal>();
    return Status::Ok();
  }
  if (!seal_) {
    // Counters start at the wall clock (milliseconds): a restarted node
    // continues above what its peers' replay windows hold.
    auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::system_clock::now().time_since_epoch());
    aead_ = std::make_shared<AeadSeal>(opts_.cluster->cluster, opts_.cluster->node, opts_.cluster->keyring,
                                       CounterAtWallMicros(static_cast<uint64_t>(now_us.count())));
    aead_->SetClock([] {
      return static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
              .count());
    });
    seal_ = aead_;
  }
  if (opts_.cluster->holds_ca_key()) authority_ = std::make_unique<EnrolmentAuthority>(*store_, *opts_.cluster);
  if (Status s = LoadSecurityState(); !s.ok()) return s;
  if (authority_) {
    security_->AddSelfAsAuthority(UnixNow());
    DrainSecurity();
  }
  return Status::Ok();
}

Status Node::LoadSecurityState() {
  auto seed = RandomSeed();
  if (!seed.ok()) return seed.status();
  security_.emplace(state_.self.id, *seed);
  std::optional<std::string> saved;
  auto bytes = store_->GetMeta(kSecurityStateKey);
  if (bytes.ok()) {
    saved = std::move(*bytes);
  } else if (bytes.status().code() != Status::Code::kNotFound) {
    return bytes.status();
  }
  if (Status s = security_->Load(opts_.cluster->keyring, saved, UnixNow()); !s.ok()) return s;
  DrainSecurity();
  return Status::Ok();
}

// What the security service asks for, carried out: its changes put in
// force, its states sent. Called after every input to it.
void Node::DrainSecurity() {
  for (const SecurityChange& change : security_->TakeChanges()) PutInForce(change);
  for (const SecuritySyncRequest& request : security_->TakeRequests()) SendSecuritySync(request);
}

// After any change of the security state: the state into the store (synced:
// a revocation must survive a crash), revocations into the set every
// handshake and datagram consults, the keys due now into the seal and the
// keyring file.
void Node::PutInForce(const SecurityChange& change) {
  // On disk first: what is put in force below survives a crash.
  Status saved = change.persist.ok() ? store_->PutMeta(kSecurityStateKey, *change.persist, /*sync=*/true)
                                     : change.persist.status();
  if (!saved.ok()) Log(LogLevel::kError, "cannot save the security state", {{"reason", saved.message()}});
  RevocationSet revoked;
  for (const RevokedNode& r : security_->state().revoked) revoked.Add(r.serial_hex, r.node);
  *revoked_ = std::move(revoked);
  const Result<Keyring>& ring = change.keyring;
  if (!ring.ok()) {
    Log(LogLevel::kError, "no usable gossip key in the security state", {{"reason", ring.status().message()}});
  } else if (aead_) {
    const Keyring& current = aead_->keyring();
    auto ids = [](const Keyring& k) {
      std::string out;
      for (const GossipKey& g : k.keys) out += (out.empty() ? "" : ",") + std::to_string(g.id);
      return out;
    };
    if (current.primary != ring->primary || ids(current) != ids(*ring)) {
      if (Status st = aead_->SetKeyring(*ring); !st.ok()) {
        Log(LogLevel::kError, "cannot install gossip keys", {{"reason", st.message()}});
      } else {
        Log(LogLevel::kInfo, "gossip keys changed",
            {{"primary", ring->primary}, {"keys", ids(*ring)}, {"why", change.why}});
        if (Status st2 = SaveKeyring(opts_.data_dir, *ring); !st2.ok())
          Log(LogLevel::kError, "cannot save the keyring", {{"reason", st2.message()}});
      }
    }
  }
  if (change.self_revoked)
    Log(LogLevel::kError, "this node has been revoked (ndo members remove): the others refuse it");
}

void Node::SendSecuritySync(const SecuritySyncRequest& request) {
  std::string address = request.address;
  RequestReply(address, EncodeFrame(FrameKind::kSecuritySync, request.body), [this, address](Result<std::string> reply,
                                                                                               const NodeId&) {
    if (finished_ || !security_) return;
    Result<std::string_view> bytes = reply.ok() ? ExpectFrame(*reply, FrameKind::kSecuritySync) : reply.status();
    if (!bytes.ok())
      return Log(LogLevel::kDebug, "security sync failed", {{"addr", address}, {"reason", bytes.status().message()}});
    if (Status s = security_->OnSyncReply(*bytes, UnixNow()); !s.ok())
      return Log(LogLevel::kWarn, "bad security state from a member", {{"addr", address}, {"reason", s.message()}});
    DrainSecurity();
    ArmTimer();
  });
}

void Node::OnSecuritySync(const FrameStreamPtr& stream, std::string_view body) {
  auto reply = security_->OnSyncRequest(body, UnixNow());
  if (!reply.ok() && reply.status().code() == Status::Code::kInvalidArgument)
    return DropStream(stream, reply.status().message());
  DrainSecurity();
  ArmTimer();
  if (!reply.ok()) return stream->Close();
  stream->WriteFrame(EncodeFrame(FrameKind::kSecuritySync, *reply), [stream](Status) { stream->Close(); });
}

// The members the membership says are alive (not suspect), with an address.
std::vector<SecurityPeer> Node::AlivePeers() const {
  std::vector<SecurityPeer> alive;
  for (const auto& [id, m] : core_->members())
    if (m.info && m.state == MemberState::kAlive) alive.push_back({id, m.info->address});
  return alive;
}

ControlResponse Node::RotateKeys() {
  ControlResponse r;
  auto done = security_->Rotate(UnixNow(), AlivePeers());
  DrainSecurity();
  if (!done.ok()) {
    r.error = done.status().message();
    return r;
  }
  r.message = done->message;
  Log(LogLevel::kInfo, "gossip key rotation scheduled", {{"key", done->key}, {"primary_from_unix", done->primary_from_unix}});
  return r;
}

ControlResponse Node::RemoveMember(const std::string& who) {
  ControlResponse r;
  std::vector<NamedMember> members;
  for (const auto& [id, m] : core_->members())
    members.push_back({id, m.info ? m.info->name : "", static_cast<bool>(m.info)});
  auto named = ResolveMember(who, members, state_.self.id);
  if (!named.ok()) {
    r.error = named.status().message();
    return r;
  }
  int64_t unix_now = UnixNow();
  RevokedNode revoked{named->id, "", unix_now, named->name};
  if (auto serial = IssuedSerial(*store_, named->id); serial.ok()) revoked.serial_hex = *serial;
  RevocationDone done = security_->Revoke(revoked, unix_now, AlivePeers());
  DrainSecurity();
  r.message = done.message;
  if (done.rotation.ok())
    Log(LogLevel::kInfo, "gossip key rotation scheduled",
        {{"key", done.rotation->key}, {"primary_from_unix", done.rotation->primary_from_unix}});
  Log(LogLevel::kWarn, "member revoked", {{"id", revoked.node.Hex()}, {"name", revoked.name}, {"serial", revoked.serial_hex}});
  return r;
}

void Node::RefuseEnrolment(const std::string& from, const std::string& token, const std::string& reason) {
  uint64_t suppressed = 0;
  if (enrol_refusals_.Allow(std::chrono::steady_clock::now(), suppressed))
    Log(LogLevel::kWarn, "refused enrolment", {{"from", from}, {"token", token}, {"reason", reason}, {"suppressed", suppressed}});
}

// Writes `reply` as the stream's one answer (enveloped as `kind` between
// members; bare to a joiner) and closes the stream.
void Node::Answer(const FrameStreamPtr& stream, const EnrolReply& reply, std::optional<FrameKind> kind) {
  auto body = EncodeEnrolReply(reply);
  if (!body.ok()) return stream->Close();
  stream->WriteFrame(kind ? EncodeFrame(*kind, *body) : std::move(*body), [stream](Status) { stream->Close(); });
}

void Node::OnEnrolStream(const FrameStreamPtr& stream) {
  std::string source = stream->peer();
  if (auto host = ParseHostPort(source); host.ok()) source = host->ip.ToString();
  if (std::string why = enrol_limiter_.Admit(source, Now()); !why.empty()) {
    RefuseEnrolment(stream->peer(), "", why);
    return stream->Close();
  }
  stream->ReadFrame(kMaxEnrolMessageBytes, [this, stream, source](Result<std::string> frame) {
    if (!frame.ok()) {
      enrol_limiter_.RecordFailure(source, Now());
      RefuseEnrolment(stream->peer(), "", "unauthenticated stream: " + frame.status().message());
      return stream->Close();
    }
    auto request = DecodeEnrolRequest(*frame);
    if (!request.ok()) {
      // Also what a node without a certificate gets for anything else (a
      // push-pull from an unenrolled or misconfigured node).
      enrol_limiter_.RecordFailure(source, Now());
      RefuseEnrolment(stream->peer(), "", "not an enrolment request: " + request.status().message());
      return Answer(stream, EnrolReply{"expected an enrolment request (no client certificate)"});
    }
    auto exporter = stream->ExportKeyingMaterial(kEnrolExporterLabel, kEnrolExporterBytes);
    if (!exporter.ok()) return stream->Close();
    if (authority_) return Answer(stream, Enrol(*request, *exporter, source, stream->peer()));
    RelayEnrolment(stream, std::move(*frame), *request, std::move(*exporter), source);
  });
}

EnrolReply Node::Enrol(const EnrolRequest& request, std::string_view exporter, const std::string& source,
                       const std::string& from) {
  std::vector<std::string> members{core_->self().address};
  for (const auto& [id, m] : core_->members())
    if (m.info && m.state == MemberState::kAlive && members.size() < kMaxEnrolMembers) members.push_back(m.info->address);
  auto known = [this](const NodeId& id) { return id == state_.self.id || core_->Find(id) != nullptr; };
  auto outcome = authority_->Handle(request, exporter, std::move(members), known, static_cast<int64_t>(std::time(nullptr)));
  // The keys in force now, with any rotation under way (the authority only
  // knows the keyring the node started with); the joiner syncs the rest of
  // the security state right after joining.
  if (outcome.reply.error.empty() && aead_) outcome.reply.keyring = aead_->keyring();
  if (!outcome.reply.error.empty()) {
    enrol_limiter_.RecordFailure(source, Now());
    RefuseEnrolment(from, request.token_id, outcome.log_reason);
  } else {
    Log(LogLevel::kInfo, "enrolled node",
        {{"id", outcome.enrolled.Hex()}, {"name", request.name}, {"vantage", request.vantage}, {"from", from},
         {"token", request.token_id}});
  }
  return std::move(outcome.reply);
}

// A member without the CA key passes the request to an alive enrolment
// authority and the answer back; the joiner's proof stays bound to its
// session with this member, whose exporter goes along.
void Node::RelayEnrolment(const FrameStreamPtr& stream, std::string request_bytes, const EnrolRequest& request,
                          std::string exporter, const std::string& source) {
  auto plan = relay_.Plan(std::move(request_bytes), std::move(exporter), source, security_->state(), AlivePeers());
  if (!plan.ok()) {
    if (plan.status().code() != Status::Code::kUnavailable) return stream->Close();
    RefuseEnrolment(stream->peer(), request.token_id, plan.status().message());
    return Answer(stream, EnrolmentRelay::Refusal());
  }
  std::string to = plan->to;
  RequestReply(to, std::move(plan->frame), [this, stream, source, token = request.token_id, to](Result<std::string> reply,
                                                                                                const NodeId&) {
    RelayOutcome outcome = EnrolmentRelay::OnReply(reply);
    if (!outcome.relayed) {
      RefuseEnrolment(stream->peer(), token, "relay to " + to + " failed: " + outcome.log_reason);
      return Answer(stream, outcome.answer);
    }
    if (outcome.record_failure) enrol_limiter_.RecordFailure(source, Now());
    Log(LogLevel::kInfo, "relayed enrolment",
        {{"from", stream->peer()}, {"to", to}, {"token", token},
         {"result", outcome.record_failure ? outcome.log_reason : "enrolled"}});
    Answer(stream, outcome.answer);
  });
}

void Node::OnRelayedEnrol(const FrameStreamPtr& stream, std::string_view body) {
  if (!authority_) return DropStream(stream, "relayed enrolment to a node that does not hold the CA key");
  auto relayed = DecodeRelayedEnrol(body);
  if (!relayed.ok()) return DropStream(stream, "bad relayed enrolment: " + relayed.status().message());
  std::string from = relayed->source + " via " + stream->peer();
  if (std::string why = enrol_limiter_.Admit(relayed->source, Now()); !why.empty()) {
    RefuseEnrolment(from, "", why);
    return Answer(stream, EnrolReply{"too many enrolment attempts; try again later"}, FrameKind::kEnrolRelay);
  }
  auto request = DecodeEnrolRequest(relayed->request);
  if (!request.ok()) return DropStream(stream, "bad relayed enrolment request: " + request.status().message());
  Answer(stream, Enrol(*request, relayed->exporter, relayed->source, from), FrameKind::kEnrolRelay);
}

Status Node::SetUpWork() {
  WorkEnv env;
  env.request = [this](const std::string& address, const WorkMessage& m, WorkEnv::ReplyHandler on_reply) {
    SendWork(address, m, std::move(on_reply));
  };
  env.post = [this](std::function<void()> fn) {
    asio::post(io_, [this, fn = std::move(fn)] {
      if (finished_) return;
      fn();
      ArmTimer();  // the worker may want to wake sooner now
    });
  };
  env.wall_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  env.broadcast = [this](std::string key, std::string payload) { core_->Broadcast(std::move(key), std::move(payload)); };
  if (opts_.cluster) {
    // The revocation set is consulted at every check, as at every handshake.
    auto revoked = revoked_;
    StoredKeysReport report;
    auto keys = OpenRecordKeys(
        *store_, *opts_.cluster, [revoked](const NodeId& id) { return revoked->IsRevoked(id); },
        [this] { return UnixNow(); }, &report);
    if (!keys.ok()) return keys.status();
    record_keys_ = std::move(*keys);
    Log(LogLevel::kInfo, "record keys",
        {{"certificates", static_cast<uint64_t>(record_keys_->known())},
         {"dropped", static_cast<uint64_t>(report.dropped)}});
  }
  work_ = std::make_unique<WorkService>(*store_, state_.self.id, state_.self.vantage, opts_.work, std::move(env),
                                        rng_(), record_keys_.get());
  work_->SetPolicy(state_.self.allow);
  return work_->Load();
}

// A member's certificate, checked in the TLS handshake, seeds the record
// keys: the records it signs then verify here without a certificate fetch.
// Compared first, as it is known after the first stream.
void Node::LearnPeerCertificate(const PeerIdentity& peer) {
  if (!record_keys_ || peer.cert_pem.empty()) return;
  if (auto known = record_keys_->Certificate(peer.node); known && *known == peer.cert_pem) return;
  if (Status s = record_keys_->Learn(peer.cert_pem); !s.ok())
    Log(LogLevel::kDebug, "peer certificate not kept", {{"id", peer.node.Hex()}, {"reason", s.message()}});
}

MeshView Node::WorkView() const {
  return MeshViewOf(*core_, [this](const NodeId& id) { return opts_.cluster && revoked_->IsRevoked(id); });
}

void Node::WorkTick(Time now) {
  if (work_) work_->Tick(now, WorkView());
}

void Node::SendWork(const std::string& address, const WorkMessage& m, WorkEnv::ReplyHandler on_reply) {
  auto body = EncodeWorkMessage(m);
  if (!body.ok()) {
    return asio::post(io_, [on_reply, st = body.status()] { on_reply(st); });
  }
  RequestReply(address, EncodeFrame(FrameKind::kWork, *body), [this, on_reply](Result<std::string> frame,
                                                                               const NodeId& peer) {
    if (finished_) return;
    if (!frame.ok()) return on_reply(frame.status());
    auto bytes = ExpectFrame(*frame, FrameKind::kWork);
    if (!bytes.ok()) return on_reply(Status::Corruption("not a work reply: " + bytes.status().message()));
    auto reply = DecodeWorkMessage(*bytes);
    if (!reply.ok()) return on_reply(reply.status());
    if (opts_.cluster && reply->sender != peer)
      return on_reply(Status::Corruption("work reply in the name of " + reply->sender.Hex() + " from node " + peer.Hex()));
    on_reply(std::move(*reply));
    ArmTimer();
  });
}

void Node::OnWorkStream(const FrameStreamPtr& stream, std::string_view body) {
  auto message = DecodeWorkMessage(body);
  if (!message.ok()) return DropStream(stream, "work message: " + message.status().message());
  std::string vantage;
  bool is_operator = false;  // an unsecured mesh has no roles: the lesser one
  if (opts_.cluster) {
    if (message->sender != stream->authenticated_peer())
      return DropStream(stream, "work message in the name of " + message->sender.Hex() + " from node " +
                                    stream->authenticated_peer().Hex());
    // The vantage a member may ask work for is the one its certificate
    // binds, never what it says of itself.
    vantage = stream->peer_identity().vantage;
    is_operator = stream->peer_identity().role == NodeRole::kOperator;
    LearnPeerCertificate(stream->peer_identity());
  }
  // Without one (an unsecured mesh, or a certificate made before vantages
  // were bound): the one its membership record names.
  if (vantage.empty())
    if (const Member* m = core_->Find(message->sender); m && m->info) vantage = m->info->vantage;
  work_->Tick(Now(), WorkView());
  work_->OnMessage(*message, SignerInfo{is_operator, vantage}, [this, stream](WorkMessage reply) {
    auto bytes = EncodeWorkMessage(reply);
    if (!bytes.ok()) {
      Log(LogLevel::kError, "cannot encode work reply", {{"reason", bytes.status().message()}});
      return stream->Close();
    }
    stream->WriteFrame(EncodeFrame(FrameKind::kWork, *bytes), [stream](Status) { stream->Close(); });
  });
  ArmTimer();
}

ControlResponse Node::SubmitScan(const ControlRequest& request) {
  ControlResponse r;
  auto def = DecodeScanDefinition(request.scan_definition);
  if (!def.ok()) {
    r.error = "bad scan definition: " + def.status().message();
    return r;
  }
  work_->Tick(Now(), WorkView());
  auto id = work_->Submit(std::move(*def));
  if (!id.ok()) {
    r.error = id.status().message();
    return r;
  }
  r.scan_id = ScanIdToHex(*id);
  const ScanState* s = nullptr;
  if (auto it = work_->scans().find(*id); it != work_->scans().end()) s = &it->second;
  std::string vantages;
  if (s)
    for (const auto& v : s->definition.vantages) vantages += (vantages.empty() ? "" : ",") + v;
  r.message = "scan " + r.scan_id + " submitted: " + std::to_string(s ? s->definition.spec.shard_count : 0) +
              " shards per pool, vantages " + vantages;
  return r;
}

ControlResponse Node::ControlScan(const ControlRequest& request) {
  ControlResponse r;
  auto action = static_cast<ScanControl>(request.scan_action);
  auto id = work_->SetControl(request.scan, action);
  if (!id.ok()) {
    r.error = id.status().message();
    return r;
  }
  r.scan_id = ScanIdToHex(*id);
  r.message = "scan " + r.scan_id + " " + std::string(ScanControlName(action));
  return r;
}

ControlResponse Node::CreateTokenFor(const TokenParams& params) {
  ControlResponse r;  // routed here only for the CA holder of a secured cluster (control_router.h)
  auto token = CreateToken(*store_, params, static_cast<int64_t>(std::time(nullptr)));
  auto hash = SpkiSha256(opts_.cluster->ca_pem);
  if (!token.ok() || !hash.ok()) {
    r.error = token.ok() ? hash.status().message() : token.status().message();
    return r;
  }
  r.token = FormatJoinToken({token->id, token->secret});
  r.ca_hash = *hash;
  r.expires_unix = token->expires_unix;
  Log(LogLevel::kInfo, "token created",
      {{"token", token->id}, {"uses", static_cast<uint64_t>(token->max_uses)}, {"vantage", token->vantage},
       {"expires_unix", token->expires_unix}});
  return r;
}

void Node::LogEvent(const MemberEvent& e) {
  if (e.kind == MemberEvent::Kind::kCoordinator) {
    if (e.id.empty()) {
      Log(LogLevel::kWarn, "no coordinator", {{"epoch", e.incarnation}});
      return;
    }
    const MemberInfo* info = nullptr;
    if (e.id == state_.self.id) {
      info = &core_->self();
    } else if (const Member* m = core_->Find(e.id); m && m->info) {
      info = m->info.get();
    }
    Log(LogLevel::kInfo, "coordinator changed",
        {{"id", e.id.Hex()}, {"name", info ? info->name : ""}, {"addr", info ? info->address : ""},
         {"epoch", e.incarnation}, {"self", e.id == state_.self.id}});
    return;
  }
  const Member* m = core_->Find(e.id);
  const MemberInfo* info = m && m->info ? m->info.get() : (e.id == state_.self.id ? &core_->self() : nullptr);
  Log(e.state == MemberState::kDead ? LogLevel::kWarn : LogLevel::kInfo, StateMessage(e.state),
      {{"id", e.id.Hex()}, {"name", info ? info->name : ""}, {"vantage", info ? info->vantage : ""},
       {"addr", info ? info->address : ""}, {"incarnation", e.incarnation}});
}

void Node::AfterInput() {
  if (finished_) return;
  // What is about to be sent may publish a new incarnation or epoch: on disk
  // first, so that a node killed right after never restarts below it.
  PersistCounters();
  for (const auto& o : core_->TakeOutgoing()) Send(o);
  for (auto& r : core_->TakeStreamRequests()) StartPushPull(std::move(r));
  for (const auto& e : core_->TakeEvents()) {
    LogEvent(e);
    dirty_ = true;
  }
  // Scan-state deltas that rode the gossip (taken even without a work
  // service, so they never pile up). What they make the service gossip on
  // is only queued here; the timer armed below sends it.
  for (const auto& payload : core_->TakePayloads())
    if (work_ && !leaving_) work_->OnPayload(payload);
  if (rejoin_->Observe(core_->joined(), core_->AliveCount(), Now())) {
    // The security state at once (a rotation or revocation may be under
    // way), not after the first sync interval.
    if (security_) security_->SyncSoon(Now());
    dirty_ = true;
  }
  LogRejoinEvents();
  ArmTimer();
}

void Node::PersistCounters() {
  uint64_t incarnation = core_->incarnation(), epoch = core_->max_epoch_seen();
  if (incarnation == saved_incarnation_ && epoch == saved_epoch_) return;
  dirty_ = true;  // the full record follows on the debounced path
  if (Status s = SaveNodeCounters(*store_, incarnation, epoch); !s.ok()) {
    // Sent anyway: a node that stopped talking over a store error would be
    // declared dead by all. Retried with the next input.
    uint64_t suppressed = 0;
    if (save_errors_.Allow(std::chrono::steady_clock::now(), suppressed))
      Log(LogLevel::kError, "cannot save incarnation and epoch before publishing them",
          {{"reason", s.message()}, {"incarnation", incarnation}, {"epoch", epoch}, {"suppressed", suppressed}});
    return;
  }
  saved_incarnation_ = incarnation;
  saved_epoch_ = epoch;
}

void Node::LogRejoinEvents() {
  for (const RejoinEvent& e : rejoin_->TakeEvents()) {
    switch (e.kind) {
      case RejoinEvent::Kind::kJoined:
      case RejoinEvent::Kind::kRejoined:
        Log(LogLevel::kInfo, e.kind == RejoinEvent::Kind::kRejoined ? "rejoined" : "joined",
            {{"attempts", e.attempts}, {"alive", static_cast<uint64_t>(e.alive)}});
        break;
      case RejoinEvent::Kind::kRejoining:
        Log(LogLevel::kWarn, "alone: no other member alive, rejoining",
            {{"alone_s", Seconds(kRejoinWhenAloneAfter)}, {"addresses", static_cast<uint64_t>(e.addresses)}});
        break;
    }
  }
}

// The policy says when; the addresses come from here: the seeds, and every
// member known now or saved.
void Node::StartRejoin(Time now) {
  NodeState known = SnapshotNodeState(*core_, state_.listen);
  state_.members = MergeSavedMembers(std::move(known.members), state_.members, rejoin_->KeepAbsentMembers(now));
  std::vector<std::string> seeds;
  for (const auto& s : opts_.seeds) seeds.push_back(s.ToString());
  std::vector<std::string> addresses = RejoinAddresses(state_, seeds);
  rejoin_->Rejoin(std::move(addresses), seeds.size(), now);
  LogRejoinEvents();
}

void Node::ArmTimer() {
  Time now = Now();
  Time wake = std::min(core_->NextWakeup(), rejoin_->NextWakeup());
  if (dirty_) wake = std::min(wake, std::max(next_save_, now));
  if (leaving_) wake = std::min(wake, leave_done_);
  if (security_ && !leaving_) {
    wake = std::min(wake, security_->NextSync());
    if (auto change = security_->NextKeyChange()) {
      // Clamped before the conversion: a time far ahead (from a hostile or
      // broken peer) must not overflow the clock's arithmetic.
      int64_t in_s = std::clamp<int64_t>(*change - UnixNow(), 0, 60);
      wake = std::min(wake, now + std::chrono::seconds(in_s) + std::chrono::milliseconds(20));
    }
  }
  if (work_ && !leaving_) wake = std::min(wake, work_->NextWakeup());
  wake = std::min(wake, now + std::chrono::seconds(60));  // never arm "forever"
  // A wake-up in the past fires after 1 ms, not at once: should the core
  // ever keep asking for "now", the node idles instead of spinning.
  if (wake <= now) wake = now + std::chrono::milliseconds(1);
  uint64_t generation = ++timer_generation_;
  timer_.expires_at(wake);
  timer_.async_wait([this, generation](const error_code& ec) {
    // A wait that completed just before being re-armed is stale: the newer
    // one stands.
    if (ec || generation != timer_generation_ || finished_) return;
    OnTimer();
  });
}

void Node::OnTimer() {
  Time now = Now();
  if (leaving_ && now >= leave_done_) return Finish();
  core_->Tick(now);
  if (rejoin_->RejoinDue(now)) StartRejoin(now);
  if (auto attempt = rejoin_->Tick(now)) {
    // A rejoin said so when it started; its retries (a node whose peers are
    // all gone for good retries forever) stay quiet.
    if (attempt->attempt > 1)
      Log(attempt->rejoin ? LogLevel::kDebug : attempt->attempt > 3 ? LogLevel::kWarn : LogLevel::kInfo,
          attempt->rejoin ? "still alone, trying again" : "not joined yet, trying again",
          {{"attempt", attempt->attempt}, {"addresses", static_cast<uint64_t>(attempt->known)}});
    core_->Join(attempt->addresses, now);
  }
  if (security_ && !leaving_) {
    security_->Tick(now, UnixNow(), AlivePeers());
    DrainSecurity();
  }
  if (!leaving_) WorkTick(now);
  MaybeSave(false);
  AfterInput();
}

void Node::MaybeSave(bool force) {
  if (!core_ || (!dirty_ && !force)) return;
  Time now = Now();
  if (!force && now < next_save_) return;
  NodeState st = SnapshotNodeState(*core_, state_.listen);
  // A node that has not rejoined yet knows nobody, and one cut off for long
  // has reaped everyone: the saved members it does not know are kept.
  st.members = MergeSavedMembers(std::move(st.members), state_.members, rejoin_->KeepAbsentMembers(now));
  state_.members = st.members;
  // Not the counters' watermark (saved_*): this write is not synced, and
  // PersistCounters must still sync a new value before it is sent.
  if (Status s = SaveNodeState(*store_, st); !s.ok()) {
    Log(LogLevel::kError, "cannot save node state", {{"reason", s.message()}});
  } else {
    Log(LogLevel::kDebug, "saved node state", {{"members", static_cast<uint64_t>(st.members.size())}});
  }
  dirty_ = false;
  next_save_ = now + opts_.save_interval;
}

void Node::BeginLeave(const std::string& why) {
  if (leaving_ || finished_) return;
  leaving_ = true;
  rejoin_->Leave();
  Log(LogLevel::kInfo, "leaving", {{"reason", why}, {"grace_s", Seconds(opts_.leave_grace)}});
  Time now = Now();
  core_->Leave(now);
  leave_done_ = now + opts_.leave_grace;
  AfterInput();
}

void Node::Finish() {
  if (finished_) return;
  MaybeSave(true);
  finished_ = true;
  work_.reset();  // stops and joins the engines of the shards in hand
  error_code ignored;
  udp_.close(ignored);
  timer_.cancel();
  signals_.cancel(ignored);
  if (streams_) streams_->Close();
  // The socket stops answering now; its file goes only after the store is
  // closed (RunMeshNode), as `ndo leave` waits for the file.
  if (control_) control_->Close();
  Log(LogLevel::kInfo, "node stopped", {{"id", state_.self.id.Hex()}, {"incarnation", core_->incarnation()}});
  io_.stop();
}

}  // namespace

Status CheckDataDir(const std::string& data_dir) {
  if (data_dir.empty()) return Status::InvalidArgument("empty data dir");
  std::filesystem::path p(data_dir);
  std::filesystem::path parent = p.has_relative_path() && !p.has_filename() ? p.parent_path().parent_path()
                                                                             : p.parent_path();
  if (parent.empty()) parent = ".";
  std::error_code ec;
  if (!std::filesystem::is_directory(parent, ec))
    return Status::InvalidArgument("the parent of data dir " + data_dir + " (" + parent.string() +
                                   ") does not exist or is not a directory");
  if (std::filesystem::exists(p, ec) && !std::filesystem::is_directory(p, ec))
    return Status::InvalidArgument("data dir " + data_dir + " exists and is not a directory");
  std::string sock = ControlSocketPath(data_dir);
  if (sock.size() >= 108)  // sizeof(sockaddr_un::sun_path)
    return Status::InvalidArgument("data dir path too long for its control socket (" + sock + " is " +
                                   std::to_string(sock.size()) + " bytes, at most 107): use a shorter --data-dir");
  return Status::Ok();
}

Status RunMeshNode(const MeshNodeOptions& options) {
  // A reader of standard error that went away must not kill the node: log
  // writes then fail (and are counted) instead of raising SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  std::string control_socket;  // set once bound
  Status result;
  // Asio and the standard library throw on resource exhaustion; nothing of
  // that crosses this boundary.
  try {
    auto node = std::make_unique<Node>(options, &control_socket);
    result = node->Start();
    if (result.ok()) result = node->Run();
  } catch (const std::exception& e) {
    result = Status::IoError(std::string("mesh node: ") + e.what());
  } catch (...) {
    result = Status::IoError("mesh node: unknown exception");
  }
  // Only now, with the node and its store closed (the RocksDB lock
  // released), does the socket file go: `ndo leave` returns when it is
  // gone, and `ndo leave && ndo agent` on the same data dir must find the
  // store free.
  if (!control_socket.empty()) ::unlink(control_socket.c_str());
  return result;
}

}  // namespace ndo::mesh
