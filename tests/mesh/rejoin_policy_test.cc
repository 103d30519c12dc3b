// The rejoin policy driven by hand: the first join retried with doubling
// backoff until the core says joined, the rejoin of a node alone for
// kRejoinWhenAloneAfter (done only when someone else is alive), the sample
// of contacts, leaving, and which saved members are kept.
#include "mesh/membership/rejoin_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

namespace ndo::mesh {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const Time kT0 = Time{} + std::chrono::hours(1);

RejoinConfig Config() {
  RejoinConfig c;
  c.retry_first = seconds(1);
  c.retry_max = seconds(4);
  c.alone_after = seconds(10);
  c.reap_after = seconds(60);
  return c;
}

std::vector<std::string> Addresses(size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back("10.0.0." + std::to_string(i + 1) + ":7946");
  return out;
}

TEST(RejoinPolicy, FoundingNodeNeverJoins) {
  RejoinPolicy p(Config(), 1);
  p.Start({}, 0, kT0);
  EXPECT_FALSE(p.pending());
  EXPECT_FALSE(p.Tick(kT0).has_value());
  EXPECT_FALSE(p.Tick(kT0 + seconds(100)).has_value());
}

TEST(RejoinPolicy, FirstJoinRetriedWithDoublingBackoffUntilJoined) {
  RejoinPolicy p(Config(), 1);
  p.Start(Addresses(2), 2, kT0);
  EXPECT_EQ(p.NextWakeup(), kT0);
  auto a1 = p.Tick(kT0);
  ASSERT_TRUE(a1.has_value());
  EXPECT_EQ(a1->attempt, 1);
  EXPECT_FALSE(a1->rejoin);
  EXPECT_EQ(a1->addresses, Addresses(2));  // seeds, all of them, in order
  // Not before the backoff: 1 s, 2 s, then 4 s (the max) twice.
  EXPECT_FALSE(p.Tick(kT0 + milliseconds(999)).has_value());
  EXPECT_EQ(p.NextWakeup(), kT0 + seconds(1));
  ASSERT_TRUE(p.Tick(kT0 + seconds(1)).has_value());
  EXPECT_EQ(p.NextWakeup(), kT0 + seconds(3));
  ASSERT_TRUE(p.Tick(kT0 + seconds(3)).has_value());
  EXPECT_EQ(p.NextWakeup(), kT0 + seconds(7));
  auto a4 = p.Tick(kT0 + seconds(7));
  ASSERT_TRUE(a4.has_value());
  EXPECT_EQ(a4->attempt, 4);
  EXPECT_EQ(p.NextWakeup(), kT0 + seconds(11));
  // Joined: done, once, with the attempts it took.
  EXPECT_FALSE(p.Observe(false, 1, kT0 + seconds(8)));
  EXPECT_TRUE(p.Observe(true, 2, kT0 + seconds(8)));
  EXPECT_FALSE(p.Observe(true, 2, kT0 + seconds(9)));
  auto events = p.TakeEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, RejoinEvent::Kind::kJoined);
  EXPECT_EQ(events[0].attempts, 4);
  EXPECT_FALSE(p.pending());
  EXPECT_FALSE(p.Tick(kT0 + seconds(20)).has_value());
}

TEST(RejoinPolicy, JoinedAloneCountsForAFirstJoin) {
  // The core counts itself joined once a join went out: the first join of a
  // node whose seeds are its only peers is done even before they answer.
  RejoinPolicy p(Config(), 1);
  p.Start(Addresses(1), 1, kT0);
  ASSERT_TRUE(p.Tick(kT0).has_value());
  EXPECT_TRUE(p.Observe(true, 1, kT0));
}

