// Sealed gossip on AES-256-GCM (gossip_subkeys.h), the keyring that feeds it (kept as
// Cap'n Proto) and the per-sender replay windows; the contract is in
// gossip_seal.h. Nothing here throws: OpenSSL and kj failures become errors.
#include "mesh/security/gossip_seal.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include <climits>
#include <algorithm>
#include <cstring>
#include <exception>
#include <utility>

#include "mesh/membership/capnp_io.h"
#include "mesh/security/security.capnp.h"

namespace ndo::mesh {
namespace {

constexpr std::string_view kAadLabel = "ndo-gossip-v2";
constexpr size_t kIdBytes = 16;

// Where each header field starts (see the layout in gossip_seal.h).
constexpr size_t kKeyIdAt = 1;
constexpr size_t kSenderAt = kKeyIdAt + 4;
constexpr size_t kCounterAt = kSenderAt + kIdBytes;
constexpr size_t kEpochAt = kCounterAt + 8;
static_assert(kEpochAt + 8 == kSealHeaderBytes);

// OpenSSL counts bytes in int.
constexpr size_t kMaxPlainBytes = static_cast<size_t>(INT_MAX) - kSealOverhead;

constexpr size_t kWordBits = 64;
static_assert(kReplayWindow > 0 && kReplayWindow % kWordBits == 0);
using WindowBits = std::array<uint64_t, kReplayWindow / kWordBits>;

constexpr size_t kWord = sizeof(capnp::word);
// A ring of kMaxGossipKeys keys takes about 120 words; the rest is room for
// fields added later, and a hostile input beyond it is refused unread.
constexpr size_t kMaxKeyringBytes = 8192;
// The schema nests 3 deep (ring, key list, key data); this is a backstop.
constexpr int kNestingLimit = 8;

std::string Num(uint64_t n) { return std::to_string(n); }

const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }
uint8_t* Bytes(std::string& s) { return reinterpret_cast<uint8_t*>(s.data()); }

void PutBig(uint8_t* p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * (n - 1 - i)));
}

