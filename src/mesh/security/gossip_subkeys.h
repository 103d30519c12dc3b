// The per-sender subkeys of sealed gossip (gossip_seal.h): their derivation
// (HKDF-SHA256 over a cluster key), an AES-256-GCM context keyed once per
// subkey (per datagram only the nonce is set: keying a context costs more
// than sealing a gossip datagram), and a receiver's bounded cache of them.
#pragma once

#include <openssl/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "base/status.h"
#include "mesh/membership/messages.h"
#include "mesh/security/pki.h"

namespace ndo::mesh {

inline constexpr size_t kSubkeyBytes = 32;
inline constexpr size_t kGcmNonceBytes = 12;
inline constexpr size_t kGcmTagBytes = 16;
inline constexpr std::string_view kSubkeyLabel = "ndo-gossip-subkey-v2";

using Subkey = std::array<uint8_t, kSubkeyBytes>;

// HKDF-Extract of a cluster key (no salt): done once per key, so that each
// subkey costs one HKDF-Expand (one HMAC) rather than the whole HKDF.
Result<Subkey> GossipKeyPrk(const std::array<uint8_t, kSubkeyBytes>& cluster_key);

// subkey = HKDF-SHA256(IKM = cluster key, no salt, info), L = 32, where
// info = kSubkeyLabel | cluster id (16) | key id (4) | sender (16) |
// epoch (8), big-endian; `prk` is GossipKeyPrk(cluster key).
Result<Subkey> DeriveSubkey(const Subkey& prk, const ClusterId& cluster, uint32_t key_id, const NodeId& sender,
                            uint64_t epoch);

// One AES-256-GCM key ready for use. Movable, not copyable; the key
// schedule is wiped when it goes (EVP_CIPHER_CTX_free cleanses).
class GcmKey {
 public:
  static Result<GcmKey> New(const Subkey& key);

  // ct receives plain.size() bytes, tag kGcmTagBytes.
  Status Encrypt(const uint8_t* nonce, std::string_view aad, std::string_view plain, uint8_t* ct, uint8_t* tag);
  // False (plain emptied and wiped) unless the tag verifies; an OpenSSL
  // failure reads the same: nothing of the datagram is trusted.
  bool Decrypt(const uint8_t* nonce, std::string_view aad, std::string_view ct, const uint8_t* tag,
               std::string& plain);

 private:
  struct Free {
    void operator()(EVP_CIPHER_CTX* c) const;
  };
  std::unique_ptr<EVP_CIPHER_CTX, Free> ctx_;
};

// Which subkey: a sender's, under one cluster key, in one of its epochs.
struct SubkeyId {
  NodeId sender;
  uint32_t key_id = 0;
  uint64_t epoch = 0;
  friend bool operator==(const SubkeyId&, const SubkeyId&) = default;
};

struct SubkeyIdHash {
  size_t operator()(const SubkeyId& id) const {
    return NodeIdHash()(id.sender) ^ static_cast<size_t>((id.epoch ^ id.key_id) * 0xff51afd7ed558ccdULL);
  }
};

// A receiver's subkeys, least recently used evicted beyond `limit`: a
// sender's old epochs fall out as its new one is used, and a key holder
// sealing under many made-up epochs or senders costs the receiver one
// derivation each, never more than `limit` entries (about 1.3 KB each).
class SubkeyCache {
 public:
  explicit SubkeyCache(size_t limit) : limit_(limit == 0 ? 1 : limit) {}

  // The cached key (now the most recently used), or null.
  GcmKey* Find(const SubkeyId& id);
  void Insert(const SubkeyId& id, GcmKey key);
  // Drops the subkeys of cluster keys for which keep(key id) is false.
  template <class Keep>
  void RetainKeys(Keep keep) {
    for (auto it = lru_.begin(); it != lru_.end();) {
      if (keep(it->first.key_id)) {
        ++it;
      } else {
        index_.erase(it->first);
        it = lru_.erase(it);
      }
    }
  }
  size_t size() const { return index_.size(); }
  size_t limit() const { return limit_; }

 private:
  size_t limit_;
  std::list<std::pair<SubkeyId, GcmKey>> lru_;  // most recently used first
  std::unordered_map<SubkeyId, std::list<std::pair<SubkeyId, GcmKey>>::iterator, SubkeyIdHash> index_;
};

}  // namespace ndo::mesh
