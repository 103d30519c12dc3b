// The security state's anti-entropy and key rotation, driven by hand: what
// is put in force after each change, the periodic exchange with one random
// unrevoked alive member, pushes to all on a rotation or revocation, the key
// schedule falling due, and two members converging through the bodies they
// exchange.
#include "mesh/security/security_sync.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace ndo::mesh {
namespace {

using std::chrono::seconds;

constexpr int64_t kUnix0 = 1700000000;
const Time kT0 = Time{} + std::chrono::hours(1);

NodeId Id(uint8_t b) {
  std::string hex(32, '0');
  hex[0] = "0123456789abcdef"[b >> 4];
  hex[1] = "0123456789abcdef"[b & 15];
  hex[31] = '1';
  return NodeId::FromHex(hex);
}

GossipKey Key(uint32_t id, uint8_t fill) {
  GossipKey k;
  k.id = id;
  k.key.fill(fill);
  k.created_unix = kUnix0;
  return k;
}

Keyring Ring() {
  Keyring r;
  r.keys = {Key(1, 0x11)};
  r.primary = 1;
  return r;
}

// Fresh keys with ids 100, 101, ...: deterministic.
GossipKeyMaker Maker() {
  auto next = std::make_shared<uint32_t>(100);
  return [next](const Keyring&, int64_t now) -> Result<GossipKey> {
    GossipKey k = Key((*next)++, 0x22);
    k.created_unix = now;
    return k;
  };
}

std::vector<SecurityPeer> Peers(std::initializer_list<uint8_t> ids) {
  std::vector<SecurityPeer> out;
  for (uint8_t b : ids) out.push_back({Id(b), "10.0.0." + std::to_string(b) + ":7946"});
  return out;
}

SecuritySync Loaded(uint8_t self, uint64_t seed = 1) {
  SecuritySync s(Id(self), seed, Maker());
  EXPECT_TRUE(s.Load(Ring(), std::nullopt, kUnix0).ok());
  return s;
}

TEST(SecuritySync, LoadPutsTheKeyringInForceAndPersistsIt) {
  SecuritySync s = Loaded(1);
  auto changes = s.TakeChanges();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].why, "start");
  ASSERT_TRUE(changes[0].keyring.ok());
  EXPECT_EQ(changes[0].keyring->primary, 1u);
  ASSERT_TRUE(changes[0].persist.ok());
  auto decoded = DecodeSecurityState(*changes[0].persist);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, s.state());
  EXPECT_FALSE(changes[0].self_revoked);
  EXPECT_TRUE(s.TakeRequests().empty());
}

TEST(SecuritySync, LoadJoinsTheSavedStateAndRefusesACorruptOne) {
  SecurityState saved = StateFromKeyring(Ring());
  Revoke(saved, {Id(9), "ab", kUnix0 - 5, "old"});
  auto bytes = EncodeSecurityState(saved);
  ASSERT_TRUE(bytes.ok());
  SecuritySync s(Id(1), 1, Maker());
  ASSERT_TRUE(s.Load(Ring(), *bytes, kUnix0).ok());
  EXPECT_TRUE(s.IsRevoked(Id(9)));
  SecuritySync bad(Id(1), 1, Maker());
  EXPECT_FALSE(bad.Load(Ring(), std::string("not capnp"), kUnix0).ok());
}

