// The replicated scan state: the merge is a semilattice join (checked as
// properties over replicas that random operations drove apart: control
// changes stamped by several nodes' clocks, lease grants by coordinators of
// several epochs, shards declared done with a few digests by many holders),
// each field's rule, the hybrid logical clock, and the bounded codec.
#include "mesh/work/pool_state.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "mesh/work/pool_state.capnp.h"

namespace ndo::mesh {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;  // ms

NodeId Node(uint64_t n) { return NodeId{0xa0 + n, n}; }

ScanDefinition Definition(uint64_t seed = 7, uint32_t shards = 4,
                          std::vector<std::string> vantages = {"dmz", "wifi"}) {
  ScanDefinition def;
  def.spec.arguments = {"ndo", "10.0.0.0/24", "-p", "22,80,443"};
  def.spec.targets.addresses.Add({IpAddress::FromV4(0x0a000000).value(), IpAddress::FromV4(0x0a0000ff).value()});
  def.spec.ports = {22, 80, 443};
  def.spec.seed = seed;
  def.spec.shard_count = shards;
  def.vantages = std::move(vantages);
  def.created_ms = kT0;
  def.submitter = Node(1);
  return def;
}

ScanState NewState(ScanDefinition def = Definition()) {
  auto s = NewScanState(std::move(def), HlcStamp{kT0, 0, Node(1)});
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : ScanState{};
}

std::string Bytes(const ScanState& s) {
  auto b = EncodeScanState(s);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return b.ok() ? *b : std::string();
}

ScanState Join(ScanState a, const ScanState& b) {
  Status st = MergeScanState(a, b);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return a;
}

Digest DigestOf(uint8_t fill) {
  Digest d;
  d.fill(fill);
  return d;
}

ShardDone Done(uint8_t digest, std::vector<NodeId> holders) {
  std::sort(holders.begin(), holders.end());
  holders.erase(std::unique(holders.begin(), holders.end()), holders.end());
  return ShardDone{true, uint64_t{digest} * 10, DigestOf(digest), std::move(holders)};
}

// Re-encodes a flat message of `Root` after `edit` changed it: the hostile
// inputs the encoder refuses to make.
template <typename Root, typename Edit>
std::string Edited(const std::string& bytes, Edit&& edit) {
  auto words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  capnp::FlatArrayMessageReader reader(words.asPtr());
  capnp::MallocMessageBuilder msg;
  msg.setRoot(reader.getRoot<Root>());
  edit(msg.getRoot<Root>());
  auto flat = capnp::messageToFlatArray(msg);
  auto out = flat.asBytes();
  return std::string(reinterpret_cast<const char*>(out.begin()), out.size());
}

kj::ArrayPtr<const kj::byte> AsData(const std::string& s) {
  return kj::ArrayPtr<const kj::byte>(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

// A state whose definition was edited, with the id recomputed so that only
// the definition's own checks can refuse it.
template <typename Edit>
std::string WithDefinition(const ScanState& s, Edit&& edit) {
  std::string def = Edited<schema::ScanDefinition>(s.definition_bytes, edit);
  ScanId id = ScanDefinitionId(def);
  return Edited<schema::ScanState>(Bytes(s), [&](schema::ScanState::Builder b) {
    b.setDefinition(AsData(def));
    b.setId(kj::ArrayPtr<const kj::byte>(id.data(), id.size()));
  });
}

// ---------------------------------------------------------------------------
// Random replicas of one scan.

class Sim {
 public:
  static constexpr size_t kNodes = 20;  // holders beyond kMaxShardHolders, so unions truncate

  Sim(uint64_t seed, size_t replicas) : rng_(seed) {
    for (size_t i = 0; i < replicas; ++i) {
      replicas_.push_back({NewState(), HybridClock(Node(i + 1)), static_cast<int64_t>(Below(101)) - 50});
    }
  }

  uint64_t Below(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  bool Chance(unsigned percent) { return Below(100) < percent; }

  // `ops` random operations at random replicas, the clock moving on a few
  // ms (each node's wall clock skewed by up to 50 ms) between them.
  void Run(int ops) {
    for (int i = 0; i < ops; ++i) {
      now_ += static_cast<int64_t>(Below(4));
      Replica& r = replicas_[Below(replicas_.size())];
      int64_t wall = now_ + r.skew;
      ScanState& s = r.state;
      ShardState& shard = s.pools[Below(s.pools.size())][Below(s.pools[0].size())];
      switch (Below(5)) {
        case 0: {  // a user's pause, resume or stop, at this node
          auto value = static_cast<ScanControl>(Chance(20) ? 2 : Below(2));
          s.control = JoinControl(s.control, ControlRegister{value, r.clock.Now(wall)});
          break;
        }
        case 1: {  // a grant or renewal by the coordinator of some epoch
          uint64_t epoch = 1 + Below(3);
          uint64_t counter = Chance(80) ? ++counters_[epoch] : Below(counters_[epoch] + 1);
          shard.lease = JoinLease(shard.lease, ShardLease{Node(1 + Below(kNodes)), epoch, counter,
                                                          wall + static_cast<int64_t>(Below(3)) * 10'000});
          break;
        }
        case 2: {  // a shard declared done: one of three bundles, a few holders
          std::vector<NodeId> holders;
          for (uint64_t n = 1 + Below(6); n > 0; --n) holders.push_back(Node(1 + Below(kNodes)));
          shard.done = JoinDone(shard.done, Done(static_cast<uint8_t>(1 + Below(3)), holders));
          break;
        }
        default: {  // a sync: another copy merged in, its stamp observed
          const Replica& from = replicas_[Below(replicas_.size())];
          Status st = MergeScanState(s, from.state);
          ASSERT_TRUE(st.ok()) << st.ToString();
          r.clock.Observe(from.state.control.stamp, wall);
          break;
        }
      }
    }
  }

  std::vector<ScanState> States() const {
    std::vector<ScanState> out;
    for (const Replica& r : replicas_) out.push_back(r.state);
    return out;
  }

 private:
  struct Replica {
    ScanState state;
    HybridClock clock;
    int64_t skew;
  };
  std::mt19937_64 rng_;
  std::vector<Replica> replicas_;
  std::map<uint64_t, uint64_t> counters_;
  int64_t now_ = kT0;
};

constexpr int kIterations = 300;

// ---------------------------------------------------------------------------
// MergeScanState: a semilattice join.

TEST(PoolStateMerge, IsIdempotentAndReportsNoChange) {
  for (int it = 0; it < kIterations; ++it) {
    Sim sim(0x9001 + it, 3);
    sim.Run(40);
    for (const ScanState& s : sim.States()) {
      ScanState copy = s;
      bool changed = true;
      ASSERT_TRUE(MergeScanState(copy, s, &changed).ok());
      EXPECT_FALSE(changed);
      EXPECT_EQ(Bytes(copy), Bytes(s));
    }
  }
}

TEST(PoolStateMerge, IsCommutativeAndAssociative) {
  for (int it = 0; it < kIterations; ++it) {
    Sim sim(0x9002 + it, 3);
    sim.Run(40);
    auto s = sim.States();
    EXPECT_EQ(Bytes(Join(s[0], s[1])), Bytes(Join(s[1], s[0]))) << "iteration " << it;
    EXPECT_EQ(Bytes(Join(s[1], s[2])), Bytes(Join(s[2], s[1]))) << "iteration " << it;
    EXPECT_EQ(Bytes(Join(Join(s[0], s[1]), s[2])), Bytes(Join(s[0], Join(s[1], s[2])))) << "iteration " << it;
    EXPECT_EQ(Bytes(Join(Join(s[2], s[0]), s[1])), Bytes(Join(s[2], Join(s[0], s[1])))) << "iteration " << it;
  }
}

TEST(PoolStateMerge, EveryOrderWithDuplicatesGivesTheSameBytes) {
  // Fewer runs than elsewhere: each folds 24 orders of four copies.
  for (int it = 0; it < 2 * kIterations / 3; ++it) {
    Sim sim(0x9003 + it, 4);
    sim.Run(60);
    auto s = sim.States();
    std::mt19937_64 rng(it);
    std::vector<size_t> order(s.size());
    std::iota(order.begin(), order.end(), 0);
    std::string expected;
    do {
      // Each copy once in this order, plus two copies again anywhere.
      std::vector<size_t> seq = order;
      for (int d = 0; d < 2; ++d) seq.insert(seq.begin() + rng() % (seq.size() + 1), rng() % s.size());
      bool first = expected.empty();
      ScanState acc = s[seq[0]];
      for (size_t i = 1; i < seq.size(); ++i) {
        std::string before = first ? Bytes(acc) : "";
        bool changed = false;
        ASSERT_TRUE(MergeScanState(acc, s[seq[i]], &changed).ok());
        if (first) EXPECT_EQ(changed, Bytes(acc) != before);  // changed exactly when the bytes did
      }
      if (first) expected = Bytes(acc);
      EXPECT_EQ(Bytes(acc), expected) << "iteration " << it;
    } while (std::next_permutation(order.begin(), order.end()));
    // The join is an upper bound: no copy adds anything to it.
    ScanState total = *DecodeScanState(expected);
    for (const ScanState& c : s) {
      bool changed = true;
      ASSERT_TRUE(MergeScanState(total, c, &changed).ok());
      EXPECT_FALSE(changed);
    }
  }
}

// Each field's rule over small domains, so that ties of every kind occur
// (equal stamps with different values, equal (epoch, counter) with
// different holders, equal digests with different holders).
TEST(PoolStateMerge, FieldJoinsAreSemilatticeJoins) {
  std::mt19937_64 rng(0x9004);
  auto below = [&](uint64_t n) { return rng() % n; };
  std::vector<ControlRegister> controls;
  std::vector<ShardLease> leases;
  std::vector<ShardDone> dones;
  for (int i = 0; i < 24; ++i) {
    controls.push_back({static_cast<ScanControl>(below(3)),
                        HlcStamp{static_cast<int64_t>(below(2)), static_cast<uint32_t>(below(2)), Node(below(2))}});
    leases.push_back({Node(below(3)), below(2), below(2), static_cast<int64_t>(below(2))});
    if (below(4) == 0) {
      dones.push_back({});
    } else {
      std::vector<NodeId> holders;
      for (uint64_t n = below(12); n > 0; --n) holders.push_back(Node(1 + below(24)));
      dones.push_back(Done(static_cast<uint8_t>(1 + below(2)), holders));
    }
  }
  auto check = [](const auto& values, auto join) {
    for (const auto& a : values) {
      EXPECT_TRUE(join(a, a) == a);
      for (const auto& b : values) {
        EXPECT_TRUE(join(a, b) == join(b, a));
        for (const auto& c : values) EXPECT_TRUE(join(join(a, b), c) == join(a, join(b, c)));
      }
    }
  };
  check(controls, JoinControl);
  check(leases, JoinLease);
  check(dones, JoinDone);
}

TEST(PoolStateMerge, StoppedIsFinal) {
  ControlRegister stop_early{ScanControl::kStopped, HlcStamp{100, 0, Node(1)}};
  ControlRegister stop_late{ScanControl::kStopped, HlcStamp{300, 0, Node(2)}};
  for (ScanControl later : {ScanControl::kRunning, ScanControl::kPaused}) {
    ControlRegister after{later, HlcStamp{200, 5, Node(3)}};
    EXPECT_EQ(JoinControl(stop_early, after), stop_early);
    EXPECT_EQ(JoinControl(after, stop_early), stop_early);
  }
  // Of two stops, the earlier, whichever arrives first.
  EXPECT_EQ(JoinControl(stop_late, stop_early), stop_early);
  EXPECT_EQ(JoinControl(stop_early, stop_late), stop_early);
  // Otherwise the later stamp.
  ControlRegister pause{ScanControl::kPaused, HlcStamp{100, 0, Node(1)}};
  ControlRegister resume{ScanControl::kRunning, HlcStamp{100, 1, Node(1)}};
  EXPECT_EQ(JoinControl(pause, resume), resume);
  EXPECT_EQ(JoinControl(resume, pause), resume);

  // In a state: one copy stops, another resumes later; the merge stays stopped.
  ScanState a = NewState(), b = NewState();
  a.control = stop_early;
  b.control = ControlRegister{ScanControl::kRunning, HlcStamp{kT0 + 1000, 0, Node(2)}};
  EXPECT_EQ(Join(a, b).control, stop_early);
  EXPECT_EQ(Join(b, a).control, stop_early);
}

TEST(PoolStateMerge, HigherEpochLeaseWinsWhateverItsCounter) {
  ShardLease old_coordinator{Node(1), 1, 1'000'000, kT0 + 90'000};
  ShardLease successor{Node(2), 2, 1, kT0 + 10'000};
  EXPECT_EQ(JoinLease(old_coordinator, successor), successor);
  EXPECT_EQ(JoinLease(successor, old_coordinator), successor);
  // Within an epoch, the later grant.
  ShardLease renewal{Node(2), 2, 2, kT0 + 20'000};
  EXPECT_EQ(JoinLease(renewal, successor), renewal);
  // A tie of (epoch, counter) is broken the same way in both orders.
  ShardLease twin{Node(3), 2, 2, kT0 + 20'000};
  EXPECT_EQ(JoinLease(renewal, twin), JoinLease(twin, renewal));
  EXPECT_EQ(JoinLease(renewal, twin), twin);
  EXPECT_EQ(JoinLease(ShardLease{}, renewal), renewal);
}

TEST(PoolStateMerge, DoneNeverFlipsBack) {
  ScanState pending = NewState(), done = NewState();
  done.pools[1][3].done = Done(7, {Node(1), Node(2)});
  bool changed = true;
  ScanState a = done;
  ASSERT_TRUE(MergeScanState(a, pending, &changed).ok());
  EXPECT_FALSE(changed);
  EXPECT_TRUE(a.pools[1][3].done.done);
  ScanState b = pending;
  ASSERT_TRUE(MergeScanState(b, done, &changed).ok());
  EXPECT_TRUE(changed);
  EXPECT_EQ(b.pools[1][3].done, done.pools[1][3].done);
  // A later lease does not undo it either.
  b.pools[1][3].lease = ShardLease{Node(4), 9, 9, kT0};
  EXPECT_TRUE(Join(b, pending).pools[1][3].done.done);
}

TEST(PoolStateMerge, ReportsTheShardsWhoseDoneRecordChanged) {
  ScanState into = NewState(), other = NewState();
  other.pools[1][3].done = Done(7, {Node(1), Node(2)});
  other.pools[0][1].done = Done(5, {Node(1), Node(2)});
  other.pools[0][2].lease = ShardLease{Node(4), 1, 1, kT0};  // a lease alone is no done record
  into.pools[0][1].done = Done(5, {Node(1), Node(2)});       // already known
  std::vector<std::pair<uint32_t, uint32_t>> done_changed;
  bool changed = false;
  ASSERT_TRUE(MergeScanState(into, other, &changed, &done_changed).ok());
  EXPECT_TRUE(changed);
  EXPECT_EQ(done_changed, (std::vector<std::pair<uint32_t, uint32_t>>{{1, 3}}));
  // More holders of the same bundle change the record too.
  other.pools[0][1].done = Done(5, {Node(3), Node(4)});
  done_changed.clear();
  ASSERT_TRUE(MergeScanState(into, other, &changed, &done_changed).ok());
  EXPECT_EQ(done_changed, (std::vector<std::pair<uint32_t, uint32_t>>{{0, 1}}));
  done_changed.clear();
  ASSERT_TRUE(MergeScanState(into, other, &changed, &done_changed).ok());
  EXPECT_FALSE(changed);
  EXPECT_TRUE(done_changed.empty());
}

TEST(PoolStateMerge, DoneRecordsJoinByDigestThenUniteHolders) {
  ShardDone small = Done(1, {Node(1), Node(2)}), large = Done(2, {Node(3), Node(4)});
  EXPECT_EQ(JoinDone(small, large), large);
  EXPECT_EQ(JoinDone(large, small), large);
  EXPECT_EQ(JoinDone(ShardDone{}, small), small);

  ShardDone other_holders = Done(2, {Node(2), Node(4), Node(5)});
  ShardDone joined = JoinDone(large, other_holders);
  EXPECT_EQ(joined.digest, large.digest);
  EXPECT_EQ(joined.results, large.results);
  EXPECT_EQ(joined.holders, (std::vector<NodeId>{Node(2), Node(3), Node(4), Node(5)}));

  // More than kMaxShardHolders: the smallest ids stay.
  std::vector<NodeId> low, high;
  for (uint64_t i = 0; i < 12; ++i) low.push_back(Node(2 * i + 1)), high.push_back(Node(2 * i + 2));
  ShardDone many = JoinDone(Done(2, low), Done(2, high));
  ASSERT_EQ(many.holders.size(), kMaxShardHolders);
  for (size_t i = 0; i < kMaxShardHolders; ++i) EXPECT_EQ(many.holders[i], Node(i + 1));
}

TEST(PoolStateMerge, DefinitionMismatchIsRefusedAndChangesNothing) {
  ScanState a = NewState(), other_scan = NewState(Definition(8));
  ASSERT_NE(a.id, other_scan.id);
  other_scan.control.value = ScanControl::kStopped;
  std::string before = Bytes(a);
  bool changed = true;
  Status st = MergeScanState(a, other_scan, &changed);
  EXPECT_EQ(st.code(), Status::Code::kInvalidArgument);
  EXPECT_FALSE(changed);
  EXPECT_EQ(Bytes(a), before);

  // The same id claiming another definition (only a forged copy could).
  ScanState forged = other_scan;
  forged.id = a.id;
  EXPECT_EQ(MergeScanState(a, forged).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Bytes(a), before);
}

// ---------------------------------------------------------------------------
// Definitions, ids, pools.

TEST(PoolStateDefinition, EncodingIsCanonicalAndTheIdFollowsIt) {
  auto a = EncodeScanDefinition(Definition());
  auto b = EncodeScanDefinition(Definition());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(ScanDefinitionId(*a), NewState().id);
  auto back = DecodeScanDefinition(*a);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->vantages, Definition().vantages);
  EXPECT_EQ(back->spec.seed, 7u);
  EXPECT_EQ(back->spec.ports, Definition().spec.ports);
  EXPECT_EQ(back->submitter, Node(1));
  auto again = EncodeScanDefinition(*back);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *a);
  EXPECT_NE(ScanDefinitionId(*EncodeScanDefinition(Definition(8))), ScanDefinitionId(*a));
}

TEST(PoolStateDefinition, NewScanStateChecksTheDefinition) {
  ScanState s = NewState();
  ASSERT_EQ(s.pools.size(), 2u);
  for (const auto& pool : s.pools) {
    ASSERT_EQ(pool.size(), 4u);
    for (const ShardState& shard : pool) EXPECT_EQ(shard, ShardState{});
  }
  EXPECT_EQ(s.control.value, ScanControl::kRunning);

  auto refused = [](ScanDefinition def) { return NewScanState(std::move(def), HlcStamp{}).status().code(); };
  EXPECT_EQ(refused(Definition(7, 4, {})), Status::Code::kInvalidArgument);
  EXPECT_EQ(refused(Definition(7, 4, {"wifi", "dmz"})), Status::Code::kInvalidArgument);
  EXPECT_EQ(refused(Definition(7, 4, {"dmz", "dmz"})), Status::Code::kInvalidArgument);
  EXPECT_EQ(refused(Definition(7, 4, {""})), Status::Code::kInvalidArgument);
  EXPECT_EQ(refused(Definition(7, 4, {std::string(65, 'v')})), Status::Code::kInvalidArgument);
  EXPECT_TRUE(NewScanState(Definition(7, 4, {std::string(64, 'v')}), HlcStamp{}).ok());
  std::vector<std::string> many;
  for (size_t i = 0; i <= kMaxScanVantages; ++i) many.push_back("v" + std::to_string(1000 + i));
  EXPECT_EQ(refused(Definition(7, 4, many)), Status::Code::kInvalidArgument);
  EXPECT_EQ(refused(Definition(7, 0)), Status::Code::kInvalidArgument);
  EXPECT_EQ(refused(Definition(7, kMaxPoolShards + 1, {"dmz"})), Status::Code::kInvalidArgument);
  EXPECT_EQ(refused(Definition(7, kMaxPoolShards, {"dmz", "wifi"})), Status::Code::kInvalidArgument);
}

TEST(PoolStateDefinition, PoolIdDiffersPerVantageAndPerScan) {
  ScanState a = NewState(), b = NewState(Definition(8));
  EXPECT_NE(PoolId(a.id, "dmz"), PoolId(a.id, "wifi"));
  EXPECT_NE(PoolId(a.id, "dmz"), PoolId(b.id, "dmz"));
  EXPECT_EQ(PoolId(a.id, "dmz"), PoolId(a.id, "dmz"));
  EXPECT_NE(PoolId(a.id, "dmz"), a.id);
  EXPECT_EQ(VantageIndex(a, "dmz"), 0u);
  EXPECT_EQ(VantageIndex(a, "wifi"), 1u);
  EXPECT_EQ(VantageIndex(a, "lab"), std::nullopt);
}

TEST(PoolStateDefinition, CountPool) {
  std::vector<ShardState> pool(6);
  pool[0].done = Done(1, {Node(1), Node(2)});
  pool[1].done = Done(2, {Node(1)});
  pool[1].lease = ShardLease{Node(1), 1, 1, kT0 + 10};  // done wins over a live lease
  pool[2].lease = ShardLease{Node(2), 1, 2, kT0 + 10};  // live
  pool[3].lease = ShardLease{Node(3), 1, 3, kT0};       // expires at now: not leased
  pool[4].lease = ShardLease{Node(3), 1, 4, kT0 - 5};   // expired
  PoolCounts c = CountPool(pool, kT0);
  EXPECT_EQ(c.done, 2u);
  EXPECT_EQ(c.leased, 1u);
  EXPECT_EQ(c.pending, 3u);
  EXPECT_EQ(c.results, 10u + 20u);
  EXPECT_EQ(CountPool(pool, kT0 - 1).leased, 2u);
  EXPECT_EQ(ScanControlName(ScanControl::kPaused), "paused");
}

// ---------------------------------------------------------------------------
// The hybrid logical clock.

TEST(PoolStateClock, StampsOnlyRiseWhateverTheWallClockDoes) {
  HybridClock clock(Node(1));
  std::mt19937_64 rng(0x9005);
  HlcStamp last{};
  for (int i = 0; i < 2000; ++i) {
    int64_t wall = kT0 + static_cast<int64_t>(rng() % 50) - 25;  // jumps back and forth
    HlcStamp s = clock.Now(wall);
    EXPECT_LT(last, s);
    EXPECT_GE(s.wall_ms, wall);
    EXPECT_EQ(s.node, Node(1));
    last = s;
  }
  HybridClock fresh(Node(2));
  EXPECT_EQ(fresh.Now(kT0), (HlcStamp{kT0, 0, Node(2)}));
  EXPECT_EQ(fresh.Now(kT0), (HlcStamp{kT0, 1, Node(2)}));
  EXPECT_EQ(fresh.Now(kT0 - 7), (HlcStamp{kT0, 2, Node(2)}));
  EXPECT_EQ(fresh.Now(kT0 + 1), (HlcStamp{kT0 + 1, 0, Node(2)}));
}

TEST(PoolStateClock, StampsAfterObserveOrderAfterWhatWasSeen) {
  HybridClock clock(Node(1));
  clock.Now(kT0);
  // A peer whose clock runs 5 s ahead.
  HlcStamp ahead{kT0 + 5000, 3, Node(9)};
  clock.Observe(ahead, kT0 + 1);
  HlcStamp next = clock.Now(kT0 + 2);
  EXPECT_LT(ahead, next);
  EXPECT_EQ(next.wall_ms, ahead.wall_ms);
  EXPECT_GT(next.logical, ahead.logical);
  // Behind: changes nothing but the counter.
  clock.Observe(HlcStamp{kT0, 99, Node(9)}, kT0 + 3);
  EXPECT_LT(next, clock.Now(kT0 + 4));
  // The wall clock overtaking everything resets the counter.
  EXPECT_EQ(clock.Now(kT0 + 6000), (HlcStamp{kT0 + 6000, 0, Node(1)}));
  // Equal walls: the larger counter plus one.
  clock.Observe(HlcStamp{kT0 + 6000, 40, Node(9)}, kT0 + 6000);
  EXPECT_EQ(clock.Now(kT0 + 6000), (HlcStamp{kT0 + 6000, 42, Node(1)}));
  // A counter at its limit moves on to the next millisecond rather than wrap.
  HlcStamp full{kT0 + 7000, std::numeric_limits<uint32_t>::max(), Node(9)};
  clock.Observe(full, kT0);
  EXPECT_LT(full, clock.Now(kT0));
}

// ---------------------------------------------------------------------------
// The codec.

TEST(PoolStateCodec, RoundTrip) {
  for (int it = 0; it < 50; ++it) {
    Sim sim(0x9006 + it, 3);
    sim.Run(80);
    for (const ScanState& s : sim.States()) {
      std::string bytes = Bytes(s);
      auto back = DecodeScanState(bytes);
      ASSERT_TRUE(back.ok()) << back.status().ToString();
      EXPECT_EQ(back->id, s.id);
      EXPECT_EQ(back->definition_bytes, s.definition_bytes);
      EXPECT_EQ(back->definition.vantages, s.definition.vantages);
      EXPECT_EQ(back->control, s.control);
      EXPECT_EQ(back->pools, s.pools);
      EXPECT_EQ(Bytes(*back), bytes);
      EXPECT_EQ(*ScanStateDigest(*back), *ScanStateDigest(s));
    }
  }
}

TEST(PoolStateCodec, RefusesGarbageAndEveryTruncation) {
  ScanState s = NewState();
  s.pools[0][1].done = Done(3, {Node(1), Node(2)});
  std::string bytes = Bytes(s);
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_FALSE(DecodeScanState(bytes.substr(0, n)).ok()) << n;
  EXPECT_FALSE(DecodeScanState(std::string(64, '\xff')).ok());
  // Flipped bytes: refused or decoded, never a crash; whatever decodes re-encodes.
  std::mt19937_64 rng(0x9007);
  for (int i = 0; i < 2000; ++i) {
    std::string hostile = bytes;
    for (int k = 0; k < 3; ++k) hostile[rng() % hostile.size()] ^= static_cast<char>(1 + rng() % 255);
    auto d = DecodeScanState(hostile);
    if (d.ok()) {
      EXPECT_TRUE(EncodeScanState(*d).ok());
    }
  }
}

TEST(PoolStateCodec, RefusesAnIdThatIsNotTheDefinitionsHash) {
  ScanState s = NewState();
  std::string bytes = Bytes(s);
  ASSERT_TRUE(DecodeScanState(bytes).ok());
  std::string other_id = Edited<schema::ScanState>(bytes, [](schema::ScanState::Builder b) {
    std::array<uint8_t, 8> id{1, 2, 3, 4, 5, 6, 7, 8};
    b.setId(kj::ArrayPtr<const kj::byte>(id.data(), id.size()));
  });
  EXPECT_EQ(DecodeScanState(other_id).status().code(), Status::Code::kCorruption);
  // The definition altered (a later creation time), the id kept.
  std::string altered = Edited<schema::ScanState>(bytes, [&](schema::ScanState::Builder b) {
    std::string def = Edited<schema::ScanDefinition>(s.definition_bytes,
                                                     [](schema::ScanDefinition::Builder d) { d.setCreatedMs(kT0 + 1); });
    b.setDefinition(AsData(def));
  });
  EXPECT_EQ(DecodeScanState(altered).status().code(), Status::Code::kCorruption);
  std::string short_id = Edited<schema::ScanState>(
      bytes, [&](schema::ScanState::Builder b) { b.setId(kj::ArrayPtr<const kj::byte>(s.id.data(), 7)); });
  EXPECT_EQ(DecodeScanState(short_id).status().code(), Status::Code::kCorruption);
}

TEST(PoolStateCodec, RefusesPoolsThatDoNotMatchTheDefinition) {
  ScanState s = NewState();
  std::string bytes = Bytes(s);
  auto refused = [&](auto edit) {
    auto d = DecodeScanState(Edited<schema::ScanState>(bytes, edit));
    return d.status().code() == Status::Code::kCorruption;
  };
  EXPECT_TRUE(refused([](schema::ScanState::Builder b) { b.getPools()[1].initShards(3); }));
  EXPECT_TRUE(refused([](schema::ScanState::Builder b) { b.getPools()[0].initShards(5); }));
  EXPECT_TRUE(refused([](schema::ScanState::Builder b) {
    auto pools = b.initPools(1);
    pools[0].initShards(4);
  }));
  EXPECT_TRUE(refused([](schema::ScanState::Builder b) {
    auto pools = b.initPools(3);
    for (unsigned i = 0; i < 3; ++i) pools[i].initShards(4);
  }));
  EXPECT_TRUE(refused([](schema::ScanState::Builder b) { b.setControl(static_cast<schema::ScanState::Control>(3)); }));
  // Encoding refuses the same shapes.
  ScanState wrong = s;
  wrong.pools[0].pop_back();
  EXPECT_EQ(EncodeScanState(wrong).status().code(), Status::Code::kInvalidArgument);
  wrong = s;
  wrong.pools.pop_back();
  EXPECT_EQ(EncodeScanState(wrong).status().code(), Status::Code::kInvalidArgument);
}

TEST(PoolStateCodec, RefusesMalformedShards) {
  ScanState s = NewState();
  s.pools[0][0].done = Done(3, {Node(1), Node(2)});
  std::string bytes = Bytes(s);
  ASSERT_TRUE(DecodeScanState(bytes).ok());
  auto refused = [&](auto edit) {
    auto d = DecodeScanState(Edited<schema::ScanState>(bytes, [&](schema::ScanState::Builder b) {
      edit(b.getPools()[0].getShards()[0]);
    }));
    return d.status().code() == Status::Code::kCorruption;
  };
  using Shard = schema::ShardState::Builder;
  EXPECT_TRUE(refused([](Shard sh) {  // unsorted holders
    auto h = sh.getHolders();
    h[0].setIdHi(0xffff);
  }));
  EXPECT_TRUE(refused([](Shard sh) {  // repeated holders
    auto h = sh.getHolders();
    h[1].setIdHi(h[0].getIdHi());
    h[1].setIdLo(h[0].getIdLo());
  }));
  EXPECT_TRUE(refused([](Shard sh) {  // an empty holder id
    auto h = sh.initHolders(1);
    h[0].setIdHi(0);
  }));
  EXPECT_TRUE(refused([](Shard sh) {  // too many holders
    auto h = sh.initHolders(kMaxShardHolders + 1);
    for (unsigned i = 0; i < h.size(); ++i) h[i].setIdLo(i + 1);
  }));
  EXPECT_TRUE(refused([](Shard sh) { sh.initDigest(31); }));
  EXPECT_TRUE(refused([](Shard sh) { sh.setDone(false); }));  // not done, but a digest and holders
  std::string pending_with_count = Edited<schema::ScanState>(
      Bytes(NewState()), [](schema::ScanState::Builder b) { b.getPools()[0].getShards()[0].setResults(5); });
  EXPECT_FALSE(DecodeScanState(pending_with_count).ok());
  // Encoding refuses what decoding would.
  ScanState bad = s;
  std::swap(bad.pools[0][0].done.holders[0], bad.pools[0][0].done.holders[1]);
  EXPECT_EQ(EncodeScanState(bad).status().code(), Status::Code::kInvalidArgument);
}

TEST(PoolStateCodec, RefusesBadVantagesInTheDefinition) {
  ScanState s = NewState();
  auto refused = [&](auto edit) { return DecodeScanState(WithDefinition(s, edit)).status().code(); };
  // The unedited path decodes (the id is recomputed either way).
  EXPECT_TRUE(DecodeScanState(WithDefinition(s, [](schema::ScanDefinition::Builder) {})).ok());
  EXPECT_EQ(refused([](schema::ScanDefinition::Builder d) {
              auto v = d.getVantages();
              v.set(0, "zzz");
            }),
            Status::Code::kCorruption);
  EXPECT_EQ(refused([](schema::ScanDefinition::Builder d) { d.getVantages().set(1, "dmz"); }),
            Status::Code::kCorruption);
  EXPECT_EQ(refused([](schema::ScanDefinition::Builder d) { d.getVantages().set(0, ""); }), Status::Code::kCorruption);
  EXPECT_EQ(refused([](schema::ScanDefinition::Builder d) { d.getVantages().set(0, std::string(65, 'a')); }),
            Status::Code::kCorruption);
  EXPECT_EQ(refused([](schema::ScanDefinition::Builder d) { const char kNul[] = "a\0b";
              d.getVantages().set(0, capnp::Text::Reader(kNul, 3)); }),
            Status::Code::kCorruption);
  EXPECT_EQ(refused([](schema::ScanDefinition::Builder d) { d.initSpec(5); }), Status::Code::kCorruption);
}

// The state's size bound (kMaxScanShards): NewScanState assumes a shard
// takes at most 520 bytes encoded (472 done and signed, and far pointers'
// landing pads where the message spans segments) and keeps 4 KiB and some
// for the rest.
TEST(PoolStateCodec, AFullyDoneStateFitsTheAssumedSize) {
  std::vector<NodeId> holders;
  for (uint64_t i = 0; i < kMaxShardHolders; ++i) holders.push_back(Node(i + 1));
  for (uint32_t shards : {1u, 8u, 16u, 64u, 128u, 256u, 1024u}) {
    ScanState s = NewState(Definition(7, shards));
    for (auto& pool : s.pools)
      for (ShardState& shard : pool) {
        shard.lease = ShardLease{Node(1), ~0ull, ~0ull, std::numeric_limits<int64_t>::max()};
        shard.done = Done(9, holders);
        shard.done.signer = Node(1);
        shard.done.lease_epoch = shard.done.lease_counter = ~0ull;
        shard.done.signature.assign(kRecordSignatureBytes, 's');
      }
    s.definition_signature.assign(kRecordSignatureBytes, 'd');
    s.control.signature.assign(kRecordSignatureBytes, 'c');
    EXPECT_LE(Bytes(s).size(), s.definition_bytes.size() + 2 * shards * 520 + 4096) << shards << " shards";
  }
}

// ---------------------------------------------------------------------------
// Deltas: the gossip's share of the state.

// All of `s` as deltas of at most kMaxDeltaShards shards (control in the
// first), each through the codec.
std::vector<ScanDelta> AsDeltas(const ScanState& s) {
  std::vector<std::pair<uint32_t, uint32_t>> all;
  for (uint32_t v = 0; v < s.pools.size(); ++v)
    for (uint32_t k = 0; k < s.pools[v].size(); ++k) all.push_back({v, k});
  std::vector<ScanDelta> out;
  for (size_t i = 0; i < all.size(); i += kMaxDeltaShards) {
    std::vector<std::pair<uint32_t, uint32_t>> part(all.begin() + i, all.begin() + std::min(all.size(), i + kMaxDeltaShards));
    auto bytes = EncodeScanDelta(DeltaOf(s, i == 0, part));
    EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
    auto back = DecodeScanDelta(bytes.ok() ? *bytes : "");
    EXPECT_TRUE(back.ok()) << back.status().ToString();
    if (back.ok()) out.push_back(std::move(*back));
  }
  return out;
}

TEST(PoolStateDelta, AllOfAStateAsDeltasMergesLikeTheState) {
  for (int it = 0; it < kIterations; ++it) {
    Sim sim(0x9101 + it, 3);
    sim.Run(40);
    auto s = sim.States();
    // s[0] joined with s[1] by deltas, in shuffled order and with repeats,
    // is s[0] joined with s[1] whole; then s[2]'s deltas, the same.
    std::mt19937_64 rng(it);
    ScanState acc = s[0];
    for (size_t from : {size_t{1}, size_t{2}}) {
      auto deltas = AsDeltas(s[from]);
      deltas.push_back(deltas[rng() % deltas.size()]);
      std::shuffle(deltas.begin(), deltas.end(), rng);
      for (const ScanDelta& d : deltas) {
        std::string before = Bytes(acc);
        bool changed = false;
        ASSERT_TRUE(MergeScanDelta(acc, d, &changed).ok());
        EXPECT_EQ(changed, Bytes(acc) != before);
      }
    }
    EXPECT_EQ(Bytes(acc), Bytes(Join(Join(s[0], s[1]), s[2]))) << "iteration " << it;
  }
}

TEST(PoolStateDelta, EncodingIsCanonicalAndRoundTrips) {
  ScanState s = NewState();
  s.control = {ScanControl::kPaused, HlcStamp{kT0 + 5, 2, Node(3)}};
  s.pools[1][3].lease = ShardLease{Node(2), 4, 9, kT0 + 20'000};
  s.pools[0][1].done = Done(7, {Node(2), Node(5)});
  s.control.signature.assign(kRecordSignatureBytes, 'c');
  s.pools[0][1].done.signature.assign(kRecordSignatureBytes, 's');
  s.pools[0][1].done.signer = Node(2);
  // DeltaOf sorts, dedupes and drops what lies outside the state.
  ScanDelta two = DeltaOf(s, true, {{1, 3}, {0, 1}, {1, 3}, {5, 0}});
  ASSERT_EQ(two.shards.size(), 2u);
  EXPECT_EQ(two.shards[0].pool, 0u);
  EXPECT_FALSE(EncodeScanDelta(two).ok()) << "at most kMaxDeltaShards";
  ScanDelta d = DeltaOf(s, true, {{0, 1}, {5, 0}});
  ASSERT_EQ(d.shards.size(), 1u);
  auto bytes = EncodeScanDelta(d);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  auto back = DecodeScanDelta(*bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->id, s.id);
  ASSERT_TRUE(back->control.has_value());
  EXPECT_EQ(*back->control, s.control);
  EXPECT_EQ(back->shards, d.shards);
  EXPECT_EQ(*EncodeScanDelta(*back), *bytes);
  // Without control: none comes back.
  auto shard_only = DecodeScanDelta(*EncodeScanDelta(DeltaOf(s, false, {{1, 3}})));
  ASSERT_TRUE(shard_only.ok());
  EXPECT_FALSE(shard_only->control.has_value());
}

TEST(PoolStateDelta, TheLargestDeltaFitsAGossipPayload) {
  std::vector<NodeId> holders;
  for (uint64_t i = 0; i < kMaxShardHolders; ++i) holders.push_back(Node(i + 1));
  ScanState s = NewState();
  s.control = {ScanControl::kStopped, HlcStamp{std::numeric_limits<int64_t>::max(), ~0u, Node(99)}};
  for (auto& pool : s.pools)
    for (ShardState& shard : pool) {
      shard.lease = ShardLease{Node(1), ~0ull, ~0ull, std::numeric_limits<int64_t>::max()};
      shard.done = Done(9, holders);
    }
  s.control.signature.assign(kRecordSignatureBytes, 'c');
  s.pools[1][3].done.signer = Node(1);
  s.pools[1][3].done.lease_epoch = s.pools[1][3].done.lease_counter = ~0ull;
  s.pools[1][3].done.signature.assign(kRecordSignatureBytes, 's');
  static_assert(kMaxDeltaShards == 1, "the delta below is the largest");
  auto bytes = EncodeScanDelta(DeltaOf(s, true, {{1, 3}}));
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  EXPECT_LE(bytes->size(), kMaxScanDeltaBytes);
  EXPECT_LE(bytes->size() + 1, kMaxPayloadBytes) << "with the payload's tag byte";
}

TEST(PoolStateDelta, BadDeltasAreRefusedAndChangeNothing) {
  ScanState s = NewState();
  std::string before = Bytes(s);
  // Encoder: empty, too many shards, a pending shard with done fields.
  EXPECT_FALSE(EncodeScanDelta(DeltaOf(s, false, {})).ok());
  EXPECT_FALSE(EncodeScanDelta(DeltaOf(s, false, {{0, 0}, {0, 1}})).ok());
  ScanDelta bad = DeltaOf(s, false, {{0, 0}});
  bad.shards[0].state.done.results = 3;
  EXPECT_FALSE(EncodeScanDelta(bad).ok());
  // Decoder: garbage, unsorted shards, a control value without the flag.
  EXPECT_EQ(DecodeScanDelta("not a delta").status().code(), Status::Code::kCorruption);
  std::string good = *EncodeScanDelta(DeltaOf(s, false, {{1, 2}}));
  EXPECT_EQ(DecodeScanDelta(Edited<schema::ScanDelta>(good, [](schema::ScanDelta::Builder b) {
              auto two = b.initShards(2);  // more than kMaxDeltaShards
              two[0].setShard(3);
              two[1].setShard(4);
            })).status().code(),
            Status::Code::kCorruption);
  EXPECT_EQ(DecodeScanDelta(Edited<schema::ScanDelta>(good, [](schema::ScanDelta::Builder b) {
              b.setControl(schema::ScanState::Control::STOPPED);
            })).status().code(),
            Status::Code::kCorruption);
  EXPECT_EQ(DecodeScanDelta(Edited<schema::ScanDelta>(good, [](schema::ScanDelta::Builder b) {
              b.getShards()[0].setPool(kMaxScanVantages);
            })).status().code(),
            Status::Code::kCorruption);
  // Merge: another scan's delta, a shard outside this scan's shape.
  ScanState other = NewState(Definition(8));
  EXPECT_EQ(MergeScanDelta(s, DeltaOf(other, true, {{0, 0}})).code(), Status::Code::kInvalidArgument);
  ScanDelta outside = DeltaOf(s, true, {{0, 0}});
  outside.control->value = ScanControl::kStopped;
  outside.control->stamp.wall_ms = kT0 + 1;
  outside.shards.push_back({1, 4, ShardState{}});  // 4 shards a pool: 4 is outside
  EXPECT_EQ(MergeScanDelta(s, outside).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Bytes(s), before);
}


// ---------------------------------------------------------------------------
// Signatures (record_signatures.h): carried by the codec, bounded, and
// ordered by the joins so that every copy keeps the same signed record.

ShardDone SignedDone(uint8_t digest, NodeId signer, uint64_t counter, char sig, std::vector<NodeId> holders) {
  ShardDone d = Done(digest, std::move(holders));
  d.signer = signer;
  d.lease_epoch = 3;
  d.lease_counter = counter;
  d.signature.assign(kRecordSignatureBytes, sig);
  return d;
}

TEST(PoolStateSignatures, SignaturesRoundTripAndUnsignedStatesKeepTheirBytes) {
  ScanState s = NewState();
  std::string unsigned_bytes = Bytes(s);
  s.definition_signature.assign(kRecordSignatureBytes, 'd');
  s.control.signature.assign(kRecordSignatureBytes, 'c');
  s.pools[1][2].done = SignedDone(4, Node(7), 9, 's', {Node(7), Node(8)});
  auto back = DecodeScanState(Bytes(s));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->definition_signature, s.definition_signature);
  EXPECT_EQ(back->control, s.control);
  EXPECT_EQ(back->pools[1][2], s.pools[1][2]);
  EXPECT_EQ(Bytes(*back), Bytes(s));
  // A state without signatures encodes as before they existed (its digest,
  // and so anti-entropy between old and new copies, is unchanged): no
  // pointer is set for an empty signature.
  ScanState plain = NewState();
  EXPECT_EQ(Bytes(plain), unsigned_bytes);
  auto delta = DecodeScanDelta(*EncodeScanDelta(DeltaOf(s, true, {{1, 2}})));
  ASSERT_TRUE(delta.ok()) << delta.status().ToString();
  EXPECT_EQ(delta->control->signature, s.control.signature);
  EXPECT_EQ(delta->shards[0].state.done, s.pools[1][2].done);
}

TEST(PoolStateSignatures, BadSignaturesAndSignedPendingShardsAreRefused) {
  ScanState s = NewState();
  std::string good = Bytes(s);
  for (size_t n : {size_t{1}, size_t{63}, size_t{65}}) {
    std::string sig(n, 'x');
    auto data = capnp::Data::Reader(reinterpret_cast<const kj::byte*>(sig.data()), sig.size());
    EXPECT_EQ(DecodeScanState(Edited<schema::ScanState>(good, [&](schema::ScanState::Builder b) {
                b.setDefinitionSig(data);
              })).status().code(),
              Status::Code::kCorruption) << n;
    EXPECT_EQ(DecodeScanState(Edited<schema::ScanState>(good, [&](schema::ScanState::Builder b) {
                b.setControlSig(data);
              })).status().code(),
              Status::Code::kCorruption) << n;
    ScanState done = s;
    done.pools[0][0].done = SignedDone(1, Node(1), 1, 's', {Node(1)});
    EXPECT_EQ(DecodeScanState(Edited<schema::ScanState>(Bytes(done), [&](schema::ScanState::Builder b) {
                b.getPools()[0].getShards()[0].setDoneSig(data);
              })).status().code(),
              Status::Code::kCorruption) << n;
  }
  // A pending shard carries no signer, lease or signature.
  EXPECT_EQ(DecodeScanState(Edited<schema::ScanState>(good, [](schema::ScanState::Builder b) {
              b.getPools()[0].getShards()[0].setSignerLo(5);
            })).status().code(),
            Status::Code::kCorruption);
  EXPECT_EQ(DecodeScanState(Edited<schema::ScanState>(good, [](schema::ScanState::Builder b) {
              b.getPools()[0].getShards()[0].setDoneLeaseCounter(5);
            })).status().code(),
            Status::Code::kCorruption);
  ScanState bad = s;
  bad.control.signature = "short";
  EXPECT_EQ(EncodeScanState(bad).status().code(), Status::Code::kInvalidArgument);
  // A delta without control carries no control signature.
  std::string delta = *EncodeScanDelta(DeltaOf(s, false, {{0, 0}}));
  EXPECT_EQ(DecodeScanDelta(Edited<schema::ScanDelta>(delta, [](schema::ScanDelta::Builder b) {
              std::string sig(kRecordSignatureBytes, 'c');
              b.setControlSig(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(sig.data()), sig.size()));
            })).status().code(),
            Status::Code::kCorruption);
}

TEST(PoolStateSignatures, JoinsOfTiedRecordsAreCommutativeAndKeepOneSignedRecordWhole) {
  // One bundle (same digest and count) signed by two scanners: the join is
  // the same either way round, its signed fields are one record's, and the
  // holders are united.
  ShardDone a = SignedDone(5, Node(1), 4, 'a', {Node(1), Node(3)});
  ShardDone b = SignedDone(5, Node(2), 2, 'b', {Node(2)});
  ShardDone ab = JoinDone(a, b), ba = JoinDone(b, a);
  EXPECT_EQ(ab, ba);
  EXPECT_EQ(ab.signer, Node(2));
  EXPECT_EQ(ab.lease_counter, 2u);
  EXPECT_EQ(ab.signature, b.signature);
  EXPECT_EQ(ab.holders, (std::vector<NodeId>{Node(1), Node(2), Node(3)}));
  // Equal but for the signature (a forged copy): still one answer.
  ShardDone forged = a;
  forged.signature.assign(kRecordSignatureBytes, 'z');
  EXPECT_EQ(JoinDone(a, forged), JoinDone(forged, a));
  // Control registers equal but for the signature, running or stopped.
  for (ScanControl v : {ScanControl::kPaused, ScanControl::kStopped}) {
    ControlRegister x{v, HlcStamp{kT0, 1, Node(1)}, std::string(kRecordSignatureBytes, 'x')};
    ControlRegister y = x;
    y.signature.assign(kRecordSignatureBytes, 'y');
    EXPECT_EQ(JoinControl(x, y), JoinControl(y, x)) << ScanControlName(v);
    EXPECT_EQ(JoinControl(x, y), y);
  }
  // A signed definition wins over the unsigned copy, either way round.
  ScanState plain = NewState(), signed_state = NewState();
  signed_state.definition_signature.assign(kRecordSignatureBytes, 'd');
  EXPECT_EQ(Join(plain, signed_state).definition_signature, signed_state.definition_signature);
  EXPECT_EQ(Join(signed_state, plain).definition_signature, signed_state.definition_signature);
}

}  // namespace
}  // namespace ndo::mesh
