// The SWIM core alone, with a fake clock and hand-made messages: each rule
// of the protocol, one at a time. (Whole meshes: meshsim_scenarios_test.cc.)
#include "mesh/membership.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace ndo::mesh {
namespace {

using namespace std::chrono_literals;

const Time kStart = Time{} + 1h;

MemberInfo Info(uint64_t n, uint32_t priority = 0) {
  MemberInfo i;
  i.id = {n, n * 7};
  i.name = "node" + std::to_string(n);
  i.vantage = "dmz";
  i.address = "n" + std::to_string(n);
  i.priority = priority;
  return i;
}

MemberInfoPtr Ptr(const MemberInfo& i) { return std::make_shared<const MemberInfo>(i); }

Message From(const MemberInfo& sender, Message::Type type, std::vector<Update> updates = {}) {
  Message m;
  m.type = type;
  m.sender = sender.id;
  m.updates = std::move(updates);
  return m;
}

Update Alive(const MemberInfo& i, uint64_t inc) { return {Update::Kind::kAlive, Ptr(i), inc, i.id}; }

// A node that knows `others`, all alive and stable.
Membership Known(const MemberInfo& self, const std::vector<MemberInfo>& others, MembershipConfig cfg = {}) {
  Membership m(self, cfg, 42, kStart);
  std::vector<std::pair<MemberInfoPtr, uint64_t>> all;
  for (const auto& o : others) all.emplace_back(Ptr(o), 0);
  m.Bootstrap(all, kStart);
  m.TakeOutgoing();
  m.TakeEvents();
  return m;
}

const Update* FindUpdate(const Message& m, const NodeId& id, Update::Kind kind) {
  for (const auto& u : m.updates)
    if (u.info->id == id && u.kind == kind) return &u;
  return nullptr;
}

TEST(Membership, APingFromAStrangerIsAckedWithOurOwnRecord) {
  Membership a(Info(1), {}, 1, kStart);
  a.TakeOutgoing();
  MemberInfo b = Info(2);
  Message ping = From(b, Message::Type::kPing, {Alive(b, 0)});
  ping.seq = 9;
  a.OnMessage("n2", ping, kStart);
  auto out = a.TakeOutgoing();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].address, "n2");
  EXPECT_EQ(out[0].message.type, Message::Type::kAck);
  EXPECT_EQ(out[0].message.seq, 9u);
  EXPECT_NE(FindUpdate(out[0].message, Info(1).id, Update::Kind::kAlive), nullptr);
  ASSERT_NE(a.Find(b.id), nullptr);
  EXPECT_EQ(a.Find(b.id)->state, MemberState::kAlive);
}

TEST(Membership, AnUnansweredProbeLeadsToPingReqThenSuspicion) {
  MembershipConfig cfg;
  Membership a = Known(Info(1), {Info(2), Info(3), Info(4), Info(5)}, cfg);
  Time t = kStart;
  // Advance until a ping goes out.
  Message ping;
  while (true) {
    t = a.NextWakeup();
    a.Tick(t);
    auto out = a.TakeOutgoing();
    auto it = std::find_if(out.begin(), out.end(), [](const Outgoing& o) { return o.message.type == Message::Type::kPing; });
    if (it != out.end()) {
      ping = it->message;
      break;
    }
  }
  NodeId target = ping.target;
  // No ack: at the probe timeout, ping-reqs to k others.
  t = a.NextWakeup();
  a.Tick(t);
  auto out = a.TakeOutgoing();
  int reqs = 0;
  for (const auto& o : out)
    if (o.message.type == Message::Type::kPingReq) {
      ++reqs;
      EXPECT_EQ(o.message.target, target);
    }
  EXPECT_EQ(reqs, 3);
  // No ack by the end of the period: suspect, and our own health drops
  // (no helper even nacked).
  while (a.Find(target)->state == MemberState::kAlive) {
    t = a.NextWakeup();
    a.Tick(t);
  }
  EXPECT_EQ(a.Find(target)->state, MemberState::kSuspect);
  EXPECT_GT(a.local_health(), 0);
}

TEST(Membership, NacksFromHelpersKeepOurHealth) {
  Membership a = Known(Info(1), {Info(2), Info(3), Info(4), Info(5)});
  Time t = kStart;
  NodeId target;
  uint32_t seq = 0;
  while (target.empty()) {
    t = a.NextWakeup();
    a.Tick(t);
    for (const auto& o : a.TakeOutgoing())
      if (o.message.type == Message::Type::kPing) target = o.message.target, seq = o.message.seq;
  }
  t = a.NextWakeup();
  a.Tick(t);
  for (const auto& o : a.TakeOutgoing()) {
    if (o.message.type != Message::Type::kPingReq) continue;
    MemberInfo helper = Info(std::stoull(o.address.substr(1)));
    Message nack = From(helper, Message::Type::kNack);
    nack.seq = seq;
    nack.target = target;
    a.OnMessage(o.address, nack, t);
  }
  while (a.Find(target)->state == MemberState::kAlive) {
    t = a.NextWakeup();
    a.Tick(t);
  }
  EXPECT_EQ(a.local_health(), 0);  // the helpers answered: the fault is not ours
}

