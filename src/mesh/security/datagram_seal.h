// The seal that datagrams (gossip) pass through: Seal() after encoding,
// Open() before decoding. The membership driver holds one; the identity
// (PlaintextSeal) serves an insecure mesh, gossip_seal.h's AEAD seal a
// secured one. Sans-IO: bytes in, bytes out.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "mesh/membership/messages.h"
#include "base/status.h"

namespace ndo::mesh {

// What Open() found: the plaintext and, when the seal authenticates its
// sender, who sealed it (empty for plaintext). The driver drops a message
// that names another sender than the one the seal authenticated.
struct OpenedDatagram {
  std::string plain;
  NodeId sender;
};

// Protects datagrams. Open() of anything not sealed by a peer must fail
// (the driver then drops the datagram with the reason logged).
class DatagramSeal {
 public:
  virtual ~DatagramSeal() = default;
  virtual Result<std::string> Seal(std::string_view plain) = 0;
  virtual Result<OpenedDatagram> Open(std::string_view wire) = 0;
  // The most bytes Seal() adds; the driver accepts datagrams of up to
  // kMaxDatagramBytes + Overhead() (kMaxDatagramBytes leaves room for it).
  virtual size_t Overhead() const { return 0; }
};

// No protection: the bytes as they are.
class PlaintextSeal final : public DatagramSeal {
 public:
  Result<std::string> Seal(std::string_view plain) override { return std::string(plain); }
  Result<OpenedDatagram> Open(std::string_view wire) override { return OpenedDatagram{std::string(wire), {}}; }
};

}  // namespace ndo::mesh
