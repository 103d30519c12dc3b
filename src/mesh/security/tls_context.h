// OpenSSL settings and peer checks of the mesh's TLS streams, without Asio
// (stream_transports.cc runs the handshakes):
//
// * Peer streams: TLS 1.3 only, each side presents its node certificate
//   and accepts only a chain to the cluster CA (the one trust anchor). A
//   server also lets a client without a certificate finish the handshake:
//   such a stream may carry an enrolment request and nothing else.
// * After every handshake AuthenticatePeer checks the certificate again
//   as ndo reads it: a node certificate of this cluster, valid now, naming
//   a node id, and neither its serial nor its node id revoked; the role and
//   vantage it binds go with the stream (mesh/security/roles.h).
// * An enrolling node has no certificate and no CA yet: it accepts the
//   server only if the chain holds a CA certificate whose SPKI hash is the
//   pinned one and the server's certificate verifies under it
//   (AuthenticateEnrolServer), and sends nothing before.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "mesh/security/cluster_files.h"
#include "mesh/membership/messages.h"
#include "mesh/security/roles.h"
#include "base/status.h"

struct ssl_ctx_st;
struct ssl_st;

namespace ndo::mesh {

// Revoked certificates (by serial) and nodes (by id): `ndo members remove`.
class RevocationSet {
 public:
  void Add(const std::string& serial_hex, const NodeId& node) {
    if (!serial_hex.empty()) serials_.insert(serial_hex);
    if (!node.empty()) nodes_.insert(node);
  }
  bool IsRevoked(std::string_view serial_hex, const NodeId& node) const {
    return serials_.count(std::string(serial_hex)) > 0 || nodes_.count(node) > 0;
  }
  bool IsRevoked(const NodeId& node) const { return nodes_.count(node) > 0; }
  size_t size() const { return nodes_.size(); }

 private:
  std::set<std::string> serials_;
  std::set<NodeId> nodes_;
};

// Sets up a context for peer streams (server: accepts; client: connects).
Status ConfigurePeerContext(ssl_ctx_st* ctx, const ClusterMaterial& material, bool server);
// Sets up an enrolling node's client context.
Status ConfigureEnrolClientContext(ssl_ctx_st* ctx);

// Whether the peer presented a certificate (server side: none means a
// node that comes to enrol).
bool PeerPresentedCertificate(ssl_st* ssl);
// What the peer's certificate names (node id, role, vantage) once the
// handshake is done, or why it is refused.
Result<PeerIdentity> AuthenticatePeer(ssl_st* ssl, const ClusterMaterial& material, const RevocationSet& revoked,
                                int64_t now_unix);
// The enrolling client's check of the server (see above); returns the CA
// certificate it pinned, PEM.
Result<std::string> AuthenticateEnrolServer(ssl_st* ssl, std::string_view ca_hash, int64_t now_unix);

// RFC 8446 7.5 exporter, no context.
Result<std::string> ExportKeyingMaterial(ssl_st* ssl, std::string_view label, size_t bytes);

}  // namespace ndo::mesh