TEST(SecuritySync, PeriodicExchangeWithOneRandomUnrevokedAliveMember) {
  SecuritySync s = Loaded(1);
  s.TakeChanges();
  // Revoke 3 by merging a member's state.
  SecurityState other = s.state();
  Revoke(other, {Id(3), "", kUnix0, ""});
  ASSERT_TRUE(s.OnSyncRequest(*EncodeSecurityState(other), kUnix0).ok());
  ASSERT_TRUE(s.IsRevoked(Id(3)));
  std::set<std::string> chosen;
  Time now = kT0;
  for (int i = 0; i < 40; ++i) {
    s.Tick(now, kUnix0, Peers({2, 3, 4}));
    auto requests = s.TakeRequests();
    ASSERT_EQ(requests.size(), 1u);
    chosen.insert(requests[0].address);
    EXPECT_EQ(*DecodeSecurityState(requests[0].body), s.state());
    EXPECT_EQ(s.NextSync(), now + kSecuritySyncInterval);
    // Nothing before the interval.
    s.Tick(now + kSecuritySyncInterval - seconds(1), kUnix0, Peers({2, 3, 4}));
    EXPECT_TRUE(s.TakeRequests().empty());
    now += kSecuritySyncInterval;
  }
  EXPECT_EQ(chosen, (std::set<std::string>{"10.0.0.2:7946", "10.0.0.4:7946"}));
  // Nobody to talk to: nothing sent, the next try an interval later.
  s.Tick(now, kUnix0, {});
  EXPECT_TRUE(s.TakeRequests().empty());
  EXPECT_EQ(s.NextSync(), now + kSecuritySyncInterval);
  // After a join: at once.
  s.SyncSoon(now + seconds(1));
  s.Tick(now + seconds(1), kUnix0, Peers({2}));
  EXPECT_EQ(s.TakeRequests().size(), 1u);
}

TEST(SecuritySync, SyncRequestMergesAndRepliesWithTheUnion) {
  SecuritySync s = Loaded(1);
  s.TakeChanges();
  SecurityState other = StateFromKeyring(Ring());
  Revoke(other, {Id(7), "", kUnix0, "gone"});
  auto reply = s.OnSyncRequest(*EncodeSecurityState(other), kUnix0);
  ASSERT_TRUE(reply.ok());
  auto merged = DecodeSecurityState(*reply);
  ASSERT_TRUE(merged.ok());
  EXPECT_NE(merged->FindRevoked(Id(7)), nullptr);
  auto changes = s.TakeChanges();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].why, "merged from a member");
  // The same again changes nothing: no change to put in force.
  ASSERT_TRUE(s.OnSyncRequest(*EncodeSecurityState(other), kUnix0).ok());
  EXPECT_TRUE(s.TakeChanges().empty());
  // Garbage: refused, nothing merged.
  auto bad = s.OnSyncRequest("garbage", kUnix0);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Status::Code::kInvalidArgument);
  EXPECT_FALSE(s.OnSyncReply("garbage", kUnix0).ok());
  EXPECT_TRUE(s.TakeChanges().empty());
}

TEST(SecuritySync, RotationPushesToAllAndTheNewKeySealsWhenDue) {
  SecuritySync s = Loaded(1);
  s.TakeChanges();
  auto done = s.Rotate(kUnix0, Peers({2, 3}));
  ASSERT_TRUE(done.ok()) << done.status().message();
  EXPECT_EQ(done->key, 100u);
  EXPECT_EQ(done->primary_from_unix, kUnix0 + kRotationLead);
  EXPECT_NE(done->message.find("new gossip key 100"), std::string::npos);
  auto requests = s.TakeRequests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].address, "10.0.0.2:7946");
  EXPECT_EQ(requests[1].address, "10.0.0.3:7946");
  auto changes = s.TakeChanges();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].why, "rotation");
  EXPECT_EQ(changes[0].keyring->primary, 1u);  // not yet
  ASSERT_TRUE(s.NextKeyChange().has_value());
  EXPECT_EQ(*s.NextKeyChange(), kUnix0 + kRotationLead);
  // Before it is due: nothing changes.
  s.Tick(kT0, kUnix0 + kRotationLead - 1, {});
  EXPECT_TRUE(s.TakeChanges().empty());
  s.Tick(kT0, kUnix0 + kRotationLead, {});
  changes = s.TakeChanges();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].why, "key schedule");
  EXPECT_EQ(changes[0].keyring->primary, 100u);
  EXPECT_EQ(changes[0].keyring->keys.size(), 2u);  // the old key still opens
  // Then the old key goes.
  ASSERT_EQ(*s.NextKeyChange(), kUnix0 + kRotationLead + kRotationOverlap);
  s.Tick(kT0, kUnix0 + kRotationLead + kRotationOverlap, {});
  changes = s.TakeChanges();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].keyring->keys.size(), 1u);
  EXPECT_FALSE(s.NextKeyChange().has_value());
}

