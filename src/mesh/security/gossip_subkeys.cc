// Subkeys of sealed gossip on OpenSSL 3 (EVP_KDF "HKDF", AES-256-GCM); the
// contract is in gossip_subkeys.h. Nothing here throws.
#include "mesh/security/gossip_subkeys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <cstring>
#include <string>

namespace ndo::mesh {
namespace {

constexpr size_t kInfoBytes = kSubkeyLabel.size() + 16 + 4 + 16 + 8;

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  char buf[256] = "no OpenSSL error recorded";
  if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

void PutBig(uint8_t* p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * (n - 1 - i)));
}

const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Fetched once: an implicit fetch (EVP_aes_256_gcm() at every init) costs
// a lookup under a lock each time. Never freed; OpenSSL owns the objects
// until exit. Function-local statics: initialised once, thread-safely.
const EVP_CIPHER* Aes256Gcm() {
  static EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}

EVP_KDF* Hkdf() {
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  return kdf;
}

// HKDF in `mode` (extract or expand only) with `key` and, when expanding,
// `info`; 32 bytes out.
Result<Subkey> RunHkdf(int mode, const uint8_t* key, size_t key_bytes, const uint8_t* info, size_t info_bytes) {
  EVP_KDF* kdf = Hkdf();
  if (!kdf) return Status::IoError("EVP_KDF_fetch HKDF: " + OpenSslError());
  std::unique_ptr<EVP_KDF_CTX, decltype(&EVP_KDF_CTX_free)> ctx(EVP_KDF_CTX_new(kdf), &EVP_KDF_CTX_free);
  if (!ctx) return Status::IoError("EVP_KDF_CTX_new: " + OpenSslError());
  char digest[] = "SHA256";
  OSSL_PARAM params[5];
  size_t n = 0;
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(key), key_bytes);
  if (info) params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<uint8_t*>(info), info_bytes);
  params[n] = OSSL_PARAM_construct_end();
  Subkey out;
  if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params) != 1)
    return Status::IoError("HKDF-SHA256: " + OpenSslError());
  return out;
}

}  // namespace

Result<Subkey> GossipKeyPrk(const std::array<uint8_t, kSubkeyBytes>& cluster_key) {
  return RunHkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, cluster_key.data(), cluster_key.size(), nullptr, 0);
}

Result<Subkey> DeriveSubkey(const Subkey& prk, const ClusterId& cluster, uint32_t key_id, const NodeId& sender,
                            uint64_t epoch) {
  std::array<uint8_t, kInfoBytes> info;
  uint8_t* p = info.data();
  std::memcpy(p, kSubkeyLabel.data(), kSubkeyLabel.size());
  p += kSubkeyLabel.size();
  PutBig(p, cluster.hi, 8);
  PutBig(p + 8, cluster.lo, 8);
  PutBig(p + 16, key_id, 4);
  PutBig(p + 20, sender.hi, 8);
  PutBig(p + 28, sender.lo, 8);
  PutBig(p + 36, epoch, 8);
  return RunHkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk.data(), prk.size(), info.data(), info.size());
}

void GcmKey::Free::operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }

Result<GcmKey> GcmKey::New(const Subkey& key) {
  const EVP_CIPHER* cipher = Aes256Gcm();
  if (!cipher) return Status::IoError("EVP_CIPHER_fetch AES-256-GCM: " + OpenSslError());
  GcmKey k;
  k.ctx_.reset(EVP_CIPHER_CTX_new());
  if (!k.ctx_) return Status::IoError("EVP_CIPHER_CTX_new: " + OpenSslError());
  // The default IV length is 12 bytes (kGcmNonceBytes); the key schedule
  // and GHASH table are computed here, once.
  if (EVP_CipherInit_ex(k.ctx_.get(), cipher, nullptr, key.data(), nullptr, -1) != 1)
    return Status::IoError("AES-256-GCM key setup: " + OpenSslError());
  return k;
}

Status GcmKey::Encrypt(const uint8_t* nonce, std::string_view aad, std::string_view plain, uint8_t* ct,
                       uint8_t* tag) {
  EVP_CIPHER_CTX* c = ctx_.get();
  int len = 0;
  bool ok = c && EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, nonce) == 1 &&
            EVP_EncryptUpdate(c, nullptr, &len, Bytes(aad), static_cast<int>(aad.size())) == 1 &&
            (plain.empty() || EVP_EncryptUpdate(c, ct, &len, Bytes(plain), static_cast<int>(plain.size())) == 1) &&
            EVP_EncryptFinal_ex(c, ct + plain.size(), &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, kGcmTagBytes, tag) == 1;
  if (!ok) return Status::IoError("AES-256-GCM encryption: " + OpenSslError());
  return Status::Ok();
}

bool GcmKey::Decrypt(const uint8_t* nonce, std::string_view aad, std::string_view ct, const uint8_t* tag_in,
                     std::string& plain) {
  EVP_CIPHER_CTX* c = ctx_.get();
  std::array<uint8_t, kGcmTagBytes> tag;  // the ctrl call wants a mutable pointer
  std::memcpy(tag.data(), tag_in, tag.size());
  plain.assign(ct.size(), '\0');
  uint8_t* out = reinterpret_cast<uint8_t*>(plain.data());
  int len = 0;
  // Setting the nonce restarts the context, whatever an earlier datagram
  // (refused or not) left in it.
  bool ok = c && EVP_DecryptInit_ex(c, nullptr, nullptr, nullptr, nonce) == 1 &&
            EVP_DecryptUpdate(c, nullptr, &len, Bytes(aad), static_cast<int>(aad.size())) == 1 &&
            (ct.empty() || EVP_DecryptUpdate(c, out, &len, Bytes(ct), static_cast<int>(ct.size())) == 1) &&
            EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, kGcmTagBytes, tag.data()) == 1 &&
            EVP_DecryptFinal_ex(c, out + plain.size(), &len) == 1;
  if (!ok) {
    ERR_clear_error();
    // Unauthenticated bytes must not outlive the verdict.
    OPENSSL_cleanse(plain.data(), plain.size());
    plain.clear();
  }
  return ok;
}

GcmKey* SubkeyCache::Find(const SubkeyId& id) {
  auto it = index_.find(id);
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return &it->second->second;
}

void SubkeyCache::Insert(const SubkeyId& id, GcmKey key) {
  if (GcmKey* held = Find(id)) {
    *held = std::move(key);
    return;
  }
  lru_.emplace_front(id, std::move(key));
  index_.emplace(id, lru_.begin());
  while (index_.size() > limit_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

}  // namespace ndo::mesh
