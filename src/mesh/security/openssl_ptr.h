// RAII for OpenSSL objects, shared by the security subsystem's .cc files
// (pki, tls_context, certificate_keys): one unique_ptr alias per type,
// freed by OpenSSL's own function. Private to src/mesh/security: pki.h and
// the other public headers keep OpenSSL types to themselves.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <memory>

namespace ndo::mesh::openssl {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
template <typename T, void (*Free)(T*)>
using Ptr = std::unique_ptr<T, Deleter<T, Free>>;

inline void FreeBio(BIO* b) { BIO_free_all(b); }

using BioPtr = Ptr<BIO, FreeBio>;
using PkeyPtr = Ptr<EVP_PKEY, EVP_PKEY_free>;
using X509Ptr = Ptr<X509, X509_free>;
using MdCtxPtr = Ptr<EVP_MD_CTX, EVP_MD_CTX_free>;

}  // namespace ndo::mesh::openssl
