// The replicated security state: the merge is a semilattice join (checked
// as properties over many random states), the key schedule read at an
// instant, rotation, pruning, revocation, convergence of copies exchanged in
// any order, and the bounded codec.
#include "mesh/security/security_state.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "mesh/security/security.capnp.h"

namespace ndo::mesh {
namespace {

constexpr int64_t kT0 = 1700000000;

// ---------------------------------------------------------------------------
// Helpers.

std::string Describe(const SecurityState& s) {
  std::ostringstream out;
  out << "keys{";
  for (const GossipKey& k : s.keys) {
    out << " " << k.id << ":";
    for (int i = 0; i < 3; ++i) out << std::hex << static_cast<int>(k.key[i]) << std::dec;
    out << "..@" << k.created_unix;
  }
  out << " } schedule{";
  for (const KeySchedule& e : s.schedule) out << " " << e.id << ":" << e.primary_from_unix << "/" << e.removed_from_unix;
  out << " } revoked{";
  for (const RevokedNode& r : s.revoked)
    out << " " << r.node.Hex() << ":'" << r.serial_hex << "'@" << r.revoked_unix << "'" << r.name << "'";
  out << " } authorities{";
  for (const NodeId& n : s.authorities) out << " " << n.Hex();
  out << " }";
  return out.str();
}

std::string Describe(const Keyring& r) {
  std::ostringstream out;
  out << "primary " << r.primary << " keys{";
  for (const GossipKey& k : r.keys) out << " " << k.id;
  out << " }";
  return out.str();
}

#define EXPECT_SAME_STATE(a, b) EXPECT_TRUE((a) == (b)) << "  " << Describe(a) << "\n  " << Describe(b)

bool SameKeyring(const Keyring& a, const Keyring& b) {
  if (a.primary != b.primary || a.keys.size() != b.keys.size()) return false;
  for (size_t i = 0; i < a.keys.size(); ++i)
    if (a.keys[i].id != b.keys[i].id || a.keys[i].key != b.keys[i].key || a.keys[i].created_unix != b.keys[i].created_unix)
      return false;
  return true;
}

std::vector<uint32_t> Ids(const Keyring& r) {
  std::vector<uint32_t> ids;
  for (const GossipKey& k : r.keys) ids.push_back(k.id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

GossipKey MakeKey(uint32_t id, uint8_t fill, int64_t created = kT0) {
  GossipKey k;
  k.id = id;
  k.key.fill(fill);
  k.created_unix = created;
  return k;
}

// Sorted insertion that keeps the first entry of an id (independent of the
// code under test).
template <typename T, typename KeyOf>
void InsertSorted(std::vector<T>& v, const T& e, KeyOf key_of) {
  auto it = std::lower_bound(v.begin(), v.end(), key_of(e), [&](const T& x, const auto& k) { return key_of(x) < k; });
  if (it != v.end() && key_of(*it) == key_of(e)) return;
  v.insert(it, e);
}

void AddKey(SecurityState& s, const GossipKey& k) {
  InsertSorted(s.keys, k, [](const GossipKey& x) { return x.id; });
}
void AddSchedule(SecurityState& s, const KeySchedule& e) {
  InsertSorted(s.schedule, e, [](const KeySchedule& x) { return x.id; });
}
void AddRevoked(SecurityState& s, const RevokedNode& r) {
  InsertSorted(s.revoked, r, [](const RevokedNode& x) { return x.node; });
}
void AddAuthorityNode(SecurityState& s, const NodeId& n) {
  InsertSorted(s.authorities, n, [](const NodeId& x) { return x; });
}

Keyring MustEffective(const SecurityState& s, int64_t now) {
  auto ring = EffectiveKeyring(s, now);
  EXPECT_TRUE(ring.ok()) << ring.status().ToString() << " at " << now << " in " << Describe(s);
  return ring.ok() ? *ring : Keyring{};
}

// Random states over small pools, so that ids collide across states (key
// ids, some with the very same key bytes and another creation time, schedule
// ids, revoked node ids, serials and names).
class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}

  uint64_t Below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  bool Chance(unsigned percent) { return Below(100) < percent; }
  std::mt19937_64& rng() { return rng_; }

  uint32_t KeyId() { return Chance(75) ? static_cast<uint32_t>(1 + Below(8)) : static_cast<uint32_t>(rng_()); }

  GossipKey Key() {
    GossipKey k;
    k.id = KeyId();
    if (Chance(60)) {
      k.key.fill(static_cast<uint8_t>(Below(3)));  // a pool of three: equal bytes happen
    } else {
      for (auto& b : k.key) b = static_cast<uint8_t>(rng_());
    }
    k.created_unix = Chance(50) ? kT0 + static_cast<int64_t>(Below(2)) : kT0 + static_cast<int64_t>(Below(100000));
    return k;
  }

  int64_t Time() {
    switch (Below(4)) {
      case 0: return 0;
      case 1: return 1;
      case 2: return kT0 + static_cast<int64_t>(Below(4));
      default: return kT0 + static_cast<int64_t>(Below(1000));
    }
  }

  KeySchedule Schedule() { return KeySchedule{KeyId(), Time(), Chance(50) ? 0 : Time()}; }

  RevokedNode Revoked() {
    static const char* kSerials[] = {"01", "7f3a", "deadbeef", "0123456789abcdef0123456789abcdef01234567"};
    static const char* kNames[] = {"a", "node-b", "scanner-c"};
    RevokedNode r;
    r.node = Chance(75) ? NodeId{1, 1 + Below(6)} : NodeId{rng_() | 1, rng_()};
    if (Chance(60)) r.serial_hex = kSerials[Below(4)];
    r.revoked_unix = Chance(10) ? 0 : kT0 + static_cast<int64_t>(Below(Chance(50) ? 3 : 1000));
    if (Chance(60)) r.name = kNames[Below(3)];
    return r;
  }

  SecurityState State() {
    SecurityState s;
    for (uint64_t n = Below(7); n > 0; --n) AddKey(s, Key());
    for (uint64_t n = Below(9); n > 0; --n) AddSchedule(s, Schedule());
    for (uint64_t n = Below(7); n > 0; --n) AddRevoked(s, Revoked());
    for (uint64_t n = Below(4); n > 0; --n)
      AddAuthorityNode(s, Chance(75) ? NodeId{2, 1 + Below(5)} : NodeId{rng_() | 1, rng_()});
    return s;
  }

 private:
  std::mt19937_64 rng_;
};

SecurityState Join(SecurityState a, const SecurityState& b) {
  Merge(a, b);
  return a;
}

bool Sorted(const SecurityState& s) {
  auto sorted = [](const auto& v, auto key_of) {
    for (size_t i = 1; i < v.size(); ++i)
      if (!(key_of(v[i - 1]) < key_of(v[i]))) return false;
    return true;
  };
  return sorted(s.keys, [](const GossipKey& k) { return k.id; }) &&
         sorted(s.schedule, [](const KeySchedule& k) { return k.id; }) &&
         sorted(s.revoked, [](const RevokedNode& k) { return k.node; }) &&
         sorted(s.authorities, [](const NodeId& n) { return n; });
}

constexpr int kRounds = 3000;

// ---------------------------------------------------------------------------
// Merge: a semilattice join.

TEST(SecurityStateMerge, IsIdempotent) {
  Gen g(0x5ec0001);
  for (int i = 0; i < kRounds; ++i) {
    SecurityState a = g.State();
    SecurityState copy = a;
    EXPECT_FALSE(Merge(copy, a)) << Describe(a);
    EXPECT_SAME_STATE(copy, a);
    // Merging a state into itself (the same object) too.
    EXPECT_FALSE(Merge(copy, copy)) << Describe(a);
    EXPECT_SAME_STATE(copy, a);
    // And joining what a join already holds.
    SecurityState b = g.State();
    SecurityState ab = Join(a, b);
    SecurityState again = ab;
    EXPECT_FALSE(Merge(again, b));
    EXPECT_FALSE(Merge(again, a));
    EXPECT_SAME_STATE(again, ab);
  }
}

TEST(SecurityStateMerge, IsCommutative) {
  Gen g(0x5ec0002);
  for (int i = 0; i < kRounds; ++i) {
    SecurityState a = g.State(), b = g.State();
    SecurityState ab = Join(a, b), ba = Join(b, a);
    EXPECT_SAME_STATE(ab, ba);
    EXPECT_TRUE(Sorted(ab)) << Describe(ab);
  }
}

TEST(SecurityStateMerge, IsCommutativeWhenAKeyIdAndItsBytesCollide) {
  // The same id and bytes, created at different times: every copy must
  // still end with the same entry.
  SecurityState a, b;
  AddKey(a, MakeKey(7, 0x11, kT0));
  AddKey(b, MakeKey(7, 0x11, kT0 + 5));
  EXPECT_SAME_STATE(Join(a, b), Join(b, a));
  // Different bytes: the smaller bytes win, whatever the creation times.
  SecurityState c;
  AddKey(c, MakeKey(7, 0x10, kT0 + 100));
  EXPECT_SAME_STATE(Join(a, c), Join(c, a));
  EXPECT_EQ(Join(a, c).keys.at(0).key[0], 0x10);
}

TEST(SecurityStateMerge, IsAssociative) {
  Gen g(0x5ec0003);
  for (int i = 0; i < kRounds; ++i) {
    SecurityState a = g.State(), b = g.State(), c = g.State();
    SecurityState left = Join(Join(a, b), c);
    SecurityState right = Join(a, Join(b, c));
    EXPECT_SAME_STATE(left, right);
  }
}

TEST(SecurityStateMerge, ReturnsTrueExactlyWhenTheStateChanged) {
  Gen g(0x5ec0004);
  int changed = 0, unchanged = 0;
  for (int i = 0; i < kRounds; ++i) {
    SecurityState a = g.State(), b = g.State();
    // Half the time b is made of a's parts, so "unchanged" is common too.
    if (g.Chance(50)) {
      SecurityState sub;
      for (const auto& k : a.keys)
        if (g.Chance(50)) AddKey(sub, k);
      for (const auto& e : a.schedule)
        if (g.Chance(50)) AddSchedule(sub, e);
      for (const auto& r : a.revoked)
        if (g.Chance(50)) AddRevoked(sub, r);
      for (const auto& n : a.authorities)
        if (g.Chance(50)) AddAuthorityNode(sub, n);
      b = sub;
    }
    SecurityState before = a;
    bool result = Merge(a, b);
    EXPECT_EQ(result, !(a == before)) << Describe(before) << "\n  merged with " << Describe(b);
    (result ? changed : unchanged)++;
  }
  EXPECT_GT(changed, kRounds / 10);
  EXPECT_GT(unchanged, kRounds / 10);
}

TEST(SecurityStateMerge, AnyOrderAnyDuplicationSameState) {
  Gen g(0x5ec0005);
  for (int round = 0; round < 300; ++round) {
    // A multiset: a few states, some of them several times.
    std::vector<SecurityState> bag;
    for (uint64_t n = 2 + g.Below(5); n > 0; --n) {
      SecurityState s = g.State();
      for (uint64_t copies = 1 + (g.Chance(40) ? g.Below(3) : 0); copies > 0; --copies) bag.push_back(s);
    }
    std::optional<SecurityState> first;
    for (int perm = 0; perm < 12; ++perm) {
      std::shuffle(bag.begin(), bag.end(), g.rng());
      SecurityState folded;
      if (perm % 3 == 0) {
        for (const auto& s : bag) Merge(folded, s);
      } else if (perm % 3 == 1) {
        // Start from one of them rather than from nothing.
        folded = bag.front();
        for (size_t i = 1; i < bag.size(); ++i) Merge(folded, bag[i]);
      } else {
        // A tree of pairwise joins (any grouping).
        std::vector<SecurityState> level = bag;
        while (level.size() > 1) {
          std::vector<SecurityState> next;
          for (size_t i = 0; i + 1 < level.size(); i += 2) next.push_back(Join(level[i], level[i + 1]));
          if (level.size() % 2) next.push_back(level.back());
          std::shuffle(next.begin(), next.end(), g.rng());
          level = std::move(next);
        }
        folded = level.front();
      }
      EXPECT_TRUE(Sorted(folded));
      if (!first) {
        first = folded;
      } else {
        EXPECT_SAME_STATE(folded, *first);
      }
    }
    // Nothing of the bag is new to the result.
    for (const auto& s : bag) {
      SecurityState copy = *first;
      EXPECT_FALSE(Merge(copy, s));
    }
  }
}

TEST(SecurityStateMerge, JoinsEachFieldAsDocumented) {
  SecurityState a, b;
  AddKey(a, MakeKey(5, 0x22));
  AddKey(b, MakeKey(5, 0x21));  // smaller bytes
  AddSchedule(a, {5, kT0 + 10, kT0 + 30});
  AddSchedule(b, {5, kT0 + 20, kT0 + 25});
  AddSchedule(a, {6, kT0, 0});
  AddSchedule(b, {6, 0, kT0 + 40});
  AddRevoked(a, {NodeId{1, 2}, "", kT0 + 9, "n"});
  AddRevoked(b, {NodeId{1, 2}, "abcd", kT0 + 3, ""});
  SecurityState j = Join(a, b);
  ASSERT_EQ(j.keys.size(), 1u);
  EXPECT_EQ(j.keys[0].key[0], 0x21);
  EXPECT_EQ(*j.ScheduleOf(5), (KeySchedule{5, kT0 + 20, kT0 + 25}));  // latest primary, earliest removal
  EXPECT_EQ(*j.ScheduleOf(6), (KeySchedule{6, kT0, kT0 + 40}));       // a removal is final
  ASSERT_NE(j.FindRevoked(NodeId{1, 2}), nullptr);
  EXPECT_EQ(*j.FindRevoked(NodeId{1, 2}), (RevokedNode{NodeId{1, 2}, "abcd", kT0 + 3, "n"}));
}

// ---------------------------------------------------------------------------
// The key schedule read at an instant.

TEST(SecurityStateKeys, StateFromKeyring) {
  Keyring ring;
  ring.keys = {MakeKey(30, 3), MakeKey(10, 1), MakeKey(20, 2)};
  ring.primary = 20;
  SecurityState s = StateFromKeyring(ring);
  ASSERT_EQ(s.keys.size(), 3u);
  EXPECT_EQ(s.keys[0].id, 10u);
  EXPECT_EQ(s.keys[1].id, 20u);
  EXPECT_EQ(s.keys[2].id, 30u);
  EXPECT_EQ(s.schedule, (std::vector<KeySchedule>{{10, 0, 0}, {20, 1, 0}, {30, 0, 0}}));
  EXPECT_TRUE(s.revoked.empty());
  Keyring eff = MustEffective(s, kT0);
  EXPECT_EQ(eff.primary, 20u);
  EXPECT_EQ(Ids(eff), (std::vector<uint32_t>{10, 20, 30}));
  EXPECT_TRUE(eff.Validate().ok());
  // Any later rotation overrides the primary-from-time-1 of the keyring.
  SecurityState later;
  AddSchedule(later, {30, kT0 + 5, 0});
  Merge(s, later);
  EXPECT_EQ(MustEffective(s, kT0 + 4).primary, 20u);
  EXPECT_EQ(MustEffective(s, kT0 + 5).primary, 30u);
}

TEST(SecurityStateKeys, PrimaryIsTheLatestDuePrimaryTiesByHigherId) {
  SecurityState s;
  AddKey(s, MakeKey(5, 5));
  AddKey(s, MakeKey(3, 3));
  AddKey(s, MakeKey(9, 9));
  AddKey(s, MakeKey(7, 7));
  AddSchedule(s, {5, kT0 + 100, 0});
  AddSchedule(s, {3, kT0 + 200, 0});
  AddSchedule(s, {9, kT0 + 300, 0});
  AddSchedule(s, {7, kT0 + 300, 0});  // tie with 9 at kT0+300: 9 wins
  EXPECT_EQ(MustEffective(s, kT0 + 100).primary, 5u);
  EXPECT_EQ(MustEffective(s, kT0 + 199).primary, 5u);
  EXPECT_EQ(MustEffective(s, kT0 + 200).primary, 3u);  // a lower id, but later
  EXPECT_EQ(MustEffective(s, kT0 + 299).primary, 3u);
  EXPECT_EQ(MustEffective(s, kT0 + 300).primary, 9u);
  EXPECT_EQ(MustEffective(s, kT0 + 100000).primary, 9u);
  EXPECT_EQ(Ids(MustEffective(s, kT0 + 300)), (std::vector<uint32_t>{3, 5, 7, 9}));
}

TEST(SecurityStateKeys, RemovedKeysAreExcludedFromTheirRemovalOn) {
  SecurityState s;
  AddKey(s, MakeKey(1, 1));
  AddKey(s, MakeKey(2, 2));
  AddSchedule(s, {1, 1, kT0 + 50});
  AddSchedule(s, {2, kT0 + 40, 0});
  EXPECT_EQ(Ids(MustEffective(s, kT0 + 49)), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(MustEffective(s, kT0 + 39).primary, 1u);
  EXPECT_EQ(MustEffective(s, kT0 + 40).primary, 2u);
  Keyring at = MustEffective(s, kT0 + 50);
  EXPECT_EQ(Ids(at), (std::vector<uint32_t>{2}));
  EXPECT_EQ(at.primary, 2u);
  // A removed key is not primary even when its primary_from is the latest.
  AddSchedule(s, {3, kT0 + 60, kT0 + 70});
  AddKey(s, MakeKey(3, 3));
  EXPECT_EQ(MustEffective(s, kT0 + 69).primary, 3u);
  EXPECT_EQ(MustEffective(s, kT0 + 70).primary, 2u);
  EXPECT_EQ(Ids(MustEffective(s, kT0 + 70)), (std::vector<uint32_t>{2}));
}

TEST(SecurityStateKeys, NotYetDuePrimaryFallsBackToTheNewestKeyHeld) {
  // Nothing is primary yet at kT0: the newest key held seals.
  SecurityState s;
  AddKey(s, MakeKey(4, 4, kT0 - 100));
  AddKey(s, MakeKey(8, 8, kT0 - 10));
  AddSchedule(s, {4, kT0 + 10, 0});
  AddSchedule(s, {8, kT0 + 20, 0});
  Keyring ring = MustEffective(s, kT0);
  EXPECT_EQ(ring.primary, 8u);
  EXPECT_EQ(Ids(ring), (std::vector<uint32_t>{4, 8}));
  EXPECT_TRUE(ring.Validate().ok());
  EXPECT_EQ(MustEffective(s, kT0 + 10).primary, 4u);  // then the schedule rules

  // "Newest" is the creation time, not the (random) id.
  SecurityState t;
  AddKey(t, MakeKey(0xf0000000u, 1, kT0 - 500));
  AddKey(t, MakeKey(0x00000010u, 2, kT0 - 5));
  AddSchedule(t, {0xf0000000u, kT0 + 10, 0});
  AddSchedule(t, {0x00000010u, kT0 + 20, 0});
  EXPECT_EQ(MustEffective(t, kT0).primary, 0x00000010u);

  // Keys without any schedule entry open but never seal by schedule.
  SecurityState u;
  AddKey(u, MakeKey(1, 1, kT0 - 9));
  AddKey(u, MakeKey(2, 2, kT0 - 99));
  AddSchedule(u, {2, kT0 - 50, 0});
  EXPECT_EQ(MustEffective(u, kT0).primary, 2u);
  EXPECT_EQ(Ids(MustEffective(u, kT0)), (std::vector<uint32_t>{1, 2}));
}

TEST(SecurityStateKeys, ErrorWhenNoKeyIsLeft) {
  EXPECT_EQ(EffectiveKeyring(SecurityState{}, kT0).status().code(), Status::Code::kInvalidArgument);
  SecurityState s;
  AddKey(s, MakeKey(1, 1));
  AddKey(s, MakeKey(2, 2));
  AddSchedule(s, {1, 1, kT0 + 5});
  AddSchedule(s, {2, 0, kT0 + 6});
  EXPECT_TRUE(EffectiveKeyring(s, kT0 + 5).ok());
  auto none = EffectiveKeyring(s, kT0 + 6);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Status::Code::kInvalidArgument);
  // A schedule without its key material holds no key either.
  SecurityState only_schedule;
  AddSchedule(only_schedule, {3, 1, 0});
  EXPECT_FALSE(EffectiveKeyring(only_schedule, kT0).ok());
}

TEST(SecurityStateKeys, EffectiveKeyringIsAlwaysAValidRing) {
  Gen g(0x5ec0006);
  for (int i = 0; i < kRounds; ++i) {
    SecurityState s = g.State();
    int64_t now = g.Time();
    auto ring = EffectiveKeyring(s, now);
    if (!ring.ok()) continue;
    EXPECT_TRUE(ring->Validate().ok()) << ring->Validate().ToString() << " " << Describe(s);
    for (const GossipKey& k : ring->keys) {
      const KeySchedule* e = s.ScheduleOf(k.id);
      EXPECT_FALSE(e && e->removed_from_unix != 0 && e->removed_from_unix <= now);
    }
  }
}

TEST(SecurityStateKeys, NextKeyChange) {
  SecurityState s;
  AddKey(s, MakeKey(1, 1));
  AddKey(s, MakeKey(2, 2));
  AddSchedule(s, {1, 1, kT0 + 20});
  AddSchedule(s, {2, kT0 + 10, 0});
  EXPECT_EQ(NextKeyChange(s, kT0), kT0 + 10);
  EXPECT_EQ(NextKeyChange(s, kT0 + 9), kT0 + 10);
  EXPECT_EQ(NextKeyChange(s, kT0 + 10), kT0 + 20);  // strictly after now
  EXPECT_EQ(NextKeyChange(s, kT0 + 19), kT0 + 20);
  EXPECT_EQ(NextKeyChange(s, kT0 + 20), std::nullopt);
  EXPECT_EQ(NextKeyChange(SecurityState{}, kT0), std::nullopt);
  // Times of a key whose material has not arrived change nothing yet.
  AddSchedule(s, {3, kT0 + 15, 0});
  EXPECT_EQ(NextKeyChange(s, kT0 + 10), kT0 + 20);
  AddKey(s, MakeKey(3, 3));
  EXPECT_EQ(NextKeyChange(s, kT0 + 10), kT0 + 15);

  // Property: EffectiveKeyring is constant between now and the next change.
  Gen g(0x5ec0007);
  for (int i = 0; i < 500; ++i) {
    SecurityState r = g.State();
    int64_t now = kT0 - 2;
    for (int steps = 0; steps < 40; ++steps) {
      std::optional<int64_t> next = NextKeyChange(r, now);
      int64_t until = next ? *next : now + 2000;
      auto at_now = EffectiveKeyring(r, now);
      for (int64_t t : {now + 1, (now + until) / 2, until - 1}) {
        if (t <= now || t >= until) continue;
        auto at_t = EffectiveKeyring(r, t);
        ASSERT_EQ(at_now.ok(), at_t.ok()) << Describe(r) << " now " << now << " t " << t;
        if (at_now.ok()) {
          EXPECT_TRUE(SameKeyring(*at_now, *at_t)) << Describe(r) << " now " << now << " t " << t;
        }
      }
      if (!next) break;
      EXPECT_GT(*next, now);
      now = *next;
    }
  }
}

TEST(SecurityStateKeys, PruneKeepsTombstonesAndALaggingCopyCannotReviveAKey) {
  Keyring ring;
  ring.keys = {MakeKey(100, 1, kT0 - 1000)};
  ring.primary = 100;
  SecurityState lagging = StateFromKeyring(ring);
  SecurityState s = lagging;
  ASSERT_TRUE(ScheduleRotation(s, MakeKey(200, 2, kT0), kT0).ok());
  const int64_t removal = kT0 + kRotationLead + kRotationOverlap;

  SecurityState early = s;
  PruneRemovedKeys(early, removal - 1);  // nothing removed yet
  EXPECT_SAME_STATE(early, s);

  PruneRemovedKeys(s, removal);
  ASSERT_EQ(s.keys.size(), 1u);
  EXPECT_EQ(s.keys[0].id, 200u);
  ASSERT_NE(s.ScheduleOf(100), nullptr);  // the tombstone stays
  EXPECT_EQ(s.ScheduleOf(100)->removed_from_unix, removal);

  // The lagging copy (still holding key 100 as its primary) is merged back.
  Merge(s, lagging);
  for (int64_t t = removal; t < removal + 1000; t += 7) {
    Keyring eff = MustEffective(s, t);
    EXPECT_EQ(eff.primary, 200u);
    EXPECT_EQ(Ids(eff), (std::vector<uint32_t>{200}));
  }
  EXPECT_EQ(s.ScheduleOf(100)->removed_from_unix, removal);
  PruneRemovedKeys(s, removal);
  EXPECT_EQ(s.keys.size(), 1u);
  // And the lagging copy, merging the pruned state, drops the key as well.
  Merge(lagging, s);
  EXPECT_EQ(Ids(MustEffective(lagging, removal)), (std::vector<uint32_t>{200}));
  PruneRemovedKeys(lagging, removal);
  ASSERT_EQ(lagging.keys.size(), 1u);
  EXPECT_EQ(lagging.keys[0].id, 200u);
  // Pruning is idempotent, and a no-op on a state without removals.
  SecurityState twice = lagging;
  PruneRemovedKeys(twice, removal + 5);
  EXPECT_SAME_STATE(twice, lagging);
}

TEST(SecurityStateKeys, ScheduleRotation) {
  Keyring ring;
  ring.keys = {MakeKey(11, 1, kT0 - 100), MakeKey(12, 2, kT0 - 50)};
  ring.primary = 12;
  SecurityState s = StateFromKeyring(ring);
  ASSERT_TRUE(ScheduleRotation(s, MakeKey(13, 3, kT0), kT0).ok());
  const int64_t due = kT0 + kRotationLead, removal = kT0 + kRotationLead + kRotationOverlap;
  EXPECT_EQ(*s.ScheduleOf(13), (KeySchedule{13, due, 0}));
  EXPECT_EQ(s.ScheduleOf(11)->removed_from_unix, removal);
  EXPECT_EQ(s.ScheduleOf(12)->removed_from_unix, removal);
  ASSERT_NE(std::find_if(s.keys.begin(), s.keys.end(), [](const GossipKey& k) { return k.id == 13; }), s.keys.end());

  // Before the lead: the old primary seals, the new key already opens.
  Keyring before = MustEffective(s, due - 1);
  EXPECT_EQ(before.primary, 12u);
  EXPECT_EQ(Ids(before), (std::vector<uint32_t>{11, 12, 13}));
  // The overlap: the new key seals, the old ones still open.
  for (int64_t t = due; t < removal; ++t) {
    Keyring during = MustEffective(s, t);
    EXPECT_EQ(during.primary, 13u) << t;
    EXPECT_EQ(Ids(during), (std::vector<uint32_t>{11, 12, 13})) << t;
  }
  // After it: the new key alone.
  Keyring after = MustEffective(s, removal);
  EXPECT_EQ(after.primary, 13u);
  EXPECT_EQ(Ids(after), (std::vector<uint32_t>{13}));
  EXPECT_EQ(NextKeyChange(s, kT0), due);
  EXPECT_EQ(NextKeyChange(s, due), removal);

  // A taken id is refused, and changes nothing: a held key, a pruned one
  // (its tombstone), or a schedule-only entry.
  SecurityState unchanged = s;
  Status taken = ScheduleRotation(s, MakeKey(12, 9, kT0 + 1), kT0 + 1);
  EXPECT_EQ(taken.code(), Status::Code::kInvalidArgument);
  EXPECT_NE(taken.message().find("12"), std::string::npos) << taken.message();
  EXPECT_SAME_STATE(s, unchanged);
  PruneRemovedKeys(s, removal);
  unchanged = s;
  EXPECT_FALSE(ScheduleRotation(s, MakeKey(11, 9, removal), removal).ok());
  EXPECT_SAME_STATE(s, unchanged);

  // A second rotation later removes only what opens then.
  ASSERT_TRUE(ScheduleRotation(s, MakeKey(14, 4, removal), removal).ok());
  EXPECT_EQ(s.ScheduleOf(11)->removed_from_unix, removal);  // final: not moved
  EXPECT_EQ(s.ScheduleOf(13)->removed_from_unix, removal + kRotationLead + kRotationOverlap);
  EXPECT_EQ(MustEffective(s, removal + kRotationLead).primary, 14u);

  // Without any key, nothing can be rotated.
  SecurityState empty;
  EXPECT_FALSE(ScheduleRotation(empty, MakeKey(1, 1), kT0).ok());
}

TEST(SecurityStateKeys, ManyRotationsInAFewSecondsKeepAStateThatEncodes) {
  // `ndo keys rotate` run again and again within one overlap: either a
  // rotation is refused, or the state (what is saved and exchanged) still
  // encodes once pruned, as the node does before saving it.
  Keyring ring;
  ring.keys = {MakeKey(1, 1)};
  ring.primary = 1;
  SecurityState s = StateFromKeyring(ring);
  int refused = 0, done = 0;
  for (uint32_t i = 0; i < 6 * kMaxGossipKeys; ++i) {
    int64_t now = kT0 + i / 4;
    PruneRemovedKeys(s, now);
    SecurityState before = s;
    Status st = ScheduleRotation(s, MakeKey(1000 + i, static_cast<uint8_t>(i), now), now);
    if (st.ok()) {
      ++done;
    } else {
      ++refused;
      EXPECT_SAME_STATE(s, before);  // a refusal changes nothing
    }
    PruneRemovedKeys(s, now);
    auto bytes = EncodeSecurityState(s);
    EXPECT_TRUE(bytes.ok()) << "after rotation " << i << " (" << st.ToString() << "), " << s.keys.size()
                            << " keys held: " << bytes.status().ToString();
    if (!bytes.ok()) break;
    EXPECT_LE(MustEffective(s, now).keys.size(), kMaxGossipKeys);
  }
  EXPECT_GT(done, static_cast<int>(kMaxGossipKeys));  // rotations resume once old keys are gone
  EXPECT_GT(refused, 0);
  // Long after, only the last key is left: every key that opened at a
  // rotation was scheduled for removal.
  int64_t later = kT0 + 1000;
  PruneRemovedKeys(s, later);
  EXPECT_EQ(MustEffective(s, later).keys.size(), 1u);
}

TEST(SecurityStateRevoke, IsIdempotentAndFound) {
  SecurityState s;
  RevokedNode r{NodeId{5, 6}, "0abc", kT0 + 10, "scanner-1"};
  Revoke(s, r);
  SecurityState once = s;
  Revoke(s, r);
  EXPECT_SAME_STATE(s, once);
  ASSERT_EQ(s.revoked.size(), 1u);
  ASSERT_NE(s.FindRevoked(NodeId{5, 6}), nullptr);
  EXPECT_EQ(*s.FindRevoked(NodeId{5, 6}), r);
  EXPECT_EQ(s.FindRevoked(NodeId{5, 7}), nullptr);
  EXPECT_EQ(s.FindRevoked(NodeId{}), nullptr);

  // Several, in any order: kept sorted and all found.
  Revoke(s, {NodeId{1, 1}, "", kT0, ""});
  Revoke(s, {NodeId{9, 0}, "ff", kT0, "z"});
  Revoke(s, {NodeId{3, 3}, "", kT0, ""});
  EXPECT_TRUE(Sorted(s));
  for (NodeId n : {NodeId{1, 1}, NodeId{3, 3}, NodeId{5, 6}, NodeId{9, 0}}) EXPECT_NE(s.FindRevoked(n), nullptr);
  // A later revocation of the same node keeps the earliest time and adds
  // what was missing.
  Revoke(s, {NodeId{1, 1}, "77", kT0 + 99, "late"});
  EXPECT_EQ(*s.FindRevoked(NodeId{1, 1}), (RevokedNode{NodeId{1, 1}, "77", kT0, "late"}));
  // Merging it into another state is final too.
  SecurityState other;
  EXPECT_TRUE(Merge(other, s));
  EXPECT_NE(other.FindRevoked(NodeId{5, 6}), nullptr);
  EXPECT_FALSE(Merge(other, s));
}

TEST(SecurityStateAuthorities, AddAuthorityIsIdempotentSortedAndMerged) {
  SecurityState s;
  EXPECT_TRUE(AddAuthority(s, NodeId{3, 0}));
  EXPECT_TRUE(AddAuthority(s, NodeId{1, 9}));
  EXPECT_FALSE(AddAuthority(s, NodeId{3, 0}));
  EXPECT_TRUE(AddAuthority(s, NodeId{2, 5}));
  EXPECT_EQ(s.authorities, (std::vector<NodeId>{NodeId{1, 9}, NodeId{2, 5}, NodeId{3, 0}}));
  SecurityState other;
  AddAuthority(other, NodeId{2, 5});
  AddAuthority(other, NodeId{4, 4});
  SecurityState j = s;
  EXPECT_TRUE(Merge(j, other));
  EXPECT_EQ(j.authorities, (std::vector<NodeId>{NodeId{1, 9}, NodeId{2, 5}, NodeId{3, 0}, NodeId{4, 4}}));
  EXPECT_FALSE(Merge(j, other));
  EXPECT_FALSE(Merge(j, s));
}

// ---------------------------------------------------------------------------
// A rotation scenario across three copies.

TEST(SecurityStateConvergence, ThreeCopiesConvergeWhateverTheExchangeOrder) {
  Keyring ring;
  ring.keys = {MakeKey(0x10, 1, kT0 - 3600)};
  ring.primary = 0x10;
  const SecurityState initial = StateFromKeyring(ring);
  const int64_t rotate_a = kT0, rotate_b = kT0 + 4;
  const GossipKey k2 = MakeKey(0x20, 2, rotate_a), k3 = MakeKey(0x08, 3, rotate_b);

  // What every copy must end up with: A rotated to k2 at rotate_a, B (not
  // having heard of it) to k3 at rotate_b.
  auto expected_at = [&](int64_t t) {
    SecurityState all = initial;
    SecurityState a = initial, b = initial;
    EXPECT_TRUE(ScheduleRotation(a, k2, rotate_a).ok());
    EXPECT_TRUE(ScheduleRotation(b, k3, rotate_b).ok());
    Merge(all, a);
    Merge(all, b);
    return MustEffective(all, t);
  };
  EXPECT_EQ(expected_at(rotate_a + kRotationLead).primary, 0x20u);
  EXPECT_EQ(expected_at(rotate_b + kRotationLead).primary, 0x08u);
  EXPECT_EQ(Ids(expected_at(kT0 + 100)), (std::vector<uint32_t>{0x08, 0x20}));  // k1 removed, k2 and k3 stay

  // Directed exchanges "i merges j's copy"; every permutation of the six,
  // done twice (so news travels two hops), each copy pruning as it merges.
  std::vector<std::pair<int, int>> pairs = {{0, 1}, {0, 2}, {1, 0}, {1, 2}, {2, 0}, {2, 1}};
  std::sort(pairs.begin(), pairs.end());
  int permutations = 0;
  do {
    std::array<SecurityState, 3> copy = {initial, initial, initial};
    int64_t now = kT0;
    ASSERT_TRUE(ScheduleRotation(copy[0], k2, rotate_a).ok());
    ASSERT_TRUE(ScheduleRotation(copy[1], k3, rotate_b).ok());
    now = rotate_b + 1;
    for (int pass = 0; pass < 2; ++pass) {
      for (auto [i, j] : pairs) {
        now += 2;  // exchanges run across the rotation's lead and overlap
        PruneRemovedKeys(copy[i], now);
        SecurityState from = copy[j];
        Merge(copy[i], from);
        PruneRemovedKeys(copy[i], now);
      }
    }
    for (int64_t t = now; t < now + 60; ++t) {
      Keyring want = expected_at(t);
      for (int c = 0; c < 3; ++c)
        ASSERT_TRUE(SameKeyring(MustEffective(copy[c], t), want))
            << "copy " << c << " at +" << (t - kT0) << ": " << Describe(MustEffective(copy[c], t)) << " want "
            << Describe(want);
    }
    // Pruned at one instant, the copies are identical.
    for (auto& c : copy) PruneRemovedKeys(c, now + 60);
    EXPECT_SAME_STATE(copy[0], copy[1]);
    EXPECT_SAME_STATE(copy[1], copy[2]);
    ++permutations;
  } while (std::next_permutation(pairs.begin(), pairs.end()) && !::testing::Test::HasFatalFailure());
  EXPECT_EQ(permutations, 720);
}

TEST(SecurityStateConvergence, RandomGossipAmongThreeCopiesAgreesAtEveryInstant) {
  Gen g(0x5ec0008);
  Keyring ring;
  ring.keys = {MakeKey(0x77, 7, kT0 - 3600)};
  ring.primary = 0x77;
  for (int round = 0; round < 200; ++round) {
    std::array<SecurityState, 3> copy;
    copy.fill(StateFromKeyring(ring));
    int64_t now = kT0;
    uint32_t next_id = 0x1000;
    // A few rotations by random copies, interleaved with random exchanges.
    for (int step = 0; step < 30; ++step) {
      now += static_cast<int64_t>(g.Below(6));
      int i = static_cast<int>(g.Below(3));
      if (g.Chance(15)) {
        PruneRemovedKeys(copy[i], now);
        ASSERT_TRUE(ScheduleRotation(copy[i], MakeKey(next_id++, static_cast<uint8_t>(step), now), now).ok());
      } else {
        int j = static_cast<int>((i + 1 + g.Below(2)) % 3);
        PruneRemovedKeys(copy[i], now);
        Merge(copy[i], copy[j]);
      }
    }
    // Then enough exchanges for everything to reach everyone.
    for (int pass = 0; pass < 2; ++pass)
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j)
          if (i != j) Merge(copy[i], copy[j]);
    for (int64_t t = now; t < now + 80; ++t) {
      auto a = EffectiveKeyring(copy[0], t), b = EffectiveKeyring(copy[1], t), c = EffectiveKeyring(copy[2], t);
      ASSERT_TRUE(a.ok() && b.ok() && c.ok()) << "round " << round << " at " << t;
      ASSERT_TRUE(SameKeyring(*a, *b) && SameKeyring(*b, *c))
          << "round " << round << " at +" << (t - kT0) << ": " << Describe(*a) << " / " << Describe(*b) << " / "
          << Describe(*c);
    }
  }
}

// ---------------------------------------------------------------------------
// The codec.

// A state that encodes: at most kMaxGossipKeys keys, revoked nodes with an
// id, a serial of at most 40 and a name of at most kMaxNameBytes bytes.
SecurityState EncodableState(Gen& g) {
  SecurityState s = g.State();
  std::erase_if(s.revoked, [](const RevokedNode& r) { return r.node.empty(); });
  if (s.keys.size() > kMaxGossipKeys) s.keys.resize(kMaxGossipKeys);
  return s;
}

std::string MustEncode(const SecurityState& s) {
  auto bytes = EncodeSecurityState(s);
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  return bytes.ok() ? *bytes : std::string();
}

// Builds a SecurityState message by hand (for what the encoder refuses).
struct RawState {
  std::vector<KeySchedule> schedule;
  std::vector<RevokedNode> revoked;
  std::string keys;  // an encoded keyring, or anything
  std::vector<NodeId> authorities = {};
};

std::string EncodeRaw(const RawState& raw) {
  capnp::MallocMessageBuilder msg;
  auto root = msg.initRoot<schema::SecurityState>();
  root.setKeys(kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(raw.keys.data()), raw.keys.size()));
  auto schedule = root.initSchedule(static_cast<unsigned>(raw.schedule.size()));
  for (unsigned i = 0; i < raw.schedule.size(); ++i) {
    schedule[i].setId(raw.schedule[i].id);
    schedule[i].setPrimaryFromUnix(raw.schedule[i].primary_from_unix);
    schedule[i].setRemovedFromUnix(raw.schedule[i].removed_from_unix);
  }
  auto revoked = root.initRevoked(static_cast<unsigned>(raw.revoked.size()));
  for (unsigned i = 0; i < raw.revoked.size(); ++i) {
    revoked[i].setIdHi(raw.revoked[i].node.hi);
    revoked[i].setIdLo(raw.revoked[i].node.lo);
    revoked[i].setSerial(raw.revoked[i].serial_hex);
    revoked[i].setRevokedUnix(raw.revoked[i].revoked_unix);
    revoked[i].setName(raw.revoked[i].name);
  }
  auto authorities = root.initAuthorities(static_cast<unsigned>(raw.authorities.size()));
  for (unsigned i = 0; i < raw.authorities.size(); ++i) {
    authorities[i].setIdHi(raw.authorities[i].hi);
    authorities[i].setIdLo(raw.authorities[i].lo);
  }
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// A keyring message with the keys in the order given (repeats allowed).
std::string RawKeyring(const std::vector<GossipKey>& keys, uint32_t primary) {
  capnp::MallocMessageBuilder msg;
  auto root = msg.initRoot<schema::Keyring>();
  root.setPrimary(primary);
  auto list = root.initKeys(static_cast<unsigned>(keys.size()));
  for (unsigned i = 0; i < keys.size(); ++i) {
    list[i].setId(keys[i].id);
    list[i].setKey(capnp::Data::Reader(keys[i].key.data(), keys[i].key.size()));
    list[i].setCreatedUnix(keys[i].created_unix);
  }
  auto words = capnp::messageToFlatArray(msg);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

TEST(SecurityStateCodec, RoundTrip) {
  Gen g(0x5ec0009);
  for (int i = 0; i < 1000; ++i) {
    SecurityState s = EncodableState(g);
    std::string bytes = MustEncode(s);
    auto back = DecodeSecurityState(bytes);
    ASSERT_TRUE(back.ok()) << back.status().ToString() << " " << Describe(s);
    EXPECT_SAME_STATE(*back, s);
    EXPECT_EQ(MustEncode(*back), bytes);  // canonical
  }
  auto empty = DecodeSecurityState(MustEncode(SecurityState{}));
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_SAME_STATE(*empty, SecurityState{});
  // The largest lists allowed round-trip too.
  SecurityState big;
  for (uint32_t i = 0; i < kMaxGossipKeys; ++i) AddKey(big, MakeKey(i + 1, static_cast<uint8_t>(i)));
  for (uint32_t i = 0; i < kMaxKeySchedules; ++i) big.schedule.push_back({i + 1, kT0 + i, i % 2 ? kT0 + 2 * i : 0});
  for (uint64_t i = 0; i < 1000; ++i)
    big.revoked.push_back({NodeId{7, i + 1}, std::string(40, 'a'), kT0, std::string(kMaxNameBytes, 'n')});
  auto big_back = DecodeSecurityState(MustEncode(big));
  ASSERT_TRUE(big_back.ok()) << big_back.status().ToString();
  EXPECT_TRUE(*big_back == big);
}

TEST(SecurityStateCodec, RefusesGarbageAndEveryTruncation) {
  for (std::string_view garbage : {std::string_view(""), std::string_view("x"), std::string_view("not capnp"),
                                   std::string_view("12345678"), std::string_view("\xff\xff\xff\xff\0\0\0\0", 8)})
    EXPECT_FALSE(DecodeSecurityState(garbage).ok()) << garbage;
  Gen g(0x5ec000a);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(8 * (1 + g.Below(64)), '\0');
    for (char& c : junk) c = static_cast<char>(g.rng()());
    junk[3] = '\x7f';  // a segment count no message has
    EXPECT_FALSE(DecodeSecurityState(junk).ok());
    // Whatever the bytes, no crash; what decodes is sorted and encodes.
    junk[3] = 0;
    junk[0] = 0;
    auto any = DecodeSecurityState(junk);
    if (any.ok()) {
      EXPECT_TRUE(Sorted(*any));
      EXPECT_TRUE(EncodeSecurityState(*any).ok());
    }
  }
  for (int i = 0; i < 30; ++i) {
    SecurityState s = EncodableState(g);
    if (s.keys.empty()) AddKey(s, MakeKey(3, 3));
    AddRevoked(s, {NodeId{0xabc, 1}, "01ff", kT0, "some-name"});
    std::string bytes = MustEncode(s);
    for (size_t n = 0; n < bytes.size(); ++n)
      EXPECT_FALSE(DecodeSecurityState(std::string_view(bytes).substr(0, n)).ok()) << n << " of " << bytes.size();
    // Trailing bytes that are not whole words.
    EXPECT_FALSE(DecodeSecurityState(bytes + "abc").ok());
    // Any single corrupted byte: refused or decoded into a valid state.
    for (size_t at = 0; at < bytes.size(); ++at) {
      std::string flipped = bytes;
      flipped[at] = static_cast<char>(flipped[at] ^ (1 << (at % 8)));
      auto r = DecodeSecurityState(flipped);
      if (r.ok()) {
        EXPECT_TRUE(Sorted(*r));
      }
    }
  }
}

TEST(SecurityStateCodec, RefusesUnsortedOrRepeatedEntries) {
  std::string ring = RawKeyring({MakeKey(1, 1)}, 1);
  // Schedules.
  EXPECT_TRUE(DecodeSecurityState(EncodeRaw({{{3, 1, 0}, {5, 0, 0}}, {}, ring})).ok());
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw({{{5, 1, 0}, {3, 0, 0}}, {}, ring})).ok());
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw({{{3, 1, 0}, {3, 1, 0}}, {}, ring})).ok());
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw({{{3, 1, 0}, {3, 2, 9}}, {}, ring})).ok());
  // Revoked nodes.
  RevokedNode a{NodeId{1, 1}, "", kT0, ""}, b{NodeId{1, 2}, "", kT0, ""};
  EXPECT_TRUE(DecodeSecurityState(EncodeRaw({{}, {a, b}, ""})).ok());
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw({{}, {b, a}, ""})).ok());
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw({{}, {a, a}, ""})).ok());
  // Keys: a repeated id is refused; keys out of order are put in order.
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw({{}, {}, RawKeyring({MakeKey(4, 1), MakeKey(4, 2)}, 4)})).ok());
  auto sorted = DecodeSecurityState(EncodeRaw({{}, {}, RawKeyring({MakeKey(9, 1), MakeKey(4, 2)}, 9)}));
  ASSERT_TRUE(sorted.ok()) << sorted.status().ToString();
  ASSERT_EQ(sorted->keys.size(), 2u);
  EXPECT_EQ(sorted->keys[0].id, 4u);
  EXPECT_EQ(sorted->keys[1].id, 9u);
  // Key material that is no keyring.
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw({{}, {}, "12345678"})).ok());
  // Authorities.
  EXPECT_TRUE(DecodeSecurityState(EncodeRaw({{}, {}, "", {NodeId{1, 1}, NodeId{1, 2}}})).ok());
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw({{}, {}, "", {NodeId{1, 2}, NodeId{1, 1}}})).ok());
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw({{}, {}, "", {NodeId{1, 2}, NodeId{1, 2}}})).ok());
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw({{}, {}, RawKeyring({}, 0)})).ok());
}

