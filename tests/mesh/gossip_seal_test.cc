#include "mesh/security/gossip_seal.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "mesh/security/security.capnp.h"

namespace ndo::mesh {
namespace {

constexpr int64_t kNow = 1700000000;
const ClusterId kCluster{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
const NodeId kA{0x1111111111111111ULL, 0xaaaaaaaaaaaaaaaaULL};
const NodeId kB{0x2222222222222222ULL, 0xbbbbbbbbbbbbbbbbULL};

Keyring MustNewKeyring() {
  auto ring = NewKeyring(kNow);
  EXPECT_TRUE(ring.ok()) << ring.status().ToString();
  return *ring;
}

GossipKey MustNewKey(const Keyring& ring) {
  auto key = NewGossipKey(ring, kNow + 1);
  EXPECT_TRUE(key.ok()) << key.status().ToString();
  return *key;
}

std::string MustSeal(AeadSeal& seal, std::string_view plain) {
  auto wire = seal.Seal(plain);
  EXPECT_TRUE(wire.ok()) << wire.status().ToString();
  return wire.ok() ? *wire : std::string();
}

// The error Open gives, or "" if it opened.
std::string OpenError(AeadSeal& seal, std::string_view wire) {
  auto opened = seal.Open(wire);
  return opened.ok() ? "" : opened.status().message();
}

bool Contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

uint32_t WireKeyId(const std::string& wire) {
  uint32_t id = 0;
  for (int i = 1; i <= 4; ++i) id = (id << 8) | static_cast<uint8_t>(wire[i]);
  return id;
}

// Two nodes of one cluster sharing a fresh ring.
struct Pair {
  Keyring ring = MustNewKeyring();
  AeadSeal a{kCluster, kA, ring, 1000};
  AeadSeal b{kCluster, kB, ring, 5000};
};

// ---------------------------------------------------------------------------
// AeadSeal.

TEST(GossipSealTest, RoundTripToAnotherNodeWithTheSameRing) {
  Pair p;
  for (std::string plain : {std::string("ping"), std::string(), std::string(kMaxDatagramBytes, '\x5a')}) {
    auto opened = p.b.Open(MustSeal(p.a, plain));
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    EXPECT_EQ(opened->plain, plain);
    EXPECT_EQ(opened->sender, kA);

    auto back = p.a.Open(MustSeal(p.b, plain));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(back->plain, plain);
    EXPECT_EQ(back->sender, kB);
  }
}

uint64_t BigEndian(std::string_view bytes) {
  uint64_t v = 0;
  for (char c : bytes) v = (v << 8) | static_cast<uint8_t>(c);
  return v;
}

std::string BigEndianBytes(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<char>(v & 0xff);
  return out;
}

// The subkey by a one-shot HKDF-SHA256 (no salt) of OpenSSL's, from the
// contract's words, independently of the seal's extract-then-expand.
std::array<uint8_t, 32> ContractSubkey(const GossipKey& key, const ClusterId& cluster, const NodeId& sender,
                                       uint64_t epoch) {
  std::string info = "ndo-gossip-subkey-v2" + BigEndianBytes(cluster.hi) + BigEndianBytes(cluster.lo) +
                     BigEndianBytes(key.id).substr(4) + BigEndianBytes(sender.hi) + BigEndianBytes(sender.lo) +
                     BigEndianBytes(epoch);
  std::array<uint8_t, 32> out{};
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  char digest[] = "SHA256";
  std::array<uint8_t, 32> ikm = key.key;
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, ikm.data(), ikm.size()),
                         OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
                         OSSL_PARAM_construct_end()};
  EXPECT_EQ(EVP_KDF_derive(ctx, out.data(), out.size(), params), 1);
  EVP_KDF_CTX_free(ctx);
  EVP_KDF_free(kdf);
  return out;
}

// The plaintext of `wire`, decrypted with OpenSSL directly under `subkey`,
// the nonce and the AAD built from the contract's words; nullopt if the tag
// does not verify.
std::optional<std::string> ContractOpen(const std::array<uint8_t, 32>& subkey, const std::string& wire) {
  const std::string header = wire.substr(0, kSealHeaderBytes);
  const std::string aad = "ndo-gossip-v2" + BigEndianBytes(kCluster.hi) + BigEndianBytes(kCluster.lo) + header;
  const std::string nonce = std::string(4, '\0') + wire.substr(21, 8);  // 4 zero bytes | counter
  const std::string ct = wire.substr(kSealHeaderBytes, wire.size() - kSealOverhead);
  std::string tag = wire.substr(wire.size() - kSealTagBytes);
  std::string out(ct.size(), '\0');
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int len = 0;
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, subkey.data(),
                         reinterpret_cast<const uint8_t*>(nonce.data())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const uint8_t*>(aad.data()),
                        static_cast<int>(aad.size())) != 1 ||
      (!ct.empty() && EVP_DecryptUpdate(ctx.get(), reinterpret_cast<uint8_t*>(out.data()), &len,
                                        reinterpret_cast<const uint8_t*>(ct.data()), static_cast<int>(ct.size())) != 1) ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kSealTagBytes, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<uint8_t*>(out.data()) + out.size(), &len) != 1)
    return std::nullopt;
  return out;
}

uint64_t WireEpoch(const std::string& wire) { return BigEndian(std::string_view(wire).substr(29, 8)); }
uint64_t WireCounter(const std::string& wire) { return BigEndian(std::string_view(wire).substr(21, 8)); }

