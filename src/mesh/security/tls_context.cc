#include "mesh/security/tls_context.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>

#include "mesh/security/openssl_ptr.h"

namespace ndo::mesh {
namespace {

using openssl::BioPtr;
using openssl::PkeyPtr;
using openssl::X509Ptr;

std::string OpenSslError(const std::string& what) {
  std::string out = what;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += ": ";
    out += buf;
  }
  return out;
}

X509Ptr ReadCert(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

Result<std::string> ToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return Status::IoError(OpenSslError("encoding a certificate"));
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

Status CommonSettings(SSL_CTX* ctx) {
  // TLS 1.3 only: forward secrecy, encrypted certificates, and the exporter
  // the enrolment proof binds to.
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 || SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1)
    return Status::IoError(OpenSslError("cannot restrict TLS to 1.3"));
  // Streams are short and between known peers: no resumption, no tickets.
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  return Status::Ok();
}

}  // namespace

Status ConfigurePeerContext(SSL_CTX* ctx, const ClusterMaterial& m, bool server) {
  ERR_clear_error();
  if (Status s = CommonSettings(ctx); !s.ok()) return s;
  auto cert = ReadCert(m.cert_pem);
  auto ca = ReadCert(m.ca_pem);
  if (!cert || !ca) return Status::InvalidArgument(OpenSslError("cannot read the node or CA certificate"));
  BioPtr kbio(BIO_new_mem_buf(m.key_pem.data(), static_cast<int>(m.key_pem.size())));
  // No passphrase callback: an encrypted key fails here instead of OpenSSL
  // asking for a passphrase on the agent's terminal.
  auto no_passphrase = [](char*, int, int, void*) { return -1; };
  PkeyPtr key(kbio ? PEM_read_bio_PrivateKey(kbio.get(), nullptr, no_passphrase, nullptr)
                                                 : nullptr);
  if (!key) return Status::InvalidArgument(OpenSslError("cannot read the node key"));
  if (SSL_CTX_use_certificate(ctx, cert.get()) != 1 || SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1)
    return Status::InvalidArgument(OpenSslError("node certificate and key"));
  // The CA travels in the chain: an enrolling node pins it by hash.
  if (server && SSL_CTX_add1_chain_cert(ctx, ca.get()) != 1) return Status::IoError(OpenSslError("chain"));
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  if (X509_STORE_add_cert(store, ca.get()) != 1) return Status::IoError(OpenSslError("trust store"));
  // A server asks for a certificate but lets none through (enrolment); one
  // that is presented must verify, or the handshake fails.
  SSL_CTX_set_verify(ctx, server ? SSL_VERIFY_PEER : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_verify_depth(ctx, 1);
  return Status::Ok();
}

Status ConfigureEnrolClientContext(SSL_CTX* ctx) {
  ERR_clear_error();
  if (Status s = CommonSettings(ctx); !s.ok()) return s;
  // Nothing to verify against yet: the pin is checked on the chain right
  // after the handshake, before a byte is sent (AuthenticateEnrolServer).
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  return Status::Ok();
}

bool PeerPresentedCertificate(SSL* ssl) { return SSL_get0_peer_certificate(ssl) != nullptr; }

Result<PeerIdentity> AuthenticatePeer(SSL* ssl, const ClusterMaterial& m, const RevocationSet& revoked, int64_t now_unix) {
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (!peer) return Status::InvalidArgument("no client certificate");
  if (long v = SSL_get_verify_result(ssl); v != X509_V_OK)
    return Status::InvalidArgument(std::string("certificate does not verify: ") + X509_verify_cert_error_string(v));
  auto pem = ToPem(peer);
  if (!pem.ok()) return pem.status();
  auto info = VerifyNodeCert(*pem, m.ca_pem, now_unix);
  if (!info.ok()) return info.status();
  if (info->cluster != m.cluster) return Status::InvalidArgument("certificate of another cluster");
  if (revoked.IsRevoked(info->serial_hex, info->node))
    return Status::InvalidArgument("node " + info->node.Hex() + " is revoked (certificate serial " + info->serial_hex +
                                   ")");
  return PeerIdentity{info->node, info->role, std::move(info->vantage), std::move(*pem)};
}

Result<std::string> AuthenticateEnrolServer(SSL* ssl, std::string_view ca_hash, int64_t now_unix) {
  X509* leaf = SSL_get0_peer_certificate(ssl);
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);  // client side: leaf first
  if (!leaf || !chain) return Status::InvalidArgument("the server presented no certificate");
  auto leaf_pem = ToPem(leaf);
  if (!leaf_pem.ok()) return leaf_pem.status();
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    auto pem = ToPem(sk_X509_value(chain, i));
    if (!pem.ok()) return pem.status();
    auto hash = SpkiSha256(*pem);
    if (!hash.ok() || *hash != ca_hash) continue;
    auto info = VerifyNodeCert(*leaf_pem, *pem, now_unix);
    if (!info.ok()) return info.status().WithContext("the server's certificate does not verify under the pinned CA");
    return *pem;
  }
  return Status::InvalidArgument("the server's CA does not match --ca-hash " + std::string(ca_hash) +
                                 " (a different cluster, or someone in between)");
}

Result<std::string> ExportKeyingMaterial(SSL* ssl, std::string_view label, size_t bytes) {
  std::string out(bytes, '\0');
  if (SSL_export_keying_material(ssl, reinterpret_cast<unsigned char*>(out.data()), bytes, label.data(), label.size(),
                                 nullptr, 0, 0) != 1)
    return Status::IoError(OpenSslError("cannot export keying material"));
  return out;
}

}  // namespace ndo::mesh