TEST(SecurityStateCodec, RefusesOversizedListsAndFields) {
  // Schedules: the limit passes, one more does not (either way).
  RawState raw;
  for (uint32_t i = 0; i <= kMaxKeySchedules; ++i) raw.schedule.push_back({i + 1, 0, 0});
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw(raw)).ok());
  raw.schedule.pop_back();
  EXPECT_TRUE(DecodeSecurityState(EncodeRaw(raw)).ok());
  SecurityState too_many_schedules;
  for (uint32_t i = 0; i <= kMaxKeySchedules; ++i) too_many_schedules.schedule.push_back({i + 1, 0, 0});
  EXPECT_FALSE(EncodeSecurityState(too_many_schedules).ok());

  // Revoked nodes.
  RawState revoked;
  for (uint64_t i = 0; i <= kMaxRevokedNodes; ++i) revoked.revoked.push_back({NodeId{1, i + 1}, "", kT0, ""});
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw(revoked)).ok());
  SecurityState too_many_revoked;
  too_many_revoked.revoked = revoked.revoked;
  EXPECT_FALSE(EncodeSecurityState(too_many_revoked).ok());
  revoked.revoked.pop_back();
  EXPECT_TRUE(DecodeSecurityState(EncodeRaw(revoked)).ok());

  // Keys: more than a keyring holds.
  std::vector<GossipKey> keys;
  for (uint32_t i = 0; i <= kMaxGossipKeys; ++i) keys.push_back(MakeKey(i + 1, 1));
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw({{}, {}, RawKeyring(keys, 1)})).ok());

  // Fields of a revoked node.
  RevokedNode ok{NodeId{1, 1}, std::string(40, 'f'), kT0, std::string(kMaxNameBytes, 'n')};
  EXPECT_TRUE(DecodeSecurityState(EncodeRaw({{}, {ok}, ""})).ok());
  RevokedNode long_serial = ok;
  long_serial.serial_hex += "f";
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw({{}, {long_serial}, ""})).ok());
  RevokedNode long_name = ok;
  long_name.name += "n";
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw({{}, {long_name}, ""})).ok());
  RevokedNode no_id = ok;
  no_id.node = NodeId{};
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw({{}, {no_id}, ""})).ok());

  // Authorities: at most kMaxAuthorities, none empty.
  RawState authorities;
  for (uint64_t i = 0; i <= kMaxAuthorities; ++i) authorities.authorities.push_back(NodeId{9, i + 1});
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw(authorities)).ok());
  SecurityState too_many_authorities;
  too_many_authorities.authorities = authorities.authorities;
  EXPECT_FALSE(EncodeSecurityState(too_many_authorities).ok());
  authorities.authorities.pop_back();
  EXPECT_TRUE(DecodeSecurityState(EncodeRaw(authorities)).ok());
  EXPECT_FALSE(DecodeSecurityState(EncodeRaw({{}, {}, "", {NodeId{}}})).ok());

  // A message above the byte limit is refused before it is parsed.
  std::string huge(kMaxSecurityStateBytes + 8, '\0');
  EXPECT_FALSE(DecodeSecurityState(huge).ok());
}

}  // namespace
}  // namespace ndo::mesh