TEST(GossipSealTest, WireLayoutSubkeyNonceAndAadAreTheContracts) {
  Pair p;
  const std::string plain = "layout";
  const std::string wire = MustSeal(p.a, plain);
  ASSERT_EQ(wire.size(), kSealOverhead + plain.size());
  EXPECT_EQ(kSealOverhead, 53u);
  EXPECT_EQ(static_cast<uint8_t>(wire[0]), 2u);
  EXPECT_EQ(BigEndian(wire.substr(1, 4)), p.ring.primary);
  EXPECT_EQ(BigEndian(wire.substr(5, 8)), kA.hi);
  EXPECT_EQ(BigEndian(wire.substr(13, 8)), kA.lo);
  EXPECT_EQ(WireCounter(wire), 1000u);  // the first counter
  EXPECT_EQ(WireEpoch(wire), p.a.epoch());
  const std::string second = MustSeal(p.a, "");
  EXPECT_EQ(WireCounter(second), 1001u);
  EXPECT_EQ(WireEpoch(second), p.a.epoch()) << "one epoch until a limit";

  const auto subkey = ContractSubkey(p.ring.keys[0], kCluster, kA, p.a.epoch());
  EXPECT_EQ(ContractOpen(subkey, wire), plain);
  EXPECT_EQ(ContractOpen(subkey, second), "");
  // Not under the cluster key itself, nor another sender's subkey.
  EXPECT_EQ(ContractOpen(p.ring.keys[0].key, wire), std::nullopt);
  EXPECT_EQ(ContractOpen(ContractSubkey(p.ring.keys[0], kCluster, kB, p.a.epoch()), wire), std::nullopt);
}

// A restart: a new seal of the same sender, key and clock (so the same
// counters) seals under another epoch, hence another subkey, and the
// ciphertexts of the same plaintext differ although the nonces repeat.
TEST(GossipSealTest, ARestartedSealerTakesAnotherEpochAndSubkey) {
  Keyring ring = MustNewKeyring();
  const uint64_t now = 1'800'000'000'000'000;
  auto clock = [now] { return now; };
  AeadSeal first(kCluster, kA, ring, CounterAtWallMicros(now));
  AeadSeal again(kCluster, kA, ring, CounterAtWallMicros(now));
  first.SetClock(clock);
  again.SetClock(clock);
  const std::string w1 = MustSeal(first, "same plaintext");
  const std::string w2 = MustSeal(again, "same plaintext");
  EXPECT_EQ(WireCounter(w1), WireCounter(w2)) << "same clock, same counter: the nonce alone would repeat";
  EXPECT_NE(WireEpoch(w1), WireEpoch(w2));
  EXPECT_NE(w1.substr(kSealHeaderBytes), w2.substr(kSealHeaderBytes));
  EXPECT_NE(ContractSubkey(ring.keys[0], kCluster, kA, WireEpoch(w1)),
            ContractSubkey(ring.keys[0], kCluster, kA, WireEpoch(w2)));
  // Each opens under its own subkey only.
  auto k1 = ContractSubkey(ring.keys[0], kCluster, kA, WireEpoch(w1));
  EXPECT_TRUE(ContractOpen(k1, w1).has_value());
  EXPECT_FALSE(ContractOpen(k1, w2).has_value());
}

// The clock stepping back: the counter does not follow it down, and the
// sealer takes a new epoch anyway.
TEST(GossipSealTest, AClockSteppedBackTakesANewEpochAndTheCounterStaysUp) {
  Pair p;
  uint64_t now = 1'800'000'000'000'000;
  p.a.SetClock([&now] { return now; });
  p.b.SetClock([&now] { return now; });
  const std::string before = MustSeal(p.a, "before");
  EXPECT_EQ(OpenError(p.b, before), "");
  now -= 60'000'000;  // a minute back
  const std::string after = MustSeal(p.a, "after");
  EXPECT_NE(WireEpoch(after), WireEpoch(before));
  EXPECT_GT(WireCounter(after), WireCounter(before));
  EXPECT_EQ(p.a.epochs_taken(), 2u);
  EXPECT_EQ(OpenError(p.b, after), "");
}

// Another sender's id in the header (both senders known to the receiver,
// their subkeys cached): the datagram does not open, and nothing moved.
TEST(GossipSealTest, AHeaderWithAnotherSenderDoesNotOpen) {
  Keyring ring = MustNewKeyring();
  const NodeId kC{0x3333, 0xcccc};
  AeadSeal a(kCluster, kA, ring, 100), c(kCluster, kC, ring, 100), receiver(kCluster, kB, ring, 1);
  EXPECT_EQ(OpenError(receiver, MustSeal(a, "a")), "");
  EXPECT_EQ(OpenError(receiver, MustSeal(c, "c")), "");
  std::string wire = MustSeal(a, "in the name of c");
  std::string swapped = wire;
  for (int i = 0; i < 8; ++i) {
    swapped[5 + i] = static_cast<char>(kC.hi >> (8 * (7 - i)));
    swapped[13 + i] = static_cast<char>(kC.lo >> (8 * (7 - i)));
  }
  EXPECT_EQ(OpenError(receiver, swapped), "authentication failed");
  // Also with c's own epoch in the header (its subkey is cached then).
  std::string with_epoch = swapped;
  with_epoch.replace(29, 8, BigEndianBytes(c.epoch()));
  EXPECT_EQ(OpenError(receiver, with_epoch), "authentication failed");
  EXPECT_EQ(OpenError(receiver, wire), "") << "the genuine datagram still opens";
  EXPECT_EQ(OpenError(receiver, MustSeal(c, "c again")), "");
}

