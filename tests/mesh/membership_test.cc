// The SWIM core alone, with a fake clock and hand-made messages: each rule
// of the protocol, one at a time. (Whole meshes: meshsim_scenarios_test.cc.)
#include "mesh/membership/membership.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "mesh/membership/codec.h"

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

// --- payloads ---------------------------------------------------------------

// A few cores wired together by address with no loss and no latency, every
// datagram through the codec, time jumping to the earliest wakeup:
// deterministic. Records every datagram sent.
class Mesh {
 public:
  struct Sent {
    std::string from;
    Outgoing out;
  };

  // n cores, "n1".."n<n>", each knowing all the others.
  explicit Mesh(uint64_t n, MembershipConfig cfg = {}) : cfg_(cfg) {
    std::vector<MemberInfo> all;
    for (uint64_t i = 1; i <= n; ++i) all.push_back(Info(i));
    for (const MemberInfo& self : all) {
      std::vector<MemberInfo> others;
      for (const MemberInfo& o : all)
        if (o.id != self.id) others.push_back(o);
      nodes_.emplace(self.address, Known(self, others, cfg));
    }
  }
  Membership& operator[](const std::string& address) { return nodes_.at(address); }
  const std::vector<Sent>& sent() const { return sent_; }
  Time now() const { return now_; }

  void RunUntil(Time until) {
    while (true) {
      auto next = std::min_element(nodes_.begin(), nodes_.end(), [](const auto& a, const auto& b) {
        return a.second.NextWakeup() < b.second.NextWakeup();
      });
      if (next->second.NextWakeup() > until) break;
      now_ = std::max(now_, next->second.NextWakeup());
      next->second.Tick(now_);
      Deliver();
    }
    now_ = until;
  }

  // Carries out everything the cores asked for until they are quiet.
  void Deliver() {
    for (bool busy = true; busy;) {
      busy = false;
      for (auto& [address, node] : nodes_) {
        for (Outgoing& o : node.TakeOutgoing()) {
          busy = true;
          Carry(address, o);
          sent_.push_back({address, std::move(o)});
        }
        for (const StreamRequest& r : node.TakeStreamRequests()) {
          busy = true;
          auto peer = nodes_.find(r.address);
          if (peer == nodes_.end()) {
            node.OnPushPullFailed(r.address, now_);
            continue;
          }
          node.OnPushPullReply(r.address, peer->second.OnPushPullRequest(r.request, now_), now_);
        }
      }
    }
  }

 private:
  void Carry(const std::string& from, const Outgoing& o) {
    auto bytes = EncodeMessage(o.message);
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    EXPECT_LE(bytes->size(), cfg_.max_datagram_bytes);
    auto peer = nodes_.find(o.address);
    if (peer == nodes_.end()) return;
    auto back = DecodeMessage(*bytes);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    peer->second.OnMessage(from, *back, now_);
  }

  MembershipConfig cfg_;
  std::map<std::string, Membership> nodes_;
  std::vector<Sent> sent_;
  Time now_ = kStart;
};

bool Carries(const Message& m, const std::string& payload) {
  return std::find(m.payloads.begin(), m.payloads.end(), payload) != m.payloads.end();
}

size_t CountSent(const Mesh& mesh, const std::string& from, const std::string& payload) {
  return static_cast<size_t>(std::count_if(mesh.sent().begin(), mesh.sent().end(), [&](const Mesh::Sent& s) {
    return s.from == from && Carries(s.out.message, payload);
  }));
}

bool Received(Membership& m, const std::string& payload) {
  auto got = m.TakePayloads();
  return std::find(got.begin(), got.end(), payload) != got.end();
}

// Below 10 members, RetransmitLimit() is retransmit_mult * ceil(log10(N+1)) =
// retransmit_mult.
MembershipConfig RetransmitMult(int mult) {
  MembershipConfig cfg;
  cfg.retransmit_mult = mult;
  return cfg;
}

