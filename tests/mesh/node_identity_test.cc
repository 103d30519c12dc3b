// The node's persisted identity: what a restart keeps, and the incarnation
// it starts at.
#include "mesh/agent/node_identity.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace ndo::mesh {
namespace {

class NodeIdentity : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/ndo-identity-" + std::to_string(getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static IdentityRequest Request() {
    IdentityRequest r;
    r.name = "node-a";
    r.vantage = "dmz";
    r.listen = *ParseHostPort("127.0.0.1:7946");
    return r;
  }

  std::string dir_;
};

NodeState SampleState() {
  NodeState st;
  st.self = {NodeId{1, 2}, "node-a", "dmz", "127.0.0.1:7946", 7, 3};
  st.incarnation = 12;
  st.listen = "127.0.0.1:7946";
  st.max_epoch_seen = 9;
  st.saved_at_us = 1234567;
  st.members.push_back({{NodeId{3, 4}, "node-b", "wifi", "[::1]:7000", 100, 0}, 5, MemberState::kDead});
  st.members.push_back({{NodeId{5, 6}, "node-c", "internet", "127.0.0.3:7946", 1, 2}, 1, MemberState::kLeft});
  st.members.push_back({{NodeId{7, 8}, "node-d", "dmz", "127.0.0.4:7946", 100, 0}, 0, MemberState::kAlive});
  st.self.allow.Add({IpAddress::FromV4(0x7f460000).value(), IpAddress::FromV4(0x7f4600ff).value()});
  st.members[0].info.allow.Add({IpAddress::Parse("::1")->value(), IpAddress::Parse("::1")->value()});
  return st;
}

void ExpectSameMember(const MemberInfo& a, const MemberInfo& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.vantage, b.vantage);
  EXPECT_EQ(a.address, b.address);
  EXPECT_EQ(a.priority, b.priority);
  EXPECT_EQ(a.epoch, b.epoch);
  EXPECT_EQ(a.allow.ranges(), b.allow.ranges());
}

// The scan policy is part of the saved identity: a restart without
// --allow keeps it, one with --allow replaces it (an empty one too).
TEST_F(NodeIdentity, ARestartKeepsTheScanPolicyUnlessGivenANewOne) {
  IdentityRequest first = Request();
  IntervalSet left;
  left.Add({IpAddress::FromV4(0x7f460000).value(), IpAddress::FromV4(0x7f4600ff).value()});
  first.allow = left;
  auto st = ResolveIdentity(std::nullopt, first);
  ASSERT_TRUE(st.ok()) << st.status().message();
  EXPECT_EQ(st->self.allow.ranges(), left.ranges());
  auto kept = ResolveIdentity(*st, IdentityRequest());
  ASSERT_TRUE(kept.ok()) << kept.status().message();
  EXPECT_EQ(kept->self.allow.ranges(), left.ranges());
  IdentityRequest wider;
  IntervalSet all;
  all.Add({IpAddress::FromV4(0x7f000000).value(), IpAddress::FromV4(0x7fffffff).value()});
  wider.allow = all;
  auto replaced = ResolveIdentity(*kept, wider);
  ASSERT_TRUE(replaced.ok());
  EXPECT_EQ(replaced->self.allow.ranges(), all.ranges());
  IdentityRequest none;
  none.allow = IntervalSet();
  auto emptied = ResolveIdentity(*replaced, none);
  ASSERT_TRUE(emptied.ok());
  EXPECT_TRUE(emptied->self.allow.empty());
  // No policy at all on a first start: allowed, and the node takes no work.
  auto bare = ResolveIdentity(std::nullopt, Request());
  ASSERT_TRUE(bare.ok());
  EXPECT_TRUE(bare->self.allow.empty());
}

TEST_F(NodeIdentity, StateRoundTripsThroughTheStore) {
  NodeState st = SampleState();
  {
    auto store = Store::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status().message();
    EXPECT_EQ(LoadNodeState(**store).status().code(), Status::Code::kNotFound);
    ASSERT_TRUE(SaveNodeState(**store, st).ok());
  }
  auto store = Store::Open(dir_);  // as after a restart
  ASSERT_TRUE(store.ok());
  auto back = LoadNodeState(**store);
  ASSERT_TRUE(back.ok()) << back.status().message();
  ExpectSameMember(back->self, st.self);
  EXPECT_EQ(back->incarnation, 12u);
  EXPECT_EQ(back->listen, st.listen);
  EXPECT_EQ(back->max_epoch_seen, 9u);
  EXPECT_EQ(back->saved_at_us, 1234567);
  ASSERT_EQ(back->members.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    ExpectSameMember(back->members[i].info, st.members[i].info);
    EXPECT_EQ(back->members[i].incarnation, st.members[i].incarnation);
    EXPECT_EQ(back->members[i].state, st.members[i].state);
  }
}

