// The seam between the mesh node and the network, where encryption and peer
// authentication will go (the security issue): neither the membership core
// nor the node's logic changes when they do.
//
// * Datagrams (gossip: ping, ack, ping-req, nack) pass through a
//   DatagramSeal: Seal() after encoding, Open() before decoding. The default
//   is the identity (plaintext); an AEAD seal with a cluster key replaces it.
// * Streams (push-pull state exchange) are opened and accepted by a
//   StreamTransport and carried as whole frames by a FrameStream. The
//   default is plain TCP (MakeTcpTransport); a mutual-TLS transport
//   implements the same two interfaces (handshake inside Connect and before
//   handing out an accepted stream) and is passed to the node instead.
//
// Every callback runs on the thread of the io_context the transport was made
// with (the node's single driver thread), so implementations and their users
// need no locks.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "mesh/address.h"
#include "scan/status.h"

namespace boost::asio {
class io_context;
}

namespace ndo::mesh {

// Protects datagrams. Open() of anything not sealed by a peer must fail
// (the driver then drops the datagram with the reason logged).
class DatagramSeal {
 public:
  virtual ~DatagramSeal() = default;
  virtual Result<std::string> Seal(std::string_view plain) = 0;
  virtual Result<std::string> Open(std::string_view wire) = 0;
  // The most bytes Seal() adds; the driver accepts datagrams of up to
  // kMaxDatagramBytes + Overhead() (kMaxDatagramBytes leaves room for it).
  virtual size_t Overhead() const { return 0; }
};

// No protection: the bytes as they are.
class PlaintextSeal final : public DatagramSeal {
 public:
  Result<std::string> Seal(std::string_view plain) override { return std::string(plain); }
  Result<std::string> Open(std::string_view wire) override { return std::string(wire); }
};

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
};
using FrameStreamPtr = std::shared_ptr<FrameStream>;

struct StreamLimits {
  // Every stream, inbound or outbound, closes this long after it started
  // (connect or accept), whatever it is doing: a stalled peer costs a slot
  // for at most this long.
  std::chrono::steady_clock::duration deadline = std::chrono::seconds(5);
  // Inbound streams open at once; further connections are accepted and
  // closed at once (and logged, rate-limited).
  size_t max_inbound = 32;
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

}  // namespace ndo::mesh