// Crossing the (injected) per-subkey limit: a new epoch every 3 datagrams;
// datagrams of the old epochs still open, also after newer ones, and a
// replay across epochs is still refused (the window is per sender).
TEST(GossipSealTest, CrossingTheSealLimitTakesANewEpochAndOldDatagramsStillOpen) {
  Keyring ring = MustNewKeyring();
  AeadSeal::Limits limits;
  limits.max_seals_per_subkey = 3;
  AeadSeal a(kCluster, kA, ring, 1, limits), b(kCluster, kB, ring, 1);
  std::vector<std::string> wires;
  for (int i = 0; i < 9; ++i) wires.push_back(MustSeal(a, "d" + std::to_string(i)));
  EXPECT_EQ(a.epochs_taken(), 3u);
  std::set<uint64_t> epochs;
  for (int i = 0; i < 9; ++i) {
    epochs.insert(WireEpoch(wires[i]));
    if (i % 3 != 0) EXPECT_EQ(WireEpoch(wires[i]), WireEpoch(wires[i - 1])) << i;
    EXPECT_EQ(WireCounter(wires[i]), 1u + i) << "counters run on across epochs";
  }
  EXPECT_EQ(epochs.size(), 3u);
  // Newest first, then the older epochs' datagrams: all open, once.
  for (int i : {8, 7, 6, 2, 5, 0, 4, 1, 3}) {
    auto opened = b.Open(wires[i]);
    ASSERT_TRUE(opened.ok()) << i << ": " << opened.status().message();
    EXPECT_EQ(opened->plain, "d" + std::to_string(i));
  }
  for (int i = 0; i < 9; ++i) EXPECT_TRUE(Contains(OpenError(b, wires[i]), "replayed datagram")) << i;
  EXPECT_EQ(b.cached_subkeys(), 3u);
}

// The time bound: a day of the sealer's clock under one subkey at most.
TEST(GossipSealTest, ASubkeyServesAtMostItsTime) {
  Pair p;
  uint64_t now = 1'800'000'000'000'000;
  p.a.SetClock([&now] { return now; });
  const uint64_t e1 = WireEpoch(MustSeal(p.a, "x"));
  now += kMaxSubkeyAgeMicros - 1;
  EXPECT_EQ(WireEpoch(MustSeal(p.a, "x")), e1);
  now += 1;
  const std::string later = MustSeal(p.a, "x");
  EXPECT_NE(WireEpoch(later), e1);
  EXPECT_EQ(p.a.epochs_taken(), 2u);
  EXPECT_EQ(OpenError(p.b, later), "");
}

// A key holder sealing under a stream of made-up epochs (and senders): the
// receiver's cache stays at its limit, the oldest go, and every datagram
// still opens (an evicted subkey is derived again).
TEST(GossipSealTest, TheSubkeyCacheStaysWithinItsLimitUnderManyEpochs) {
  Keyring ring = MustNewKeyring();
  AeadSeal::Limits one_each;
  one_each.max_seals_per_subkey = 1;  // a new epoch for every datagram
  AeadSeal::Limits small;
  small.cached_subkeys = 16;
  AeadSeal flooder(kCluster, kA, ring, 1, one_each);
  AeadSeal receiver(kCluster, kB, ring, 1, small);
  std::vector<std::string> wires;
  for (int i = 0; i < 1000; ++i) {
    wires.push_back(MustSeal(flooder, "e"));
    ASSERT_EQ(OpenError(receiver, wires.back()), "") << i;
    ASSERT_LE(receiver.cached_subkeys(), 16u);
  }
  EXPECT_EQ(flooder.epochs_taken(), 1000u);
  EXPECT_EQ(receiver.cached_subkeys(), 16u);
  for (uint64_t i = 1; i <= 100; ++i) {
    AeadSeal s(kCluster, NodeId{0x99, i}, ring, 1);
    ASSERT_EQ(OpenError(receiver, MustSeal(s, "n")), "");
  }
  EXPECT_EQ(receiver.cached_subkeys(), 16u);
  // An evicted epoch's datagram within the window opens again (derived anew).
  AeadSeal late(kCluster, kA, ring, 5000, one_each);
  auto w1 = MustSeal(late, "1"), w2 = MustSeal(late, "2");
  EXPECT_EQ(OpenError(receiver, w2), "");
  for (uint64_t i = 200; i < 220; ++i) {
    AeadSeal s(kCluster, NodeId{0x99, i}, ring, 1);
    ASSERT_EQ(OpenError(receiver, MustSeal(s, "n")), "");
  }
  EXPECT_EQ(OpenError(receiver, w1), "") << "its subkey was evicted; derived again";
  // Forged datagrams under new epochs never take a place in the cache.
  AeadSeal fresh(kCluster, kB, ring, 1, small);
  for (int i = 0; i < 100; ++i) {
    std::string forged = MustSeal(flooder, "f");
    forged.back() = static_cast<char>(forged.back() ^ 1);
    EXPECT_EQ(OpenError(fresh, forged), "authentication failed");
  }
  EXPECT_EQ(fresh.cached_subkeys(), 0u);
}