TEST_F(NodeIdentity, FreshIdentityNeedsListenAndVantage) {
  auto fresh = ResolveIdentity(std::nullopt, Request());
  ASSERT_TRUE(fresh.ok()) << fresh.status().message();
  EXPECT_FALSE(fresh->self.id.empty());
  EXPECT_EQ(fresh->self.name, "node-a");
  EXPECT_EQ(fresh->self.address, "127.0.0.1:7946");
  EXPECT_EQ(fresh->self.priority, kDefaultPriority);
  EXPECT_EQ(fresh->incarnation, 0u);
  EXPECT_NE(ResolveIdentity(std::nullopt, Request())->self.id, fresh->self.id);  // random

  IdentityRequest no_vantage = Request();
  no_vantage.vantage.clear();
  auto r = ResolveIdentity(std::nullopt, no_vantage);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("--vantage"), std::string::npos);
  IdentityRequest no_listen = Request();
  no_listen.listen.reset();
  EXPECT_NE(ResolveIdentity(std::nullopt, no_listen).status().message().find("--listen"), std::string::npos);

  IdentityRequest wildcard = Request();
  wildcard.listen = *ParseHostPort("0.0.0.0:7946");
  EXPECT_NE(ResolveIdentity(std::nullopt, wildcard).status().message().find("--advertise"), std::string::npos);
  wildcard.advertise = *ParseHostPort("192.0.2.1:7946");
  auto advertised = ResolveIdentity(std::nullopt, wildcard);
  ASSERT_TRUE(advertised.ok()) << advertised.status().message();
  EXPECT_EQ(advertised->self.address, "192.0.2.1:7946");
  EXPECT_EQ(advertised->listen, "0.0.0.0:7946");

  IdentityRequest unnamed = Request();
  unnamed.name.clear();
  auto named = ResolveIdentity(std::nullopt, unnamed);
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->self.name, DefaultNodeName());
  EXPECT_LE(named->self.name.size(), kMaxNameBytes);
}

TEST_F(NodeIdentity, RestartKeepsIdAndRaisesIncarnation) {
  NodeState saved = SampleState();
  IdentityRequest same;  // nothing given: everything from the saved state
  auto r = ResolveIdentity(saved, same);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->self.id, saved.self.id);
  EXPECT_EQ(r->incarnation, 13u);  // beats the "dead at 12" others may hold
  EXPECT_EQ(r->self.name, "node-a");
  EXPECT_EQ(r->self.vantage, "dmz");
  EXPECT_EQ(r->self.priority, 7u);
  EXPECT_EQ(r->max_epoch_seen, 9u);
  EXPECT_EQ(r->members.size(), 3u);

  IdentityRequest moved = Request();
  moved.vantage = "wifi";
  moved.listen = *ParseHostPort("127.0.0.9:8000");
  moved.priority = 1;
  auto m = ResolveIdentity(saved, moved);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->self.id, saved.self.id);
  EXPECT_EQ(m->self.vantage, "wifi");
  EXPECT_EQ(m->self.address, "127.0.0.9:8000");
  EXPECT_EQ(m->self.priority, 1u);
}

// A secured node runs as the vantage its certificate binds: --vantage may
// be left out (first start or restart) or repeat it, never differ; a saved
// state's other vantage gives way to the certificate's.
TEST_F(NodeIdentity, TheCertifiedVantageIsTheNodesAndAnotherIsRefused) {
  IdentityRequest fresh = Request();
  fresh.vantage.clear();
  fresh.certified_vantage = "internet";
  auto r = ResolveIdentity(std::nullopt, fresh);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->self.vantage, "internet");
  fresh.vantage = "internet";
  EXPECT_EQ(ResolveIdentity(std::nullopt, fresh)->self.vantage, "internet");

  fresh.vantage = "dmz";
  auto other = ResolveIdentity(std::nullopt, fresh);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), Status::Code::kInvalidArgument);
  EXPECT_NE(other.status().message().find("certificate binds vantage 'internet'"), std::string::npos)
      << other.status().message();
  EXPECT_NE(other.status().message().find("--vantage 'dmz'"), std::string::npos);

  NodeState saved = SampleState();  // saved as "dmz"
  IdentityRequest restart;
  restart.certified_vantage = "internet";
  auto again = ResolveIdentity(saved, restart);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->self.vantage, "internet");
  restart.vantage = "dmz";
  EXPECT_FALSE(ResolveIdentity(saved, restart).ok());
}

TEST_F(NodeIdentity, RejoinAddressesSeedsFirstWithoutSelfOrLeftMembers) {
  NodeState st = SampleState();
  st.members.push_back({{NodeId{9, 9}, "dup", "dmz", "127.0.0.4:7946", 1, 0}, 0, MemberState::kAlive});
  auto a = RejoinAddresses(st, {"127.0.0.2:1", "127.0.0.1:7946"});
  EXPECT_EQ(a, (std::vector<std::string>{"127.0.0.2:1", "[::1]:7000", "127.0.0.4:7946"}));
}

TEST_F(NodeIdentity, CorruptStateIsAnErrorNotACrash) {
  EXPECT_FALSE(DecodeNodeState("").ok());
  EXPECT_FALSE(DecodeNodeState("1234567").ok());
  EXPECT_FALSE(DecodeNodeState(std::string(64, '\xff')).ok());
  auto good = EncodeNodeState(SampleState());
  ASSERT_TRUE(good.ok());
  // Every truncation and many single-byte corruptions: an error or a valid
  // state, never a crash.
  for (size_t n = 0; n < good->size(); n += 8) (void)DecodeNodeState(good->substr(0, n));
  for (size_t i = 0; i < good->size(); ++i) {
    std::string bad = *good;
    bad[i] = static_cast<char>(bad[i] ^ 0x5a);
    (void)DecodeNodeState(bad);
  }
  NodeState st = SampleState();
  st.members[0].info.name = std::string(kMaxNameBytes + 1, 'x');
  auto enc = EncodeNodeState(st);
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ(DecodeNodeState(*enc).status().code(), Status::Code::kCorruption);
}

}  // namespace
}  // namespace ndo::mesh