TEST(SecuritySync, RotationFailureIsAValue) {
  SecuritySync s(Id(1), 1, [](const Keyring&, int64_t) -> Result<GossipKey> { return Status::IoError("no entropy"); });
  ASSERT_TRUE(s.Load(Ring(), std::nullopt, kUnix0).ok());
  s.TakeChanges();
  auto done = s.Rotate(kUnix0, Peers({2}));
  ASSERT_FALSE(done.ok());
  EXPECT_NE(done.status().message().find("cannot rotate the gossip keys: no entropy"), std::string::npos);
  EXPECT_TRUE(s.TakeRequests().empty());
  EXPECT_TRUE(s.TakeChanges().empty());
}

TEST(SecuritySync, RevocationIsPushedThenTheKeysRotateAwayFromTheRevoked) {
  SecuritySync s = Loaded(1);
  s.TakeChanges();
  RevocationDone done = s.Revoke({Id(3), "cafe", kUnix0, "bad"}, kUnix0, Peers({2, 3, 4}));
  EXPECT_TRUE(s.IsRevoked(Id(3)));
  ASSERT_TRUE(done.rotation.ok());
  EXPECT_NE(done.message.find("(bad) is revoked"), std::string::npos);
  auto requests = s.TakeRequests();
  // Two pushes (revocation, then rotation) to 2 and 4; none to the revoked.
  ASSERT_EQ(requests.size(), 4u);
  for (const auto& r : requests) EXPECT_NE(r.address, "10.0.0.3:7946");
  // The first push carries the revocation without the new key, the second both.
  auto first = DecodeSecurityState(requests[0].body), last = DecodeSecurityState(requests[3].body);
  ASSERT_TRUE(first.ok() && last.ok());
  EXPECT_NE(first->FindRevoked(Id(3)), nullptr);
  EXPECT_EQ(first->ScheduleOf(100), nullptr);
  EXPECT_NE(last->ScheduleOf(100), nullptr);
  auto changes = s.TakeChanges();
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].why, "revocation");
  EXPECT_EQ(changes[1].why, "rotation");
}

TEST(SecuritySync, SelfRevokedToldOnce) {
  SecuritySync s = Loaded(1);
  s.TakeChanges();
  SecurityState other = s.state();
  Revoke(other, {Id(1), "", kUnix0, ""});
  ASSERT_TRUE(s.OnSyncRequest(*EncodeSecurityState(other), kUnix0).ok());
  auto changes = s.TakeChanges();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_TRUE(changes[0].self_revoked);
  other.authorities.push_back(Id(2));
  ASSERT_TRUE(s.OnSyncRequest(*EncodeSecurityState(other), kUnix0).ok());
  changes = s.TakeChanges();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_FALSE(changes[0].self_revoked);
}

TEST(SecuritySync, AuthorityAnnouncedOnce) {
  SecuritySync s = Loaded(1);
  s.TakeChanges();
  s.AddSelfAsAuthority(kUnix0);
  EXPECT_EQ(s.state().authorities, std::vector<NodeId>{Id(1)});
  EXPECT_EQ(s.TakeChanges().size(), 1u);
  s.AddSelfAsAuthority(kUnix0);
  EXPECT_TRUE(s.TakeChanges().empty());
}

TEST(SecuritySync, TwoMembersConvergeThroughTheirExchanges) {
  SecuritySync a = Loaded(1, 1), b = Loaded(2, 2);
  ASSERT_TRUE(a.Rotate(kUnix0, {}).ok());
  b.Revoke({Id(9), "", kUnix0, ""}, kUnix0, {});
  a.TakeRequests();
  b.TakeRequests();
  EXPECT_FALSE(a.state() == b.state());
  // a's periodic exchange with b: b merges the request, a merges the reply.
  a.Tick(kT0, kUnix0, Peers({2}));
  auto requests = a.TakeRequests();
  ASSERT_EQ(requests.size(), 1u);
  auto reply = b.OnSyncRequest(requests[0].body, kUnix0);
  ASSERT_TRUE(reply.ok());
  ASSERT_TRUE(a.OnSyncReply(*reply, kUnix0).ok());
  EXPECT_TRUE(a.state() == b.state());
  EXPECT_TRUE(a.IsRevoked(Id(9)));
  EXPECT_NE(b.state().ScheduleOf(100), nullptr);
}

}  // namespace
}  // namespace ndo::mesh
