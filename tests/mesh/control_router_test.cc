// Control routing: every command to its service, the refusals an unsecured
// mesh or a node without the CA key give before any service is called, the
// leave flag, and how `ndo members remove` names a member.
#include "mesh/agent/control_router.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ndo::mesh {
namespace {

const ControlFacts kInsecure{false, false};
const ControlFacts kMember{true, false};
const ControlFacts kCa{true, true};

ControlRoute Route(ControlCommand c, const ControlFacts& f) { return RouteControl(ControlRequest(c), f); }

TEST(ControlRouter, EachCommandGoesToItsService) {
  EXPECT_EQ(Route(ControlCommand::kCreateToken, kCa).call, ControlCall::kCreateToken);
  EXPECT_EQ(Route(ControlCommand::kRotateKeys, kMember).call, ControlCall::kRotateKeys);
  EXPECT_EQ(Route(ControlCommand::kRemoveMember, kMember).call, ControlCall::kRemoveMember);
  EXPECT_EQ(Route(ControlCommand::kSubmitScan, kInsecure).call, ControlCall::kSubmitScan);
  EXPECT_EQ(Route(ControlCommand::kScanControl, kInsecure).call, ControlCall::kScanControl);
  EXPECT_EQ(Route(ControlCommand::kMembers, kInsecure).call, ControlCall::kDescribe);
  EXPECT_EQ(Route(ControlCommand::kStatus, kCa).call, ControlCall::kDescribe);
}

TEST(ControlRouter, OnlyLeaveLeaves) {
  ControlRoute leave = Route(ControlCommand::kLeave, kInsecure);
  EXPECT_EQ(leave.call, ControlCall::kDescribe);
  EXPECT_TRUE(leave.leave);
  for (ControlCommand c : {ControlCommand::kMembers, ControlCommand::kStatus, ControlCommand::kRotateKeys,
                           ControlCommand::kSubmitScan, ControlCommand::kCreateToken})
    EXPECT_FALSE(Route(c, kCa).leave);
}

TEST(ControlRouter, UnsecuredMeshHasNoTokensKeysOrCertificates) {
  for (ControlCommand c : {ControlCommand::kCreateToken, ControlCommand::kRotateKeys, ControlCommand::kRemoveMember}) {
    ControlRoute r = Route(c, kInsecure);
    EXPECT_EQ(r.call, ControlCall::kRefuse);
    EXPECT_NE(r.error.find("unsecured mesh"), std::string::npos);
  }
}

TEST(ControlRouter, OnlyTheCaHolderIssuesTokens) {
  ControlRoute r = Route(ControlCommand::kCreateToken, kMember);
  EXPECT_EQ(r.call, ControlCall::kRefuse);
  EXPECT_NE(r.error.find("CA key"), std::string::npos);
}

TEST(ControlRouter, UndecodableRequestIsRefusedWithItsReason) {
  ControlRoute r = RouteControl(Status::Corruption("truncated"), kCa);
  EXPECT_EQ(r.call, ControlCall::kRefuse);
  EXPECT_EQ(r.error, "truncated");
  EXPECT_FALSE(r.leave);
}

NodeId Id(const std::string& prefix) { return NodeId::FromHex(prefix + std::string(32 - prefix.size(), '0')); }

TEST(ControlRouter, ResolveMemberByNameIdOrPrefix) {
  NodeId self = Id("ff");
  std::vector<NamedMember> members{{Id("aabbccdd11"), "alpha", true}, {Id("aabbccdd22"), "beta", true},
                                   {Id("1234567890"), "", false}};
  auto by_name = ResolveMember("beta", members, self);
  ASSERT_TRUE(by_name.ok());
  EXPECT_EQ(by_name->id, Id("aabbccdd22"));
  EXPECT_EQ(by_name->name, "beta");
  auto by_prefix = ResolveMember("aabbccdd1", members, self);
  ASSERT_TRUE(by_prefix.ok());
  EXPECT_EQ(by_prefix->name, "alpha");
  // A prefix shorter than 8 is no id; one that matches two is ambiguous.
  EXPECT_FALSE(ResolveMember("aabbcc", members, self).ok());
  auto two = ResolveMember("aabbccdd", members, self);
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("matches 2 members"), std::string::npos);
  // A full id of a node no longer known still names it.
  NodeId reaped = Id("0badc0de");
  auto full = ResolveMember(reaped.Hex(), members, self);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->id, reaped);
  EXPECT_TRUE(full->name.empty());
  EXPECT_FALSE(ResolveMember("nobody", members, self).ok());
  // Not itself.
  auto itself = ResolveMember(self.Hex(), members, self);
  ASSERT_FALSE(itself.ok());
  EXPECT_NE(itself.status().message().find("cannot remove itself"), std::string::npos);
}

}  // namespace
}  // namespace ndo::mesh
