// Control routing: every command to its service, the refusals an unsecured
// mesh, a node without the CA key or a scanner node give before any service
// is called, the leave flag, and how `ndo members remove` names a member.
#include "mesh/agent/control_router.h"

#include "mesh/work/pool_state.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ndo::mesh {
namespace {

const ControlFacts kInsecure{false, false};
const ControlFacts kMember{true, false, NodeRole::kOperator};
const ControlFacts kScanner{true, false, NodeRole::kScanner};
const ControlFacts kCa{true, true, NodeRole::kOperator};
// The first node of a cluster made before roles: its certificate reads as
// a scanner, but it holds the CA key.
const ControlFacts kOldCa{true, true, NodeRole::kScanner};

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

ControlRequest ScanAction(ScanControl action) {
  ControlRequest r(ControlCommand::kScanControl);
  r.scan = "abcd";
  r.scan_action = static_cast<uint8_t>(action);
  return r;
}

TEST(ControlRouter, AScannerNodeMayOnlyDescribeAndLeave) {
  struct Case {
    ControlRequest request;
    std::string what;
  };
  std::vector<Case> refused{{ControlRequest(ControlCommand::kSubmitScan), "submit scans"},
                            {ScanAction(ScanControl::kPaused), "pause scans"},
                            {ScanAction(ScanControl::kRunning), "resume scans"},
                            {ScanAction(ScanControl::kStopped), "stop scans"},
                            {ControlRequest(ControlCommand::kCreateToken), "create tokens"},
                            {ControlRequest(ControlCommand::kRemoveMember), "remove members"},
                            {ControlRequest(ControlCommand::kRotateKeys), "rotate keys"}};
  for (const Case& c : refused) {
    ControlRoute r = RouteControl(c.request, kScanner);
    EXPECT_EQ(r.call, ControlCall::kRefuse) << c.what;
    EXPECT_NE(r.error.find("the role scanner; only an operator may " + c.what), std::string::npos) << r.error;
    EXPECT_NE(r.error.find("ndo token create --role operator"), std::string::npos) << r.error;
    EXPECT_FALSE(r.leave);
    // The same request on an operator node goes to its service.
    EXPECT_NE(RouteControl(c.request, c.what == "create tokens" ? kCa : kMember).call, ControlCall::kRefuse)
        << c.what;
  }
  EXPECT_EQ(Route(ControlCommand::kMembers, kScanner).call, ControlCall::kDescribe);
  EXPECT_EQ(Route(ControlCommand::kStatus, kScanner).call, ControlCall::kDescribe);
  ControlRoute leave = Route(ControlCommand::kLeave, kScanner);
  EXPECT_EQ(leave.call, ControlCall::kDescribe);
  EXPECT_TRUE(leave.leave);
}

TEST(ControlRouter, TheCaHolderAndAnUnsecuredMeshAreNotBoundByRoles) {
  // The CA holder could sign itself an operator's certificate anyway.
  EXPECT_EQ(Route(ControlCommand::kSubmitScan, kOldCa).call, ControlCall::kSubmitScan);
  EXPECT_EQ(Route(ControlCommand::kCreateToken, kOldCa).call, ControlCall::kCreateToken);
  // No certificates, no roles: the role in the facts means nothing.
  const ControlFacts insecure_scanner{false, false, NodeRole::kScanner};
  EXPECT_EQ(Route(ControlCommand::kSubmitScan, insecure_scanner).call, ControlCall::kSubmitScan);
  EXPECT_EQ(RouteControl(ScanAction(ScanControl::kStopped), insecure_scanner).call, ControlCall::kScanControl);
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