TEST(Membership, ConfirmationsShortenTheSuspicion) {
  // Two identical nodes suspect member 2 at the same instant; one hears
  // three independent confirmations and declares it dead much sooner.
  std::vector<MemberInfo> others = {Info(2), Info(3), Info(4), Info(5), Info(6)};
  Membership lone = Known(Info(1), others), confirmed = Known(Info(1), others);
  Update suspect{Update::Kind::kSuspect, Ptr(Info(2)), 0, Info(3).id};
  lone.OnMessage("n3", From(Info(3), Message::Type::kGossip, {suspect}), kStart);
  confirmed.OnMessage("n3", From(Info(3), Message::Type::kGossip, {suspect}), kStart);
  for (uint64_t c : {4, 5, 6}) {
    Update more{Update::Kind::kSuspect, Ptr(Info(2)), 0, Info(c).id};
    confirmed.OnMessage("n" + std::to_string(c), From(Info(c), Message::Type::kGossip, {more}), kStart);
  }
  auto dead_at = [](Membership& m) {
    Time t = kStart;
    while (m.Find(Info(2).id)->state == MemberState::kSuspect && t < kStart + 10min) {
      t = m.NextWakeup();
      m.Tick(t);
      // Keep the others alive: they ack nothing here, so only look at member 2.
    }
    return t - kStart;
  };
  Duration fast = dead_at(confirmed), slow = dead_at(lone);
  EXPECT_EQ(confirmed.Find(Info(2).id)->state, MemberState::kDead);
  EXPECT_GE(fast, 2s);             // never below the floor
  EXPECT_GT(slow, fast * 3);       // unconfirmed: near the maximum
}

TEST(Membership, AnAccusationIsRefutedAndTheAccuserToldDirectly) {
  Membership a = Known(Info(1), {Info(2), Info(3)});
  uint64_t before = a.incarnation();
  Update suspect{Update::Kind::kSuspect, Ptr(Info(1)), before, Info(3).id};
  a.OnMessage("n2", From(Info(2), Message::Type::kGossip, {suspect}), kStart);
  EXPECT_EQ(a.incarnation(), before + 1);
  auto out = a.TakeOutgoing();
  auto to_accuser = std::find_if(out.begin(), out.end(), [](const Outgoing& o) { return o.address == "n3"; });
  ASSERT_NE(to_accuser, out.end());
  const Update* refutation = FindUpdate(to_accuser->message, Info(1).id, Update::Kind::kAlive);
  ASSERT_NE(refutation, nullptr);
  EXPECT_EQ(refutation->incarnation, before + 1);
}

TEST(Membership, AStaleAliveDoesNotOverrideDeath) {
  Membership a = Known(Info(1), {Info(2), Info(3)});
  Update dead{Update::Kind::kDead, Ptr(Info(2)), 0, Info(3).id};
  a.OnMessage("n3", From(Info(3), Message::Type::kGossip, {dead}), kStart);
  ASSERT_EQ(a.Find(Info(2).id)->state, MemberState::kDead);
  a.OnMessage("n3", From(Info(3), Message::Type::kGossip, {Alive(Info(2), 0)}), kStart + 1s);
  EXPECT_EQ(a.Find(Info(2).id)->state, MemberState::kDead);
  a.OnMessage("n2", From(Info(2), Message::Type::kGossip, {Alive(Info(2), 1)}), kStart + 2s);
  EXPECT_EQ(a.Find(Info(2).id)->state, MemberState::kAlive);
}

TEST(Membership, APingFromAMemberWeThinkDeadIsToldSo) {
  Membership a = Known(Info(1), {Info(2), Info(3)});
  Update dead{Update::Kind::kDead, Ptr(Info(2)), 4, Info(3).id};
  a.OnMessage("n3", From(Info(3), Message::Type::kGossip, {Alive(Info(2), 4)}), kStart);
  a.OnMessage("n3", From(Info(3), Message::Type::kGossip, {dead}), kStart);
  a.TakeOutgoing();
  Message ping = From(Info(2), Message::Type::kPing, {Alive(Info(2), 4)});
  ping.target = Info(1).id;
  a.OnMessage("n2", ping, kStart + 1s);
  auto out = a.TakeOutgoing();
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0].message.type, Message::Type::kAck);
  const Update* hint = FindUpdate(out[0].message, Info(2).id, Update::Kind::kDead);
  ASSERT_NE(hint, nullptr);
  EXPECT_EQ(hint->incarnation, 4u);
}