TEST(MembershipPayloads, ABroadcastReachesTheOthersAndIsSentAtMostRetransmitLimitTimes) {
  Mesh mesh(4, RetransmitMult(3));
  mesh["n1"].Broadcast("scan/7", "delta-1");
  mesh.RunUntil(kStart + 10s);
  EXPECT_EQ(CountSent(mesh, "n1", "delta-1"), 3u);  // the limit, used up by gossip rounds
  int reached = 0;
  for (const char* other : {"n2", "n3", "n4"}) reached += Received(mesh[other], "delta-1");
  EXPECT_EQ(reached, 3);
  // Received, not relayed: that is the layer above's decision.
  for (const char* other : {"n2", "n3", "n4"}) EXPECT_EQ(CountSent(mesh, other, "delta-1"), 0u);
  EXPECT_TRUE(mesh["n1"].TakePayloads().empty());
}

// Not the coordinator (priority 5 against 0): no epoch of its own to announce,
// so nothing is queued after Known().
const MemberInfo kFollower = Info(1, 5);

TEST(MembershipPayloads, GossipRoundsCarryPayloadsWithoutMemberNews) {
  Membership a = Known(kFollower, {Info(2), Info(3)});
  Time idle = a.NextWakeup();  // nothing queued: the next probe
  EXPECT_GT(idle, kStart + 100ms);
  a.Broadcast("k", "p");
  Time t = a.NextWakeup();
  EXPECT_LE(t, kStart + 100ms);  // a gossip round
  a.Tick(t);
  auto out = a.TakeOutgoing();
  ASSERT_EQ(out.size(), 2u);  // gossip_fanout 3, but only two others
  for (const Outgoing& o : out) {
    EXPECT_EQ(o.message.type, Message::Type::kGossip);
    EXPECT_TRUE(o.message.updates.empty());
    EXPECT_EQ(o.message.payloads, std::vector<std::string>{"p"});
  }
  // Once the payload has been sent RetransmitLimit() times (4), the rounds
  // stop: back to the probe schedule.
  a.Tick(a.NextWakeup());
  EXPECT_EQ(a.TakeOutgoing().size(), 2u);
  EXPECT_EQ(a.NextWakeup(), idle);
}

TEST(MembershipPayloads, ANewerBroadcastWithTheSameKeyReplacesTheOld) {
  Mesh mesh(3, RetransmitMult(3));
  mesh["n1"].Broadcast("lease/1", "old");
  mesh["n1"].Broadcast("lease/2", "other");
  mesh["n1"].Broadcast("lease/1", "new");
  mesh.RunUntil(kStart + 5s);
  EXPECT_EQ(CountSent(mesh, "n1", "old"), 0u);
  EXPECT_EQ(CountSent(mesh, "n1", "new"), 3u);
  EXPECT_EQ(CountSent(mesh, "n1", "other"), 3u);
  // Replaced after it has gone out once: never sent again, and the newer one
  // gets its own full count.
  mesh["n1"].Broadcast("lease/1", "v2");
  while (CountSent(mesh, "n1", "v2") == 0) mesh.RunUntil(mesh.now() + 1ms);
  size_t v2 = CountSent(mesh, "n1", "v2");
  ASSERT_LT(v2, 3u);  // one gossip round: not used up
  mesh["n1"].Broadcast("lease/1", "v3");
  mesh.RunUntil(mesh.now() + 5s);
  EXPECT_EQ(CountSent(mesh, "n1", "v2"), v2);
  EXPECT_EQ(CountSent(mesh, "n1", "v3"), 3u);
  auto got = mesh["n2"].TakePayloads();
  EXPECT_EQ(std::count(got.begin(), got.end(), "old"), 0);
  EXPECT_GT(std::count(got.begin(), got.end(), "v3"), 0);
}

