// The cluster's public-key infrastructure, on OpenSSL: the cluster CA, node
// keys, certificate signing requests and node certificates. Keys,
// certificates and requests cross this interface as PEM text, so no OpenSSL
// type leaks into the rest of ndo, and every input is treated as hostile
// (bounded, parsed by OpenSSL, errors as values; nothing throws).
//
// * Every key is Ed25519 (small, fast, deterministic signatures; TLS 1.3
//   supports it since OpenSSL 1.1.1).
// * The CA certificate is self-signed, CA:TRUE with pathlen 0, keyCertSign,
//   and carries the cluster id as a URI SAN "urn:ndo:cluster:<32 hex>".
// * A node certificate carries the node id as a URI SAN
//   "urn:ndo:node:<32 hex>" and the cluster id as "urn:ndo:cluster:<32 hex>",
//   CA:FALSE, digitalSignature, extended key usage serverAuth and
//   clientAuth, a random 128-bit positive serial. The node id a certificate
//   names is the only identity a peer has: TLS peers are checked against it.
// * It also carries the node's role, "urn:ndo:role:operator" or
//   "urn:ndo:role:scanner", and the vantage it may claim,
//   "urn:ndo:vantage:<name>" with the name percent-encoded (RFC 3986: every
//   byte but A-Z a-z 0-9 - . _ ~), so that any vantage the CLI accepts fits
//   an IA5String URI and no comma or space reaches OpenSSL's SAN syntax
//   (mesh/security/roles.h says what each role may do). A certificate made
//   before roles existed has neither: it reads as a scanner with no vantage
//   bound.
// * The CA is pinned by the SHA-256 of its SubjectPublicKeyInfo (DER), as
//   kubeadm's --discovery-token-ca-cert-hash: "sha256:<64 hex>".
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "mesh/membership/messages.h"
#include "mesh/security/roles.h"
#include "base/status.h"

namespace ndo::mesh {

// 128 random bits naming a cluster; same shape as a node id.
using ClusterId = NodeId;

// Nothing PEM-encoded that ndo reads may be longer (a certificate is ~600
// bytes; a chain of two, a CSR and a key fit many times over).
inline constexpr size_t kMaxPemBytes = 16 * 1024;

struct CaMaterial {
  std::string cert_pem;
  std::string key_pem;  // PKCS#8; empty on nodes that do not hold the CA key
};

// A fresh Ed25519 private key, PKCS#8 PEM (unencrypted: the file is 0600).
Result<std::string> GenerateKeyPem();

// A new self-signed cluster CA for `cluster`, valid from now - 1 h (clock
// skew) for `validity`.
Result<CaMaterial> CreateClusterCa(const ClusterId& cluster, std::chrono::seconds validity, int64_t now_unix);

// "sha256:<64 lowercase hex>" of the certificate's SubjectPublicKeyInfo.
Result<std::string> SpkiSha256(std::string_view cert_pem);
// Checks the form of a pin given on the command line ("sha256:" and 64 hex
// digits, either case) and returns it in lowercase.
Result<std::string> ParseCaHash(std::string_view text);

// A CSR for `node` (its id as URI SAN, `name` as CN), signed with key_pem.
Result<std::string> MakeCsr(std::string_view key_pem, const NodeId& node, std::string_view name);

struct CsrInfo {
  NodeId node;              // from the URI SAN
  std::string name;         // CN (may be empty)
  std::string der_sha256;   // 32 raw bytes: SHA-256 of the CSR's DER, what the join proof covers
};
// Parses a CSR, checks its self-signature, that its key is Ed25519, and that
// it names exactly one node id. InvalidArgument with the reason otherwise.
Result<CsrInfo> CheckCsr(std::string_view csr_pem);

struct IssuedCert {
  std::string cert_pem;
  std::string serial_hex;  // lowercase, no leading zeros
  int64_t not_after_unix = 0;
};
// Signs the CSR's key into a node certificate for csr's node id (CheckCsr
// first) and `cluster`, with `role` and `vantage` (CheckVantageName: every
// new certificate binds one), valid from now - 1 h for `validity`. The CA
// must hold its key.
Result<IssuedCert> SignNodeCert(const CaMaterial& ca, const ClusterId& cluster, std::string_view csr_pem,
                                NodeRole role, std::string_view vantage, std::chrono::seconds validity,
                                int64_t now_unix);

struct CertInfo {
  NodeId node;          // empty for the CA
  ClusterId cluster;
  std::string serial_hex;
  std::string subject;  // one line, for logs
  int64_t not_before_unix = 0, not_after_unix = 0;
  bool is_ca = false;
  // From the role and vantage SANs: kScanner and "" when the certificate
  // has none (one made before roles existed, or the CA's).
  NodeRole role = NodeRole::kScanner;
  std::string vantage;
};
// Reads the fields ndo needs; does not verify anything. A certificate with
// more than one role or vantage, an unknown role, or a vantage that is not
// a valid name (CheckVantageName) is refused.
Result<CertInfo> InspectCert(std::string_view cert_pem);

// Verifies that cert_pem is a node certificate issued by ca_pem, valid at
// now_unix, for a node of the CA's cluster; returns what it names.
Result<CertInfo> VerifyNodeCert(std::string_view cert_pem, std::string_view ca_pem, int64_t now_unix);

// Checks that a private key and a certificate belong together.
Status CheckKeyMatchesCert(std::string_view key_pem, std::string_view cert_pem);

}  // namespace ndo::mesh