TEST(Membership, ARemoteDeathIsOnlyASuspicionInAPushPull) {
  Membership a = Known(Info(1), {Info(2), Info(3)});
  PushPull remote;
  remote.sender = Info(3).id;
  remote.state.push_back(Alive(Info(3), 0));
  remote.state.push_back({Update::Kind::kDead, Ptr(Info(2)), 0, Info(3).id});
  PushPull reply = a.OnPushPullRequest(remote, kStart);
  EXPECT_EQ(a.Find(Info(2).id)->state, MemberState::kSuspect);
  EXPECT_EQ(reply.state.size(), 3u);  // self and both members
}

TEST(Membership, CoordinatorIsTheLowestStableMemberAndTakesAHigherEpoch) {
  // Node 5 (priority 0) outranks nodes 1..3 (priority 1) despite a higher id.
  Membership a = Known(Info(1, 1), {Info(2, 1), Info(3, 1)});
  ASSERT_TRUE(a.Coordinator());
  EXPECT_EQ(*a.Coordinator(), Info(1).id);
  uint64_t first_epoch = a.epoch();
  EXPECT_GE(first_epoch, 1u);
  // A newcomer with a better rank takes over only after stabilisation.
  MemberInfo five = Info(5, 0);
  five.epoch = 0;
  a.OnMessage("n5", From(five, Message::Type::kGossip, {Alive(five, 0)}), kStart + 1s);
  EXPECT_EQ(*a.Coordinator(), Info(1).id);
  a.Tick(kStart + 1s + 3s);
  EXPECT_EQ(*a.Coordinator(), five.id);
  // Node 1 outranks node 2; if node 2 announces an epoch as high as ours
  // while we coordinate, we go above it.
  Membership b = Known(Info(1, 1), {Info(2, 1), Info(3, 1)});
  MemberInfo two = Info(2, 1);
  two.epoch = b.epoch() + 5;
  b.OnMessage("n2", From(two, Message::Type::kGossip, {Alive(two, 1)}), kStart + 1s);
  EXPECT_EQ(*b.Coordinator(), Info(1).id);
  EXPECT_GT(b.epoch(), two.epoch);
}

TEST(Membership, AJoinStartsWithAPushPullToTheSeed) {
  Membership a(Info(1), {}, 1, kStart);
  a.Join({"n9"}, kStart);
  auto streams = a.TakeStreamRequests();
  ASSERT_EQ(streams.size(), 1u);
  EXPECT_EQ(streams[0].address, "n9");
  EXPECT_TRUE(streams[0].request.join);
  EXPECT_FALSE(a.joined());
  EXPECT_FALSE(a.Coordinator());  // not before it has heard back
  PushPull reply;
  reply.sender = Info(9).id;
  reply.state.push_back(Alive(Info(9), 3));
  a.OnPushPullReply("n9", reply, kStart + 10ms);
  EXPECT_TRUE(a.joined());
  ASSERT_NE(a.Find(Info(9).id), nullptr);
  EXPECT_EQ(a.Find(Info(9).id)->incarnation, 3u);
}

TEST(Membership, LeavingTellsOthersAndStops) {
  std::vector<MemberInfo> others;
  for (uint64_t n = 2; n <= 21; ++n) others.push_back(Info(n));
  Membership a = Known(Info(1), others);
  a.Leave(kStart + 1s);
  auto out = a.TakeOutgoing();
  ASSERT_FALSE(out.empty());
  for (const auto& o : out) EXPECT_NE(FindUpdate(o.message, Info(1).id, Update::Kind::kLeft), nullptr);
  EXPECT_TRUE(a.has_left());
  // While the driver lingers, a ping is answered with the goodbye...
  Message ping = From(Info(2), Message::Type::kPing, {Alive(Info(2), 0)});
  ping.target = Info(1).id;
  a.OnMessage("n2", ping, kStart + 2s);
  auto acks = a.TakeOutgoing();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].message.type, Message::Type::kAck);
  EXPECT_NE(FindUpdate(acks[0].message, Info(1).id, Update::Kind::kLeft), nullptr);
  // ...gossip rounds repeat it until its retransmissions run out, then the
  // core falls silent.
  Time t = kStart + 2s;
  int rounds = 0;
  while (a.NextWakeup() != Time::max() && rounds < 1000) {
    t = a.NextWakeup();
    a.Tick(t);
    for (const auto& o : a.TakeOutgoing()) EXPECT_NE(FindUpdate(o.message, Info(1).id, Update::Kind::kLeft), nullptr);
    ++rounds;
  }
  EXPECT_EQ(a.NextWakeup(), Time::max());
  EXPECT_GT(rounds, 0);
  EXPECT_LT(rounds, 1000);
}

}  // namespace
}  // namespace ndo::mesh