TEST(MembershipPayloads, PingsAcksPingReqsAndNacksCarryPayloadsToo) {
  Membership a = Known(Info(1), {Info(2), Info(3), Info(4)}, RetransmitMult(100));
  a.Broadcast("k", "p");
  // An ack.
  Message ping = From(Info(2), Message::Type::kPing);
  ping.target = Info(1).id;
  a.OnMessage("n2", ping, kStart);
  auto out = a.TakeOutgoing();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].message.type, Message::Type::kAck);
  EXPECT_TRUE(Carries(out[0].message, "p"));
  // A ping on behalf of a ping-req, then the nack when the target is silent.
  Message req = From(Info(2), Message::Type::kPingReq);
  req.seq = 5;
  req.target = Info(3).id;
  req.target_address = "n3";
  a.OnMessage("n2", req, kStart);
  out = a.TakeOutgoing();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].message.type, Message::Type::kPing);
  EXPECT_TRUE(Carries(out[0].message, "p"));
  a.Tick(kStart + 350ms);  // 80% of the probe timeout; no gossip round is due before
  bool nacked = false;
  for (const Outgoing& o : a.TakeOutgoing()) {
    if (o.message.type != Message::Type::kNack) continue;
    nacked = true;
    EXPECT_TRUE(Carries(o.message, "p"));
  }
  EXPECT_TRUE(nacked);
  // Our own probe, and the ping-reqs when it goes unanswered.
  std::set<Message::Type> types;
  for (Time t = kStart + 400ms; t < kStart + 3s; t = a.NextWakeup()) {
    a.Tick(t);
    for (const Outgoing& o : a.TakeOutgoing()) {
      EXPECT_TRUE(Carries(o.message, "p")) << static_cast<int>(o.message.type);
      types.insert(o.message.type);
    }
  }
  EXPECT_TRUE(types.count(Message::Type::kPing));
  EXPECT_TRUE(types.count(Message::Type::kPingReq));
}

TEST(MembershipPayloads, ADatagramNeverExceedsTheLimit) {
  for (size_t limit : {kMaxDatagramBytes, size_t{700}}) {
    MembershipConfig cfg;
    cfg.max_datagram_bytes = limit;
    cfg.retransmit_mult = 6;
    // A newcomer that hears of 40 members at once: a full update queue.
    Membership a(Info(1), cfg, 7, kStart);
    std::vector<Update> news;
    for (uint64_t n = 2; n <= 41; ++n) news.push_back(Alive(Info(n), n));
    for (size_t i = 0; i < news.size(); i += 8)
      a.OnMessage("n2", From(Info(2), Message::Type::kGossip, {news.begin() + i, news.begin() + std::min(i + 8, news.size())}),
                  kStart);
    // And 100 payloads, up to the largest, of bytes that do not pack.
    std::mt19937_64 rng(limit);
    for (int k = 0; k < 100; ++k) {
      std::string p(1 + rng() % kMaxPayloadBytes, '\0');
      for (auto& c : p) c = static_cast<char>(1 + rng() % 255);
      a.Broadcast("k" + std::to_string(k), std::move(p));
    }
    size_t datagrams = 0, with_both = 0, payloads = 0, largest = 0;
    for (Time t = kStart; t < kStart + 20s; t = a.NextWakeup()) {
      a.Tick(t);
      for (const Outgoing& o : a.TakeOutgoing()) {
        ++datagrams;
        EXPECT_LE(o.message.payloads.size(), kMaxPayloadsPerDatagram);
        payloads += o.message.payloads.size();
        for (const std::string& p : o.message.payloads) largest = std::max(largest, p.size());
        with_both += !o.message.updates.empty() && !o.message.payloads.empty();
        auto bytes = EncodeMessage(o.message);
        ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
        ASSERT_LE(bytes->size(), limit);
      }
    }
    EXPECT_GT(datagrams, 100u) << limit;
    EXPECT_GT(payloads, 100u) << limit;
    EXPECT_GT(with_both, 10u) << limit;
    // The largest payloads fit a default datagram (in a gossip round at least).
    if (limit == kMaxDatagramBytes) {
      EXPECT_GT(largest, kMaxPayloadBytes - 20);
    }
  }
}

