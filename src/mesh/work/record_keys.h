// The mesh's keys as the work core needs them to sign and check records of
// the replicated scan state (docs/security.md, "Signed records"): a scan's
// definition (by its submitter, an operator), its control register (by the
// operator who paused, resumed or stopped it), a shard's done record (by
// the node that scanned it, which held the lease, of the pool's vantage).
//
// Injected, like the BundleShelf: the daemon's is mesh/security/
// certificate_keys.h (Ed25519 keys, X.509 certificates checked against the
// cluster CA and the revocations, kept in the store); the simulator runs the
// same class with a CA of its own. An insecure mesh (`--insecure`) has no
// keys: WorkCore then signs nothing and checks nothing, as before.
//
// Pure interface: this header must not pull OpenSSL or the security
// subsystem into the work core.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "mesh/membership/messages.h"

namespace ndo::mesh {

// What a signer's certificate says of it.
struct SignerInfo {
  bool is_operator = false;  // role operator (mesh/security/roles.h); else scanner
  std::string vantage;       // the vantage it binds; "" when it binds none
};

class RecordKeys {
 public:
  virtual ~RecordKeys() = default;

  // This node's signature over `message` (Ed25519: 64 bytes). Empty only if
  // the key is unusable, which the daemon checks at start.
  virtual std::string Sign(std::string_view message) = 0;

  // Checks `signature` by `signer` over `message` with the signer's
  // certificate. NotFound: no certificate of `signer` is known here yet (the
  // core then asks a member for it and takes the record when it comes
  // again); PermissionDenied: the certificate is revoked, expired or not
  // the cluster's; InvalidArgument: the signature does not verify.
  virtual Result<SignerInfo> Verify(const NodeId& signer, std::string_view message,
                                    std::string_view signature) = 0;

  // The certificate of `node` known here (PEM), to hand to a member that
  // asks for it; nullopt when none is.
  virtual std::optional<std::string> Certificate(const NodeId& node) const = 0;

  // A certificate a member handed over: kept (and, in the daemon, saved)
  // when it is a valid, unrevoked node certificate of the cluster; the
  // reason otherwise. Idempotent.
  virtual Status Learn(std::string_view cert_pem) = 0;
};

}  // namespace ndo::mesh
