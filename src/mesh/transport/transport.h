// The seam between the mesh node and the network, where encryption and peer
// authentication will go (the security issue): neither the membership core
// nor the node's logic changes when they do.
//
// * Datagrams (gossip: ping, ack, ping-req, nack) pass through a
//   DatagramSeal (security/datagram_seal.h): Seal() after encoding, Open() before decoding. The default
//   is the identity (plaintext); an AEAD seal with a cluster key replaces it.
// * Streams (push-pull state exchange) are opened and accepted by a
//   StreamTransport and carried as whole frames by a FrameStream. The
//   default is plain TCP (MakeTcpTransport); a mutual-TLS transport
//   implements the same two interfaces (handshake inside Connect and before
//   handing out an accepted stream) and is passed to the node instead.
//
// Every callback runs on the thread of the io_context the transport was made
// with (the node's single driver thread), so implementations and their users
// need no locks. No callback ever runs inside the call that started its
// operation (Connect, ReadFrame, WriteFrame): an implementation that fails
// at once posts the failure. The node starts streams while it drives the
// membership core, and a callback that ran then would re-enter the core.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "mesh/membership/address.h"
#include "mesh/membership/messages.h"
#include "mesh/security/datagram_seal.h"
#include "mesh/security/roles.h"
#include "base/status.h"

namespace boost::asio {
class io_context;
}

namespace ndo::mesh {

// A connected stream of frames (4-byte big-endian length, then the body;
// codec.h's FrameHeader/ReadFrameLength). One read and one write may be
// outstanding at a time. The stream enforces the deadline it was created
// with: when it passes, the stream closes and pending operations fail with
// Unavailable ("timed out").
class FrameStream {
 public:
  using ReadHandler = std::function<void(Result<std::string>)>;
  using WriteHandler = std::function<void(Status)>;
  virtual ~FrameStream() = default;
  // Reads one frame and hands over its body. A length above max_body fails
  // (InvalidArgument) without reading the body; memory grows only as bytes
  // arrive, so a peer announcing a huge frame and stalling costs little.
  virtual void ReadFrame(size_t max_body, ReadHandler done) = 0;
  virtual void WriteFrame(std::string body, WriteHandler done) = 0;
  // Idempotent; pending operations complete with an error.
  virtual void Close() = 0;
  // The other end, "ip:port" (or a path for local streams), for logs.
  virtual const std::string& peer() const = 0;
  // What the peer's certificate names (node id, role, vantage), checked
  // against the cluster CA and the revocation set during the TLS handshake;
  // an empty node id when the peer is not authenticated (plain TCP, or a
  // TLS client without a certificate: a node that comes to enrol).
  virtual const PeerIdentity& peer_identity() const {
    static const PeerIdentity kNobody;
    return kNobody;
  }
  NodeId authenticated_peer() const { return peer_identity().node; }
  // Keying material exported from the stream's TLS session (RFC 8446 7.5),
  // which binds a proof to this session; Unavailable on plain streams.
  virtual Result<std::string> ExportKeyingMaterial(std::string_view label, size_t bytes) const {
    return Status::Unavailable("not a TLS stream");
  }
};
using FrameStreamPtr = std::shared_ptr<FrameStream>;

// Bytes of frame bodies that all the streams of one transport may hold at
// once, read or being written. A stream reserves a frame's length when its
// header arrives (or when a write starts) and releases it when the frame is
// handed over (or written) or the stream ends; a frame that does not fit is
// refused. Without it, 32 inbound and 32 outbound streams could each hold a
// 64 MiB body announced by anyone who can connect. Copies share the budget;
// single-threaded like everything here.
class StreamMemoryBudget {
  struct State {
    size_t limit = 0, in_use = 0;
  };

 public:
  explicit StreamMemoryBudget(size_t limit) : state_(std::make_shared<State>(State{limit, 0})) {}

  // Holds part of the budget until released, destroyed or assigned to.
  class Reservation {
   public:
    Reservation() = default;
    Reservation(Reservation&& o) noexcept : state_(std::move(o.state_)), bytes_(std::exchange(o.bytes_, 0)) {}
    Reservation& operator=(Reservation&& o) noexcept {
      if (this != &o) {
        Release();
        state_ = std::move(o.state_);
        bytes_ = std::exchange(o.bytes_, 0);
      }
      return *this;
    }
    ~Reservation() { Release(); }
    void Release() {
      if (state_) state_->in_use -= bytes_;
      state_.reset();
      bytes_ = 0;
    }

   private:
    friend class StreamMemoryBudget;
    std::shared_ptr<State> state_;
    size_t bytes_ = 0;
  };

  // Reserves `bytes` into `out` (releasing what `out` held first) if they fit
  // beside what is in use; false, and `out` empty, otherwise.
  bool TryReserve(size_t bytes, Reservation& out) {
    out.Release();
    if (bytes > state_->limit - state_->in_use) return false;
    state_->in_use += bytes;
    out.state_ = state_;
    out.bytes_ = bytes;
    return true;
  }
  size_t in_use() const { return state_->in_use; }
  size_t limit() const { return state_->limit; }

 private:
  std::shared_ptr<State> state_;
};

struct StreamLimits {
  // Every stream, inbound or outbound, closes this long after it started
  // (connect or accept), whatever it is doing: a stalled peer costs a slot
  // for at most this long.
  std::chrono::steady_clock::duration deadline = std::chrono::seconds(5);
  // Inbound streams open at once; further connections are accepted and
  // closed at once (and logged, rate-limited).
  size_t max_inbound = 32;
  // The StreamMemoryBudget of all the transport's streams, inbound and
  // outbound (four frames of the 64 MiB maximum).
  size_t memory_budget = 256u << 20;
};

// Opens and accepts FrameStreams.
class StreamTransport {
 public:
  using ConnectHandler = std::function<void(Result<FrameStreamPtr>)>;
  using AcceptHandler = std::function<void(FrameStreamPtr)>;
  virtual ~StreamTransport() = default;
  // Opens a stream to `to`; the deadline runs from now.
  virtual void Connect(const HostPort& to, ConnectHandler done) = 0;
  // Listens at `at` and hands over each accepted stream until Close().
  virtual Status Listen(const HostPort& at, AcceptHandler on_stream) = 0;
  // Stops listening; streams already handed out stay usable until they end.
  virtual void Close() = 0;
  // "tcp", "mtls", ...: for logs.
  virtual std::string_view name() const = 0;
};

using StreamTransportFactory =
    std::function<Result<std::unique_ptr<StreamTransport>>(boost::asio::io_context& io, const StreamLimits& limits)>;

// Plain TCP (SO_REUSEADDR on the listener, TCP_NODELAY on streams).
Result<std::unique_ptr<StreamTransport>> MakeTcpTransport(boost::asio::io_context& io, const StreamLimits& limits);

struct ClusterMaterial;
class RevocationSet;
// Mutual TLS 1.3 against the cluster CA (mesh/security/tls_context.h): a stream is
// handed out only after the peer's certificate checked out, with what it
// names as peer_identity(); inbound clients without a certificate are
// handed out unauthenticated (enrolment only). `revoked` is consulted at
// every handshake, so a revocation takes effect for the next stream.
StreamTransportFactory MutualTlsTransportFactory(std::shared_ptr<const ClusterMaterial> material,
                                                 std::shared_ptr<const RevocationSet> revoked);

}  // namespace ndo::mesh
