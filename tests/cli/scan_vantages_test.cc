#include "cli/scan_vantages.h"

#include <gtest/gtest.h>

namespace ndo {
namespace {

mesh::ControlMember Member(std::string vantage, mesh::MemberState state) {
  mesh::ControlMember m;
  m.vantage = std::move(vantage);
  m.state = state;
  return m;
}

TEST(DefaultScanVantages, EveryKnownMembersVantageWhateverItsState) {
  // A member that is down, suspect or not yet confirmed alive still stands
  // for its vantage: dropping it would make a scan look complete while one
  // side of the comparison is missing.
  auto self = Member("dmz", mesh::MemberState::kAlive);
  std::vector<mesh::ControlMember> members{Member("internet", mesh::MemberState::kDead),
                                           Member("wifi", mesh::MemberState::kSuspect),
                                           Member("dmz", mesh::MemberState::kAlive),
                                           Member("lab", mesh::MemberState::kLeft)};
  EXPECT_EQ(DefaultScanVantages(self, members), (std::vector<std::string>{"dmz", "internet", "lab", "wifi"}));
}

TEST(DefaultScanVantages, AloneItIsThisNodesVantage) {
  EXPECT_EQ(DefaultScanVantages(Member("dmz", mesh::MemberState::kAlive), {}), (std::vector<std::string>{"dmz"}));
}

TEST(DefaultScanVantages, EmptyNamesAreLeftOut) {
  std::vector<mesh::ControlMember> members{Member("", mesh::MemberState::kAlive)};
  EXPECT_TRUE(DefaultScanVantages(Member("", mesh::MemberState::kAlive), members).empty());
}

}  // namespace
}  // namespace ndo