TEST(RejoinPolicy, AloneForTenSecondsRejoinsAndIsDoneOnlyWithSomeoneAlive) {
  RejoinPolicy p(Config(), 1);
  p.Start(Addresses(1), 1, kT0);
  ASSERT_TRUE(p.Tick(kT0).has_value());
  ASSERT_TRUE(p.Observe(true, 3, kT0));
  p.TakeEvents();
  // Everyone else dies at +5 s: alone from then.
  p.Observe(true, 1, kT0 + seconds(5));
  EXPECT_FALSE(p.RejoinDue(kT0 + seconds(14)));
  EXPECT_EQ(p.NextWakeup(), kT0 + seconds(15));
  // Someone alive again in between resets the clock.
  p.Observe(true, 2, kT0 + seconds(6));
  p.Observe(true, 1, kT0 + seconds(7));
  EXPECT_FALSE(p.RejoinDue(kT0 + seconds(15)));
  ASSERT_TRUE(p.RejoinDue(kT0 + seconds(17)));
  ASSERT_TRUE(p.Rejoin(Addresses(3), 1, kT0 + seconds(17)));
  auto events = p.TakeEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, RejoinEvent::Kind::kRejoining);
  EXPECT_EQ(events[0].addresses, 3u);
  auto a = p.Tick(kT0 + seconds(17));
  ASSERT_TRUE(a.has_value());
  EXPECT_TRUE(a->rejoin);
  EXPECT_EQ(a->attempt, 1);
  // Joined but still alone: not done.
  EXPECT_FALSE(p.Observe(true, 1, kT0 + seconds(17)));
  EXPECT_TRUE(p.pending());
  EXPECT_TRUE(p.Observe(true, 2, kT0 + seconds(18)));
  events = p.TakeEvents();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, RejoinEvent::Kind::kRejoined);
  EXPECT_EQ(events[0].alive, 2u);
}

TEST(RejoinPolicy, NothingToTryLooksAgainLater) {
  RejoinPolicy p(Config(), 1);
  p.Start({}, 0, kT0);
  p.Observe(true, 1, kT0);
  ASSERT_TRUE(p.RejoinDue(kT0 + seconds(10)));
  EXPECT_FALSE(p.Rejoin({}, 0, kT0 + seconds(10)));
  EXPECT_FALSE(p.pending());
  EXPECT_TRUE(p.TakeEvents().empty());
  EXPECT_FALSE(p.RejoinDue(kT0 + seconds(19)));
  EXPECT_TRUE(p.RejoinDue(kT0 + seconds(20)));
}

TEST(RejoinPolicy, SampleHasEverySeedAndAtMostEightKnownMembersThatVary) {
  RejoinPolicy p(Config(), 7);
  std::vector<std::string> addresses = Addresses(22);  // 2 seeds, 20 known
  p.Start(addresses, 2, kT0);
  std::vector<std::vector<std::string>> samples;
  Time now = kT0;
  for (int i = 0; i < 5; ++i) {
    auto a = p.Tick(now);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->known, 22u);
    ASSERT_EQ(a->addresses.size(), 2 + kMaxRejoinContacts);
    EXPECT_EQ(a->addresses[0], addresses[0]);
    EXPECT_EQ(a->addresses[1], addresses[1]);
    for (size_t k = 2; k < a->addresses.size(); ++k) {
      EXPECT_NE(std::find(addresses.begin() + 2, addresses.end(), a->addresses[k]), addresses.end());
      EXPECT_EQ(std::count(a->addresses.begin(), a->addresses.end(), a->addresses[k]), 1);
    }
    samples.push_back(a->addresses);
    now = p.NextWakeup();
  }
  bool varied = false;
  for (const auto& s : samples) varied = varied || s != samples.front();
  EXPECT_TRUE(varied);
}

TEST(RejoinPolicy, SameSeedSameSamples) {
  RejoinPolicy a(Config(), 42), b(Config(), 42);
  a.Start(Addresses(30), 0, kT0);
  b.Start(Addresses(30), 0, kT0);
  EXPECT_EQ(a.Tick(kT0)->addresses, b.Tick(kT0)->addresses);
}

TEST(RejoinPolicy, LeavingStopsJoiningAndRejoining) {
  RejoinPolicy p(Config(), 1);
  p.Start(Addresses(2), 2, kT0);
  p.Leave();
  EXPECT_FALSE(p.pending());
  EXPECT_FALSE(p.Tick(kT0).has_value());
  p.Observe(false, 1, kT0);
  EXPECT_FALSE(p.RejoinDue(kT0 + seconds(60)));
  EXPECT_EQ(p.NextWakeup(), Time::max());
}

TEST(RejoinPolicy, AbsentMembersKeptUntilTogetherForReapAfter) {
  RejoinPolicy p(Config(), 1);
  p.Start(Addresses(1), 1, kT0);
  EXPECT_TRUE(p.KeepAbsentMembers(kT0 + seconds(1000)));  // never together yet
  p.Observe(true, 3, kT0);
  EXPECT_TRUE(p.KeepAbsentMembers(kT0 + seconds(59)));
  EXPECT_FALSE(p.KeepAbsentMembers(kT0 + seconds(60)));
  // Alone again: whatever it knew may have been reaped by a partition.
  p.Observe(true, 1, kT0 + seconds(61));
  EXPECT_TRUE(p.KeepAbsentMembers(kT0 + seconds(62)));
}

}  // namespace
}  // namespace ndo::mesh