TEST(GossipSealTest, VersionOneIsRefusedWithAClearReason) {
  Pair p;
  std::string wire = MustSeal(p.a, "v");
  wire[0] = 1;
  EXPECT_TRUE(Contains(OpenError(p.b, wire), "seal version 1")) << OpenError(p.b, wire);
  EXPECT_TRUE(Contains(OpenError(p.b, wire), "no longer accepted"));
  // A whole version-1 datagram (57 bytes of seal: the random nonce) too.
  std::string v1(1 + 4 + 16 + 8 + 12 + 20 + 16, '\x07');
  v1[0] = 1;
  EXPECT_TRUE(Contains(OpenError(p.b, v1), "seal version 1"));
  EXPECT_EQ(OpenError(p.b, MustSeal(p.a, "v2 still opens")), "");
}

TEST(GossipSealTest, CiphertextHidesThePlaintext) {
  Pair p;
  const std::string plain = "a member list nobody outside the cluster should read";
  std::string wire = MustSeal(p.a, plain);
  EXPECT_EQ(wire.find("member list"), std::string::npos);
  // Counters in the nonce: the same plaintext never seals to the same bytes.
  EXPECT_NE(MustSeal(p.a, plain).substr(kSealHeaderBytes), wire.substr(kSealHeaderBytes));
}

TEST(GossipSealTest, SenderInOpenedDatagramIsTheSealers) {
  Keyring ring = MustNewKeyring();
  AeadSeal receiver(kCluster, kB, ring, 1);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20; ++i) {
    NodeId id{rng(), rng() | 1};
    AeadSeal sender(kCluster, id, ring, 1);
    auto opened = receiver.Open(MustSeal(sender, "x"));
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    EXPECT_EQ(opened->sender, id);
  }
}

TEST(GossipSealTest, OverheadIsTheActualSizeDifference) {
  Pair p;
  EXPECT_EQ(p.a.Overhead(), kSealOverhead);
  for (size_t n : {size_t{0}, size_t{1}, size_t{100}, kMaxDatagramBytes}) {
    std::string wire = MustSeal(p.a, std::string(n, 'q'));
    EXPECT_EQ(wire.size() - n, p.a.Overhead()) << n;
  }
}

TEST(GossipSealTest, AnotherClusterCannotOpen) {
  Pair p;
  const ClusterId other{kCluster.hi, kCluster.lo ^ 1};
  AeadSeal stranger(other, kB, p.ring, 1);
  EXPECT_EQ(OpenError(stranger, MustSeal(p.a, "hello")), "authentication failed");
  // Nor does a datagram from there open here.
  EXPECT_EQ(OpenError(p.a, MustSeal(stranger, "hello")), "authentication failed");
}

TEST(GossipSealTest, AnotherKeyWithTheSameIdCannotOpen) {
  Pair p;
  Keyring forged = p.ring;
  forged.keys[0].key[0] ^= 1;
  AeadSeal mallory(kCluster, kB, forged, 1);
  EXPECT_EQ(OpenError(p.a, MustSeal(mallory, "hello")), "authentication failed");
}

TEST(GossipSealTest, EverySingleByteFlipFails) {
  Pair p;
  const std::string wire = MustSeal(p.a, std::string(64, 'm'));
  for (size_t i = 0; i < wire.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      std::string bad = wire;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      EXPECT_NE(OpenError(p.b, bad), "") << "byte " << i << " mask " << int(mask);
    }
  }
  // Nothing above moved the window: the genuine datagram still opens, once.
  EXPECT_EQ(OpenError(p.b, wire), "");
  EXPECT_TRUE(Contains(OpenError(p.b, wire), "replayed datagram"));
}

TEST(GossipSealTest, EveryTruncationFails) {
  Pair p;
  const std::string wire = MustSeal(p.a, std::string(40, 't'));
  for (size_t n = 0; n < wire.size(); ++n) EXPECT_NE(OpenError(p.b, wire.substr(0, n)), "") << n;
  EXPECT_EQ(OpenError(p.b, wire + "x"), "authentication failed");
  EXPECT_EQ(OpenError(p.b, wire), "");
}

