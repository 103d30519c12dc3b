// What a member of a secured cluster may do, as its certificate says
// (mesh/security/pki.h puts it there at enrolment, from the join token):
//
// * operator: submits, pauses, resumes, stops and deletes scans, creates
//   tokens, removes members, rotates keys; and everything a scanner does.
// * scanner: scans the shards it leases, serves and fetches state and
//   bundles; nothing else.
//
// The vantage a node may claim is bound in its certificate too: the mesh
// takes the certificate's, never the node's own word. An unsecured mesh
// (`--insecure`) has no certificates and so no roles: everyone may do
// everything there.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "mesh/membership/messages.h"
#include "base/status.h"

namespace ndo::mesh {

// kScanner is the zero value on purpose: a record or certificate that says
// nothing (one made before roles existed) reads as the lesser role.
enum class NodeRole : uint8_t { kScanner = 0, kOperator = 1 };

// "scanner" or "operator".
std::string_view NodeRoleName(NodeRole role);
// Exactly "scanner" or "operator"; nullopt for anything else.
std::optional<NodeRole> ParseNodeRole(std::string_view text);

// Whether `vantage` may be bound in a certificate: 1 to kMaxVantageBytes
// bytes, no control character (as the CLI checks --vantage). The error says
// which rule it breaks; it never echoes the value's bytes unescaped.
Status CheckVantageName(std::string_view vantage);

// Who is at the other end of an authenticated stream: what its certificate
// names, checked against the cluster CA and the revocation set during the
// TLS handshake. `node` empty: not authenticated (plain TCP, or a TLS
// client without a certificate: a node that comes to enrol); role and
// vantage then mean nothing. `vantage` empty: the certificate binds none
// (made before vantages were bound).
struct PeerIdentity {
  NodeId node;
  NodeRole role = NodeRole::kScanner;
  std::string vantage;
  // The certificate itself (PEM), as checked: the daemon hands it to its
  // record keys, so that the signatures of members it talks to verify
  // without a certificate fetch.
  std::string cert_pem;
};

}  // namespace ndo::mesh