TEST(MembershipPayloads, BroadcastIgnoresWhatCannotBeSent) {
  Membership a = Known(kFollower, {Info(2)});
  a.Broadcast("empty", "");
  a.Broadcast("big", std::string(kMaxPayloadBytes + 1, 'x'));
  EXPECT_GT(a.NextWakeup(), kStart + 100ms);  // nothing queued, no gossip round
  // Too big for the configured datagrams, even alone in a gossip message.
  MembershipConfig cfg;
  cfg.max_datagram_bytes = 300;
  Membership small = Known(kFollower, {Info(2)}, cfg);
  small.Broadcast("k", std::string(400, 'x'));
  EXPECT_GT(small.NextWakeup(), kStart + 100ms);
  small.Broadcast("k", std::string(200, 'x'));
  EXPECT_LE(small.NextWakeup(), kStart + 100ms);
  // After leaving: ignored, while what was queued before still goes out.
  Membership b = Known(Info(1), {Info(2)});
  b.Broadcast("before", "queued");
  b.Leave(kStart);
  b.Broadcast("after", "late");
  bool before = false;
  for (int i = 0; i < 100 && b.NextWakeup() != Time::max(); ++i) {
    for (const Outgoing& o : b.TakeOutgoing()) {
      before |= Carries(o.message, "queued");
      EXPECT_FALSE(Carries(o.message, "late"));
    }
    b.Tick(b.NextWakeup());
  }
  EXPECT_TRUE(before);
  EXPECT_EQ(b.NextWakeup(), Time::max());
}

TEST(MembershipPayloads, OnlyMessagesTheCoreAcceptsDeliverPayloads) {
  Membership a = Known(Info(1), {Info(2)});
  Message m = From(Info(2), Message::Type::kGossip);
  m.payloads = {"one", "two"};
  a.OnMessage("n2", m, kStart);
  Message stranger = From(Info(9), Message::Type::kGossip, {Alive(Info(9), 0)});
  stranger.payloads = {"three"};
  a.OnMessage("n9", stranger, kStart);  // unknown senders are heard, as their updates are
  Message echo = From(Info(1), Message::Type::kGossip);
  echo.payloads = {"ours"};
  a.OnMessage("n1", echo, kStart);
  Message anonymous = m;
  anonymous.sender = {};
  anonymous.payloads = {"anonymous"};
  a.OnMessage("n2", anonymous, kStart);
  EXPECT_EQ(a.TakePayloads(), (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_TRUE(a.TakePayloads().empty());
  a.Leave(kStart + 1s);
  a.OnMessage("n2", m, kStart + 2s);
  EXPECT_TRUE(a.TakePayloads().empty());
}

TEST(MembershipPayloads, UntakenPayloadsAreBounded) {
  Membership a = Known(Info(1), {Info(2)});
  Message m = From(Info(2), Message::Type::kGossip);
  const size_t n = Membership::kMaxPendingPayloads + 100;
  for (size_t i = 0; i < n; ++i) {
    m.payloads = {std::to_string(i)};
    a.OnMessage("n2", m, kStart);
  }
  auto got = a.TakePayloads();
  ASSERT_EQ(got.size(), Membership::kMaxPendingPayloads);
  EXPECT_EQ(got.front(), "100");  // the oldest went
  EXPECT_EQ(got.back(), std::to_string(n - 1));
}

TEST(MembershipPayloads, TheBroadcastQueueIsBounded) {
  // Broadcasting faster than gossip spreads: the queue keeps the newest.
  Mesh mesh(2);
  const size_t n = Membership::kMaxQueuedPayloads + 10;
  for (size_t i = 0; i < n; ++i) mesh["n1"].Broadcast(std::to_string(i), "p" + std::to_string(i));
  mesh.RunUntil(kStart + 600s);
  std::set<std::string> sent;
  for (const Mesh::Sent& s : mesh.sent())
    if (s.from == "n1") sent.insert(s.out.message.payloads.begin(), s.out.message.payloads.end());
  EXPECT_EQ(sent.size(), Membership::kMaxQueuedPayloads);
  for (size_t i = 0; i < 10; ++i) EXPECT_FALSE(sent.count("p" + std::to_string(i))) << i;
  EXPECT_TRUE(sent.count("p" + std::to_string(n - 1)));
}

}  // namespace
}  // namespace ndo::mesh