TEST(GossipSealTest, WrongVersionAndGarbageFail) {
  Pair p;
  std::string wire = MustSeal(p.a, "v");
  wire[0] = static_cast<char>(kSealVersion + 1);
  EXPECT_TRUE(Contains(OpenError(p.b, wire), "version"));

  // Garbage with a plausible header (right version and key id) still fails.
  std::mt19937 rng(1);
  for (int i = 0; i < 50; ++i) {
    std::string junk(kSealOverhead + i, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    junk.replace(0, 5, MustSeal(p.a, "").substr(0, 5));
    EXPECT_EQ(OpenError(p.b, junk), "authentication failed");
  }
}

TEST(GossipSealTest, ReplayFailsTheSecondTime) {
  Pair p;
  const std::string wire = MustSeal(p.a, "once");
  EXPECT_EQ(OpenError(p.b, wire), "");
  EXPECT_TRUE(Contains(OpenError(p.b, wire), "replayed datagram"));
  EXPECT_TRUE(Contains(OpenError(p.b, wire), "replayed datagram"));
  // Another receiver has a window of its own.
  AeadSeal c(kCluster, NodeId{3, 3}, p.ring, 1);
  EXPECT_EQ(OpenError(c, wire), "");
}

// With clocks (as the daemon runs it), counters follow the sender's clock
// and a receiver refuses counters far from its own: an old capture cannot be
// replayed to a receiver without windows (restarted), and a counter from the
// far future cannot push a sender's window out of reach.
TEST(GossipSealTest, WithClocksCountersFollowTimeAndFarOnesAreRefused) {
  Keyring ring = MustNewKeyring();
  uint64_t now = 1'800'000'000'000'000;  // microseconds
  auto clock = [&now] { return now; };
  AeadSeal a(kCluster, kA, ring, 5);
  a.SetClock(clock);
  auto first = a.Seal("ping");
  ASSERT_TRUE(first.ok());
  AeadSeal b(kCluster, kB, ring, 0);
  b.SetClock(clock);
  ASSERT_TRUE(b.Open(*first).ok()) << "a counter at the clock opens";

  // Captured now, replayed to a receiver that restarted 10 minutes later.
  now += 600'000'000;
  AeadSeal restarted(kCluster, kB, ring, 0);
  restarted.SetClock(clock);
  auto replay = restarted.Open(*first);
  ASSERT_FALSE(replay.ok());
  EXPECT_NE(replay.status().message().find("stale"), std::string::npos) << replay.status().message();
  // The sender's next datagram follows the clock and opens.
  auto next = a.Seal("ping");
  ASSERT_TRUE(next.ok());
  EXPECT_TRUE(restarted.Open(*next).ok());

  // A key holder's counter far ahead is refused and moves no window: the
  // sender's real datagrams still open after it.
  AeadSeal ahead(kCluster, kA, ring, CounterAtWallMicros(now + 3'600'000'000ULL));
  auto far = ahead.Seal("ping");
  ASSERT_TRUE(far.ok());
  auto refused = restarted.Open(*far);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("ahead of the clock"), std::string::npos) << refused.status().message();
  auto after = a.Seal("ping");
  ASSERT_TRUE(after.ok());
  EXPECT_TRUE(restarted.Open(*after).ok());
}

// The window must cover reordering on the way, not only a count: with the
// clock on, a datagram overtaken by one sealed 900 ms later still opens
// (once), and one overtaken by a datagram sealed 2 s later is too old.
TEST(GossipSealTest, WithClocksTheWindowSpansAboutASecondOfTheSendersTime) {
  Keyring ring = MustNewKeyring();
  uint64_t now = 1'800'000'000'000'000;  // microseconds
  auto clock = [&now] { return now; };
  AeadSeal a(kCluster, kA, ring, 0), b(kCluster, kB, ring, 0);
  a.SetClock(clock);
  b.SetClock(clock);
  auto early = a.Seal("early");
  now += 900'000;
  auto late = a.Seal("late");
  ASSERT_TRUE(early.ok() && late.ok());
  EXPECT_EQ(OpenError(b, *late), "");
  EXPECT_EQ(OpenError(b, *early), "") << "overtaken by 900 ms";
  EXPECT_NE(OpenError(b, *early), "") << "a repeat";

  auto old = a.Seal("old");
  now += 2'000'000;
  auto newer = a.Seal("newer");
  ASSERT_TRUE(old.ok() && newer.ok());
  EXPECT_EQ(OpenError(b, *newer), "");
  EXPECT_NE(OpenError(b, *old), "") << "overtaken by 2 s: too old for the window";
}

TEST(GossipSealTest, OutOfOrderWithinTheWindowAcceptedOnceEach) {
  Pair p;
  std::vector<std::string> wires;
  for (int i = 0; i < 100; ++i) wires.push_back(MustSeal(p.a, "n" + std::to_string(i)));
  // Odd ones in reverse, then even ones forwards.
  for (int i = 99; i >= 0; i -= 2) EXPECT_EQ(OpenError(p.b, wires[i]), "") << i;
  for (int i = 0; i < 100; i += 2) EXPECT_EQ(OpenError(p.b, wires[i]), "") << i;
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(Contains(OpenError(p.b, wires[i]), "replayed datagram")) << i;
}

TEST(GossipSealTest, OlderThanTheWindowRefused) {
  Pair p;
  std::vector<std::string> wires;
  for (uint64_t i = 0; i <= kReplayWindow; ++i) wires.push_back(MustSeal(p.a, "w"));
  EXPECT_EQ(OpenError(p.b, wires.back()), "");
  // wires[0] is exactly kReplayWindow behind, wires[1] one less.
  EXPECT_TRUE(Contains(OpenError(p.b, wires[0]), "too old"));
  EXPECT_EQ(OpenError(p.b, wires[1]), "");
  EXPECT_TRUE(Contains(OpenError(p.b, wires[1]), "replayed datagram"));
}

TEST(GossipSealTest, RestartedSenderContinuesAboveItsOldCounters) {
  Pair p;
  EXPECT_EQ(OpenError(p.b, MustSeal(p.a, "before")), "");
  // The counter starts at the wall clock in microseconds: later is higher.
  AeadSeal restarted(kCluster, kA, p.ring, 1000000);
  auto opened = p.b.Open(MustSeal(restarted, "after"));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened->sender, kA);
}

TEST(GossipSealTest, RemovedKeyFailsAsUnknown) {
  Pair p;
  const uint32_t old_id = p.ring.primary;
  const std::string wire = MustSeal(p.a, "sealed with the old key");
  Keyring fresh;
  GossipKey k = MustNewKey(p.ring);
  fresh.keys = {k};
  fresh.primary = k.id;
  ASSERT_TRUE(p.b.SetKeyring(fresh).ok());
  EXPECT_EQ(OpenError(p.b, wire), "unknown gossip key " + std::to_string(old_id) + " (never installed or removed)");
}

TEST(GossipSealTest, RotationKeepsBothDirectionsWorking) {
  Pair p;
  const uint32_t k1 = p.ring.primary;
  const GossipKey k2 = MustNewKey(p.ring);
  auto both_ways = [&](const char* step) {
    SCOPED_TRACE(step);
    EXPECT_EQ(OpenError(p.b, MustSeal(p.a, "a to b")), "");
    EXPECT_EQ(OpenError(p.a, MustSeal(p.b, "b to a")), "");
  };

  // 1. Install k2 everywhere, k1 still primary.
  Keyring installed = p.ring;
  installed.keys.push_back(k2);
  ASSERT_TRUE(p.b.SetKeyring(installed).ok());
  ASSERT_TRUE(p.a.SetKeyring(installed).ok());
  both_ways("installed");

  // 2. Make k2 primary, one node at a time: mixed primaries still talk.
  Keyring switched = installed;
  switched.primary = k2.id;
  ASSERT_TRUE(p.a.SetKeyring(switched).ok());
  EXPECT_EQ(WireKeyId(MustSeal(p.a, "")), k2.id);
  EXPECT_EQ(WireKeyId(MustSeal(p.b, "")), k1);
  both_ways("a switched");
  ASSERT_TRUE(p.b.SetKeyring(switched).ok());
  both_ways("both switched");
  const std::string late_k1 = [&] {
    AeadSeal old(kCluster, kA, p.ring, 2000000);  // a straggler still sealing with k1
    return MustSeal(old, "late");
  }();

  // 3. Remove k1.
  Keyring removed;
  removed.keys = {k2};
  removed.primary = k2.id;
  ASSERT_TRUE(p.a.SetKeyring(removed).ok());
  ASSERT_TRUE(p.b.SetKeyring(removed).ok());
  both_ways("k1 removed");
  EXPECT_TRUE(Contains(OpenError(p.b, late_k1), "unknown gossip key " + std::to_string(k1)));
}

TEST(GossipSealTest, SetKeyringRefusesAnInvalidRingAndKeepsTheOld) {
  Pair p;
  Keyring no_primary = p.ring;
  no_primary.primary = p.ring.primary + 1;
  EXPECT_FALSE(p.a.SetKeyring(Keyring{}).ok());
  EXPECT_FALSE(p.a.SetKeyring(no_primary).ok());
  EXPECT_EQ(p.a.keyring().primary, p.ring.primary);
  ASSERT_EQ(p.a.keyring().keys.size(), 1u);
  EXPECT_EQ(p.a.keyring().keys[0].key, p.ring.keys[0].key);
  EXPECT_EQ(OpenError(p.b, MustSeal(p.a, "still sealing")), "");
}

TEST(GossipSealTest, RingWithoutPrimarySealsAnErrorNotACrash) {
  Keyring ring = MustNewKeyring();
  ring.primary ^= 0x80000000u;
  AeadSeal seal(kCluster, kA, ring, 1);
  EXPECT_FALSE(seal.Seal("x").ok());
  AeadSeal empty(kCluster, kA, Keyring{}, 1);
  EXPECT_FALSE(empty.Seal("x").ok());
  EXPECT_FALSE(empty.Open(std::string(kSealOverhead + 4, '\x01')).ok());
}

TEST(GossipSealTest, EmptySenderIsNeverAuthenticated) {
  Pair p;
  AeadSeal anonymous(kCluster, NodeId{}, p.ring, 1);
  EXPECT_FALSE(anonymous.Seal("x").ok());
}

TEST(GossipSealTest, NewSenderBeyondTheLimitRefused) {
  Keyring ring = MustNewKeyring();
  AeadSeal receiver(kCluster, kB, ring, 1);
  for (uint64_t i = 1; i <= kMaxReplaySenders; ++i) {
    AeadSeal s(kCluster, NodeId{0, i}, ring, 1);
    ASSERT_EQ(OpenError(receiver, MustSeal(s, "")), "") << i;
  }
  AeadSeal one_more(kCluster, NodeId{1, 0}, ring, 1);
  EXPECT_TRUE(Contains(OpenError(receiver, MustSeal(one_more, "")), "refused"));
  // Known senders still get through.
  AeadSeal known(kCluster, NodeId{0, 1}, ring, 2);
  EXPECT_EQ(OpenError(receiver, MustSeal(known, "")), "");
}

// ---------------------------------------------------------------------------
// Keyring.

TEST(KeyringTest, NewKeyringHoldsOneRandomPrimaryKey) {
  Keyring a = MustNewKeyring(), b = MustNewKeyring();
  ASSERT_TRUE(a.Validate().ok());
  ASSERT_EQ(a.keys.size(), 1u);
  EXPECT_EQ(a.primary, a.keys[0].id);
  EXPECT_NE(a.keys[0].id, 0u);
  EXPECT_EQ(a.keys[0].created_unix, kNow);
  EXPECT_NE(a.keys[0].key, b.keys[0].key);
  EXPECT_NE(a.keys[0].key, (std::array<uint8_t, kGossipKeyBytes>{}));
}

TEST(KeyringTest, NewGossipKeyTakesAnUnusedNonzeroId) {
  Keyring ring = MustNewKeyring();
  while (ring.keys.size() < kMaxGossipKeys) {
    GossipKey k = MustNewKey(ring);
    EXPECT_NE(k.id, 0u);
    EXPECT_EQ(ring.Find(k.id), nullptr);
    ring.keys.push_back(k);
  }
  EXPECT_TRUE(ring.Validate().ok());
}

TEST(KeyringTest, FindAndValidate) {
  Keyring ring = MustNewKeyring();
  GossipKey k2 = MustNewKey(ring);
  ring.keys.push_back(k2);
  ASSERT_NE(ring.Find(k2.id), nullptr);
  EXPECT_EQ(ring.Find(k2.id)->key, k2.key);
  EXPECT_EQ(ring.Find(ring.primary), &ring.keys[0]);
  EXPECT_EQ(ring.Find(k2.id ^ ring.primary ^ 1), nullptr);
  EXPECT_TRUE(ring.Validate().ok());

  EXPECT_EQ(Keyring{}.Validate().code(), Status::Code::kInvalidArgument);
  Keyring dup = ring;
  dup.keys[1].id = dup.keys[0].id;
  EXPECT_FALSE(dup.Validate().ok());
  Keyring lost = ring;
  lost.primary = 0;
  EXPECT_FALSE(lost.Validate().ok());
  Keyring many = ring;
  while (many.keys.size() <= kMaxGossipKeys) many.keys.push_back(MustNewKey(many));
  EXPECT_FALSE(many.Validate().ok());
}

TEST(KeyringTest, EncodeDecodeRoundTrip) {
  Keyring ring = MustNewKeyring();
  ring.keys.push_back(MustNewKey(ring));
  ring.keys.push_back(MustNewKey(ring));
  ring.keys[2].created_unix = -5;
  ring.primary = ring.keys[1].id;
  auto bytes = EncodeKeyring(ring);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  auto back = DecodeKeyring(*bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->primary, ring.primary);
  ASSERT_EQ(back->keys.size(), ring.keys.size());
  for (size_t i = 0; i < ring.keys.size(); ++i) {
    EXPECT_EQ(back->keys[i].id, ring.keys[i].id);
    EXPECT_EQ(back->keys[i].key, ring.keys[i].key);
    EXPECT_EQ(back->keys[i].created_unix, ring.keys[i].created_unix);
  }
  // A decoded ring seals for the original.
  AeadSeal a(kCluster, kA, ring, 1), b(kCluster, kB, *back, 1);
  EXPECT_EQ(OpenError(a, MustSeal(b, "x")), "");
}

TEST(KeyringTest, EncodeRefusesAnInvalidRing) {
  EXPECT_FALSE(EncodeKeyring(Keyring{}).ok());
  Keyring ring = MustNewKeyring();
  ring.primary ^= 1;
  EXPECT_FALSE(EncodeKeyring(ring).ok());
}

TEST(KeyringTest, DecodeRejectsGarbage) {
  EXPECT_FALSE(DecodeKeyring("").ok());
  EXPECT_FALSE(DecodeKeyring("1234567").ok());
  EXPECT_FALSE(DecodeKeyring(std::string(1 << 20, '\0')).ok());
  std::mt19937 rng(3);
  for (size_t n = 8; n <= 512; n += 8) {
    std::string junk(n, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    EXPECT_FALSE(DecodeKeyring(junk).ok()) << n;
  }
  auto good = EncodeKeyring(MustNewKeyring());
  ASSERT_TRUE(good.ok());
  for (size_t n = 0; n < good->size(); ++n) EXPECT_FALSE(DecodeKeyring(good->substr(0, n)).ok()) << n;
  EXPECT_FALSE(DecodeKeyring(*good + std::string(8, '\0')).ok());
}

// A keyring as an attacker or a corrupted file could hold it, bypassing
// EncodeKeyring's validation.
struct RawKey {
  uint32_t id;
  size_t key_bytes;
};

std::string RawKeyring(const std::vector<RawKey>& keys, uint32_t primary) {
  capnp::MallocMessageBuilder msg;
  auto root = msg.initRoot<schema::Keyring>();
  root.setPrimary(primary);
  auto list = root.initKeys(static_cast<unsigned>(keys.size()));
  for (unsigned i = 0; i < keys.size(); ++i) {
    list[i].setId(keys[i].id);
    std::string key(keys[i].key_bytes, '\x42');
    list[i].setKey(capnp::Data::Reader(reinterpret_cast<const uint8_t*>(key.data()), key.size()));
    list[i].setCreatedUnix(kNow);
  }
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

TEST(KeyringTest, DecodeChecksWhatItReads) {
  auto ok = DecodeKeyring(RawKeyring({{7, 32}, {9, 32}}, 9));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->primary, 9u);

  for (size_t len : {size_t{0}, size_t{16}, size_t{31}, size_t{33}, size_t{64}})
    EXPECT_FALSE(DecodeKeyring(RawKeyring({{7, 32}, {9, len}}, 7)).ok()) << "key of " << len << " bytes";
  EXPECT_FALSE(DecodeKeyring(RawKeyring({{7, 32}, {7, 32}}, 7)).ok()) << "duplicate ids";
  EXPECT_FALSE(DecodeKeyring(RawKeyring({{7, 32}, {9, 32}}, 8)).ok()) << "primary not held";
  EXPECT_FALSE(DecodeKeyring(RawKeyring({}, 0)).ok()) << "no keys";
  std::vector<RawKey> many;
  for (uint32_t i = 1; i <= kMaxGossipKeys + 1; ++i) many.push_back({i, 32});
  EXPECT_FALSE(DecodeKeyring(RawKeyring(many, 1)).ok()) << "too many keys";
  many.pop_back();
  EXPECT_TRUE(DecodeKeyring(RawKeyring(many, 1)).ok()) << "the most keys";
}

// ---------------------------------------------------------------------------
// ReplayWindow.

TEST(ReplayWindowTest, CounterZeroIsAnOrdinaryFirstCounter) {
  ReplayWindow w;
  EXPECT_TRUE(w.WouldAccept(0));
  EXPECT_TRUE(w.Accept(0));
  EXPECT_FALSE(w.WouldAccept(0));
  EXPECT_FALSE(w.Accept(0));
  EXPECT_FALSE(w.TooOld(0));
  EXPECT_TRUE(w.Accept(1));
  EXPECT_FALSE(w.Accept(0));
}

TEST(ReplayWindowTest, FirstCounterMayBeAnything) {
  for (uint64_t first : {uint64_t{5}, uint64_t{1} << 63, UINT64_MAX}) {
    ReplayWindow w;
    EXPECT_TRUE(w.Accept(first));
    EXPECT_FALSE(w.Accept(first));
    EXPECT_TRUE(w.Accept(first - 1));
  }
}

TEST(ReplayWindowTest, WouldAcceptDoesNotRecord) {
  ReplayWindow w;
  EXPECT_TRUE(w.WouldAccept(10));
  EXPECT_TRUE(w.WouldAccept(10));
  EXPECT_TRUE(w.Accept(10));
  EXPECT_TRUE(w.WouldAccept(9));
  EXPECT_TRUE(w.WouldAccept(9));
  EXPECT_TRUE(w.Accept(9));
  EXPECT_FALSE(w.WouldAccept(9));
}

TEST(ReplayWindowTest, ExactlyWindowMinusOneAndWindowBehind) {
  const uint64_t h = 100000;
  ReplayWindow w;
  ASSERT_TRUE(w.Accept(h));
  EXPECT_TRUE(w.TooOld(h - kReplayWindow));
  EXPECT_FALSE(w.WouldAccept(h - kReplayWindow));
  EXPECT_FALSE(w.Accept(h - kReplayWindow));
  EXPECT_FALSE(w.TooOld(h - kReplayWindow + 1));
  EXPECT_TRUE(w.Accept(h - kReplayWindow + 1));
  EXPECT_FALSE(w.Accept(h - kReplayWindow + 1));
  EXPECT_FALSE(w.TooOld(h - kReplayWindow + 1));  // a repeat, not too old
  // One step up pushes it out.
  ASSERT_TRUE(w.Accept(h + 1));
  EXPECT_TRUE(w.TooOld(h - kReplayWindow + 1));
}

TEST(ReplayWindowTest, JumpsOfTwoToThe63AndToTheTop) {
  const uint64_t half = uint64_t{1} << 63;
  ReplayWindow w;
  ASSERT_TRUE(w.Accept(0));
  EXPECT_TRUE(w.Accept(half));
  EXPECT_TRUE(w.TooOld(0));
  EXPECT_FALSE(w.Accept(0));
  EXPECT_TRUE(w.Accept(half - 1));
  EXPECT_FALSE(w.Accept(half));
  EXPECT_TRUE(w.Accept(UINT64_MAX));
  EXPECT_FALSE(w.Accept(UINT64_MAX));
  EXPECT_FALSE(w.Accept(half));
  EXPECT_TRUE(w.Accept(UINT64_MAX - kReplayWindow + 1));
  EXPECT_FALSE(w.Accept(UINT64_MAX - kReplayWindow));
  EXPECT_FALSE(w.WouldAccept(0));

  ReplayWindow x;
  ASSERT_TRUE(x.Accept(0));
  EXPECT_TRUE(x.Accept(UINT64_MAX));
  EXPECT_TRUE(x.TooOld(0));
  EXPECT_TRUE(x.TooOld(UINT64_MAX - kReplayWindow));
}

// Against a plain model (a set of every counter seen), over random steps
// sized around the word and window boundaries of the bitmap.
TEST(ReplayWindowTest, MatchesASimpleModel) {
  std::mt19937_64 rng(42);
  const uint64_t steps[] = {0, 1, 2, 63, 64, 65, 127, 128, 129, 511, 1000, kReplayWindow - 1, kReplayWindow,
                            kReplayWindow + 1, 5000};
  ReplayWindow w;
  std::set<uint64_t> seen;
  uint64_t highest = 0;
  for (int i = 0; i < 200000; ++i) {
    uint64_t step = steps[rng() % std::size(steps)];
    // Mostly counters near the top and behind it, some ahead.
    uint64_t c = (rng() % 4 == 0) ? highest + step : (highest >= step ? highest - step : 0);
    bool model = seen.empty() || c > highest || (highest - c < kReplayWindow && !seen.count(c));
    ASSERT_EQ(w.WouldAccept(c), model) << "step " << i << " counter " << c << " highest " << highest;
    ASSERT_EQ(w.TooOld(c), !seen.empty() && c < highest && highest - c >= kReplayWindow);
    ASSERT_EQ(w.Accept(c), model) << "step " << i;
    if (model) {
      seen.insert(c);
      highest = std::max(highest, c);
    }
    // Keep the model small: what is out of the window no longer matters.
    if (seen.size() > 4 * kReplayWindow && highest >= kReplayWindow)
      seen.erase(seen.begin(), seen.lower_bound(highest - kReplayWindow));
  }
}

}  // namespace
}  // namespace ndo::mesh