uint64_t GetBig(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

void PutId(uint8_t* p, const NodeId& id) {
  PutBig(p, id.hi, 8);
  PutBig(p + 8, id.lo, 8);
}

NodeId GetId(const uint8_t* p) { return {GetBig(p, 8), GetBig(p + 8, 8)}; }

// OpenSSL's reason for the last failure. The queue is emptied as well: an
// entry left behind would be blamed on the next, unrelated OpenSSL call on
// this thread (a TLS handshake, say).
std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  char buf[256] = "no OpenSSL error recorded";
  if (e != 0) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

Status RandomBytes(uint8_t* out, size_t n) {
  if (RAND_bytes(out, static_cast<int>(n)) != 1) return Status::IoError("RAND_bytes: " + OpenSslError());
  return Status::Ok();
}

// The associated data binds what travels in clear (the header) and what
// does not travel at all (the cluster), so a datagram opens only in its own
// cluster and with its header as sealed. (The subkey binds most of it too.)
std::string Aad(const ClusterId& cluster, std::string_view header) {
  std::string aad(kAadLabel);
  aad.resize(kAadLabel.size() + kIdBytes);
  PutId(Bytes(aad) + kAadLabel.size(), cluster);
  aad.append(header);
  return aad;
}

// The nonce of a counter: 4 zero bytes, then the counter.
std::array<uint8_t, kGcmNonceBytes> Nonce(uint64_t counter) {
  std::array<uint8_t, kGcmNonceBytes> nonce{};
  PutBig(nonce.data() + 4, counter, 8);
  return nonce;
}

// ---------------------------------------------------------------------------
// Replay windows.

// Moves every recorded counter `by` places further behind (the highest
// counter rose by that much); those pushed out of the window are forgotten.
void Slide(WindowBits& bits, uint64_t by) {
  if (by >= kReplayWindow) {
    bits.fill(0);
    return;
  }
  const size_t words = static_cast<size_t>(by / kWordBits);
  const unsigned shift = static_cast<unsigned>(by % kWordBits);
  // From the top down, so each word is read before it is overwritten.
  for (size_t i = bits.size(); i-- > 0;) {
    uint64_t v = 0;
    if (i >= words) {
      v = bits[i - words] << shift;
      if (shift != 0 && i > words) v |= bits[i - words - 1] >> (kWordBits - shift);
    }
    bits[i] = v;
  }
}

bool Seen(const WindowBits& bits, uint64_t behind) {
  return (bits[behind / kWordBits] >> (behind % kWordBits)) & 1u;
}

void Mark(WindowBits& bits, uint64_t behind) { bits[behind / kWordBits] |= uint64_t{1} << (behind % kWordBits); }

using Windows = std::unordered_map<NodeId, ReplayWindow, NodeIdHash>;

// Records `counter` from `sender` if it is new. Called only for datagrams
// that authenticated, so only key holders can create or move windows.
Status Admit(Windows& windows, const NodeId& sender, uint64_t counter) {
  auto it = windows.find(sender);
  if (it == windows.end()) {
    if (windows.size() >= kMaxReplaySenders)
      return Status::Unavailable("replay windows of " + Num(windows.size()) + " senders kept already; new sender " +
                                 sender.Hex() + " refused");
    it = windows.emplace(sender, ReplayWindow()).first;
  }
  if (it->second.TooOld(counter))
    return Status::Corruption("too old: counter " + Num(counter) + " from " + sender.Hex() + " is " +
                              Num(kReplayWindow) + " or more behind its newest");
  if (!it->second.Accept(counter))
    return Status::Corruption("replayed datagram: counter " + Num(counter) + " from " + sender.Hex());
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// Keyring encoding.


void Wipe(kj::ArrayPtr<capnp::word> words) { OPENSSL_cleanse(words.begin(), words.size() * kWord); }

Status ReadGossipKey(schema::GossipKey::Reader r, GossipKey& out) {
  auto key = r.getKey();
  if (key.size() != kGossipKeyBytes)
    return Status::Corruption("gossip key " + Num(r.getId()) + " is " + Num(key.size()) + " bytes, not " +
                              Num(kGossipKeyBytes));
  out.id = r.getId();
  std::memcpy(out.key.data(), key.begin(), kGossipKeyBytes);
  out.created_unix = r.getCreatedUnix();
  return Status::Ok();
}

Status ReadKeyring(capnp::FlatArrayMessageReader& reader, Keyring& ring) {
  auto root = reader.getRoot<schema::Keyring>();
  auto keys = root.getKeys();
  if (keys.size() > kMaxGossipKeys)
    return Status::Corruption("keyring of " + Num(keys.size()) + " keys, above the limit of " + Num(kMaxGossipKeys));
  ring.keys.resize(keys.size());
  for (unsigned i = 0; i < keys.size(); ++i)
    if (Status s = ReadGossipKey(keys[i], ring.keys[i]); !s.ok()) return s;
  ring.primary = root.getPrimary();
  return Status::Ok();
}

}  // namespace

// ---------------------------------------------------------------------------
// Keyring.

const GossipKey* Keyring::Find(uint32_t id) const {
  for (const GossipKey& k : keys)
    if (k.id == id) return &k;
  return nullptr;
}

Status Keyring::Validate() const {
  if (keys.empty()) return Status::InvalidArgument("keyring holds no key");
  if (keys.size() > kMaxGossipKeys)
    return Status::InvalidArgument("keyring holds " + Num(keys.size()) + " keys, above the limit of " +
                                   Num(kMaxGossipKeys));
  for (size_t i = 0; i < keys.size(); ++i)
    for (size_t j = i + 1; j < keys.size(); ++j)
      if (keys[i].id == keys[j].id)
        return Status::InvalidArgument("keyring holds key id " + Num(keys[i].id) + " twice");
  if (!Find(primary))
    return Status::InvalidArgument("keyring's primary key " + Num(primary) + " is not among its keys");
  return Status::Ok();
}

Result<GossipKey> NewGossipKey(const Keyring& ring, int64_t now_unix) {
  GossipKey key;
  key.created_unix = now_unix;
  if (Status s = RandomBytes(key.key.data(), key.key.size()); !s.ok()) return s;
  // Id 0 is what an unset primary reads as; a clash with a held id is
  // unlikely with 2^32 ids, but a few draws make it impossible in practice.
  for (int attempt = 0; attempt < 64; ++attempt) {
    uint8_t b[4];
    if (Status s = RandomBytes(b, sizeof b); !s.ok()) return s;
    key.id = static_cast<uint32_t>(GetBig(b, sizeof b));
    if (key.id != 0 && !ring.Find(key.id)) return key;
  }
  return Status::Unavailable("no unused gossip key id found");
}

Result<Keyring> NewKeyring(int64_t now_unix) {
  auto key = NewGossipKey(Keyring{}, now_unix);
  if (!key.ok()) return key.status();
  Keyring ring;
  ring.primary = key->id;
  ring.keys.push_back(*key);
  return ring;
}

Result<std::string> EncodeKeyring(const Keyring& ring) {
  // Nothing invalid is written, so what is read back always validates.
  if (Status s = ring.Validate(); !s.ok()) return s;
  // The builder works in a buffer of ours (zeroed, as Cap'n Proto requires),
  // so that the key bytes it holds can be wiped afterwards.
  auto scratch = kj::heapArray<capnp::word>(kMaxKeyringBytes / kWord);
  std::memset(scratch.begin(), 0, scratch.size() * kWord);
  std::string out;
  Status status = CapnpGuarded(&Status::InvalidArgument, "encoding keyring", [&]() -> Status {
    capnp::MallocMessageBuilder msg(scratch.asPtr());
    auto root = msg.initRoot<schema::Keyring>();
    root.setPrimary(ring.primary);
    auto keys = root.initKeys(static_cast<unsigned>(ring.keys.size()));
    for (unsigned i = 0; i < ring.keys.size(); ++i) {
      keys[i].setId(ring.keys[i].id);
      keys[i].setKey(capnp::Data::Reader(ring.keys[i].key.data(), ring.keys[i].key.size()));
      keys[i].setCreatedUnix(ring.keys[i].created_unix);
    }
    auto words = capnp::messageToFlatArray(msg);
    auto bytes = words.asBytes();
    out.assign(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
    Wipe(words);
    return Status::Ok();
  });
  Wipe(scratch);
  if (!status.ok()) return status;
  return out;
}

Result<Keyring> DecodeKeyring(std::string_view bytes) {
  if (bytes.empty()) return Status::Corruption("empty keyring");
  if (bytes.size() > kMaxKeyringBytes)
    return Status::Corruption("keyring of " + Num(bytes.size()) + " bytes, above the limit of " +
                              Num(kMaxKeyringBytes));
  if (bytes.size() % kWord != 0)
    return Status::Corruption("keyring of " + Num(bytes.size()) + " bytes is not a whole number of words");
  // Input buffers give no alignment guarantee: copy into words.
  auto words = kj::heapArray<capnp::word>(bytes.size() / kWord);
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  Keyring ring;
  Status status = CapnpGuarded(&Status::Corruption, "malformed keyring", [&]() -> Status {
    capnp::ReaderOptions options;
    // A valid message traverses each of its words once.
    options.traversalLimitInWords = 2 * words.size();
    options.nestingLimit = kNestingLimit;
    capnp::FlatArrayMessageReader reader(words.asPtr(), options);
    if (reader.getEnd() != words.end())
      return Status::Corruption(Num((words.end() - reader.getEnd()) * kWord) + " bytes after the keyring");
    return ReadKeyring(reader, ring);
  });
  Wipe(words);
  if (!status.ok()) return status;
  if (Status s = ring.Validate(); !s.ok()) return Status::Corruption(s.message());
  return ring;
}

// ---------------------------------------------------------------------------
// ReplayWindow.

bool ReplayWindow::TooOld(uint64_t counter) const {
  return any_ && counter < highest_ && highest_ - counter >= kReplayWindow;
}

bool ReplayWindow::WouldAccept(uint64_t counter) const {
  if (!any_ || counter > highest_) return true;
  if (TooOld(counter)) return false;
  return !Seen(bits_, highest_ - counter);
}

bool ReplayWindow::Accept(uint64_t counter) {
  if (!WouldAccept(counter)) return false;
  if (!any_) {
    any_ = true;
    highest_ = counter;
    bits_.fill(0);
  } else if (counter > highest_) {
    Slide(bits_, counter - highest_);
    highest_ = counter;
  }
  Mark(bits_, highest_ - counter);
  return true;
}

// ---------------------------------------------------------------------------
// AeadSeal.

// `ring` is taken as it is: the caller validates it (Keyring::Validate, or
// DecodeKeyring which does). A ring without its primary key makes Seal fail
// with an error, and an empty one makes every Open fail; neither crashes.
AeadSeal::AeadSeal(ClusterId cluster, NodeId self, Keyring ring, uint64_t first_counter)
    : AeadSeal(cluster, self, std::move(ring), first_counter, Limits{}) {}

AeadSeal::AeadSeal(ClusterId cluster, NodeId self, Keyring ring, uint64_t first_counter, Limits limits)
    : cluster_(cluster),
      self_(self),
      ring_(std::move(ring)),
      counter_(first_counter),
      limits_(limits),
      subkeys_(limits.cached_subkeys) {}

AeadSeal::~AeadSeal() {
  for (auto& [id, prk] : prks_) OPENSSL_cleanse(prk.data(), prk.size());
}

Result<const Subkey*> AeadSeal::Prk(const GossipKey& key) {
  auto it = prks_.find(key.id);
  if (it == prks_.end()) {
    auto prk = GossipKeyPrk(key.key);
    if (!prk.ok()) return prk.status();
    it = prks_.emplace(key.id, *prk).first;
    OPENSSL_cleanse(prk->data(), prk->size());
  }
  return &it->second;
}

Status AeadSeal::TakeEpoch(const GossipKey& key, uint64_t now_micros) {
  uint8_t b[8];
  if (Status s = RandomBytes(b, sizeof b); !s.ok()) return s;
  const uint64_t epoch = GetBig(b, sizeof b);
  auto prk = Prk(key);
  if (!prk.ok()) return prk.status();
  auto subkey = DeriveSubkey(**prk, cluster_, key.id, self_, epoch);
  if (!subkey.ok()) return subkey.status();
  auto gcm = GcmKey::New(*subkey);
  OPENSSL_cleanse(subkey->data(), subkey->size());
  if (!gcm.ok()) return gcm.status();
  sealing_ = std::move(*gcm);
  sealing_key_id_ = key.id;
  epoch_ = epoch;
  ++epochs_taken_;
  sealed_ = 0;
  epoch_since_ = now_micros;
  return Status::Ok();
}

Result<std::string> AeadSeal::Seal(std::string_view plain) {
  const GossipKey* key = ring_.Find(ring_.primary);
  if (!key) return Status::InvalidArgument("keyring's primary key " + Num(ring_.primary) + " is not among its keys");
  if (self_.empty()) return Status::InvalidArgument("no node id to seal with");
  if (plain.size() > kMaxPlainBytes)
    return Status::InvalidArgument("datagram of " + Num(plain.size()) + " bytes, too large to seal");
  // Peers would drop a counter that wrapped to 0 as too old.
  if (counter_ == UINT64_MAX) return Status::Unavailable("datagram counter exhausted");

  // A new subkey when there is none yet, the primary key changed, this one
  // sealed its share or served its time, or the clock went back (the
  // counter would not, but a step back means the clock is not to be read
  // as the subkey's age either).
  const uint64_t now = clock_ ? clock_() : 0;
  const bool clock_back = clock_ && now < last_clock_;
  if (clock_) last_clock_ = now;
  if (!sealing_ || sealing_key_id_ != key->id || sealed_ >= limits_.max_seals_per_subkey || clock_back ||
      (clock_ && now - epoch_since_ >= limits_.max_subkey_age_micros))
    if (Status s = TakeEpoch(*key, now); !s.ok()) return s;

  std::string out(kSealOverhead + plain.size(), '\0');
  uint8_t* p = Bytes(out);
  p[0] = kSealVersion;
  PutBig(p + kKeyIdAt, key->id, 4);
  PutId(p + kSenderAt, self_);
  if (clock_) counter_ = std::max(counter_, CounterAtWallMicros(now));
  const uint64_t counter = counter_++;
  PutBig(p + kCounterAt, counter, 8);
  PutBig(p + kEpochAt, epoch_, 8);
  std::string aad = Aad(cluster_, std::string_view(out).substr(0, kSealHeaderBytes));
  uint8_t* ct = p + kSealHeaderBytes;
  const auto nonce = Nonce(counter);
  if (Status s = sealing_->Encrypt(nonce.data(), aad, plain, ct, ct + plain.size()); !s.ok()) return s;
  ++sealed_;
  return out;
}

Result<OpenedDatagram> AeadSeal::Open(std::string_view wire) {
  if (wire.size() < kSealOverhead)
    return Status::Corruption("sealed datagram of " + Num(wire.size()) + " bytes, shorter than the " +
                              Num(kSealOverhead) + "-byte seal");
  if (wire.size() - kSealOverhead > kMaxPlainBytes) return Status::Corruption("sealed datagram too large");
  const uint8_t* p = Bytes(wire);
  if (p[0] == 1)
    return Status::Corruption("seal version 1 (the cluster key with random nonces) is no longer accepted; the "
                              "sender runs an older ndo than this node's version " +
                              Num(kSealVersion));
  if (p[0] != kSealVersion) return Status::Corruption("unknown seal version " + Num(p[0]));
  const uint32_t key_id = static_cast<uint32_t>(GetBig(p + kKeyIdAt, 4));
  const GossipKey* key = ring_.Find(key_id);
  if (!key) return Status::Corruption("unknown gossip key " + Num(key_id) + " (never installed or removed)");
  // An empty sender means "not authenticated" to the driver, which would
  // then skip its check that the message names the sealer.
  const SubkeyId id{GetId(p + kSenderAt), key_id, GetBig(p + kEpochAt, 8)};
  if (id.sender.empty()) return Status::Corruption("sealed without a sender id");

  // A subkey not cached is derived, and kept only once the datagram proves
  // it is a key holder's: an outsider's datagrams cost a derivation each and
  // never take or evict a cache entry.
  GcmKey* gcm = subkeys_.Find(id);
  std::optional<GcmKey> fresh;
  if (!gcm) {
    auto prk = Prk(*key);
    if (!prk.ok()) return prk.status();
    auto subkey = DeriveSubkey(**prk, cluster_, id.key_id, id.sender, id.epoch);
    if (!subkey.ok()) return subkey.status();
    auto made = GcmKey::New(*subkey);
    OPENSSL_cleanse(subkey->data(), subkey->size());
    if (!made.ok()) return made.status();
    fresh = std::move(*made);
    gcm = &*fresh;
  }

  std::string_view header = wire.substr(0, kSealHeaderBytes);
  std::string_view ct = wire.substr(kSealHeaderBytes, wire.size() - kSealOverhead);
  const uint64_t counter = GetBig(p + kCounterAt, 8);
  const auto nonce = Nonce(counter);
  OpenedDatagram opened;
  if (!gcm->Decrypt(nonce.data(), Aad(cluster_, header), ct, p + wire.size() - kSealTagBytes, opened.plain))
    return Status::Corruption("authentication failed");
  opened.sender = id.sender;
  if (clock_) {
    const uint64_t now = CounterAtWallMicros(clock_());
    constexpr uint64_t kMaxSkew = CounterAtWallMicros(kMaxCounterSkewMicros);
    if (counter > now && counter - now > kMaxSkew)
      return Status::Corruption("counter " + Num(counter) + " from " + opened.sender.Hex() + " is ahead of the clock");
    if (counter < now && now - counter > kMaxSkew)
      return Status::Corruption("stale: counter " + Num(counter) + " from " + opened.sender.Hex() +
                                " is behind the clock");
  }
  if (Status s = Admit(windows_, opened.sender, counter); !s.ok()) return s;
  if (fresh) subkeys_.Insert(id, std::move(*fresh));
  return opened;
}

Status AeadSeal::SetKeyring(Keyring ring) {
  if (Status s = ring.Validate(); !s.ok()) return s;
  // Windows stay: counters are per sender, not per key. What was derived
  // from a key no longer held goes with it.
  ring_ = std::move(ring);
  for (auto it = prks_.begin(); it != prks_.end();) {
    if (ring_.Find(it->first)) {
      ++it;
    } else {
      OPENSSL_cleanse(it->second.data(), it->second.size());
      it = prks_.erase(it);
    }
  }
  subkeys_.RetainKeys([this](uint32_t key_id) { return ring_.Find(key_id) != nullptr; });
  if (sealing_ && !ring_.Find(sealing_key_id_)) sealing_.reset();
  return Status::Ok();
}

}  // namespace ndo::mesh
