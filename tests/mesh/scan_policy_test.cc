// Scan policies (mesh/membership/scan_policy.h): --allow parsing and its
// bounds, the compact encoding (canonical, refusing anything else), and a
// member record that carries one through the wire codec and its size bounds.
#include "mesh/membership/scan_policy.h"

#include <gtest/gtest.h>

#include "mesh/membership/codec.h"

namespace ndo::mesh {
namespace {

IntervalSet Parse(const std::string& list) {
  auto p = ParseScanPolicy({list});
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? *p : IntervalSet();
}

bool Contains(const Status& s, const std::string& what) { return s.message().find(what) != std::string::npos; }

TEST(ScanPolicy, ParsesListsRepeatedOrCommaSeparated) {
  auto p = ParseScanPolicy({"127.70.0.0/24,127.71.0.5", "127.71.0.6-127.71.0.9", "::1"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(FormatAddressSet(*p), "::1,127.70.0.0/24,127.71.0.5-127.71.0.9");  // ::1 sorts before IPv4
  EXPECT_TRUE(p->Contains(IpAddress::FromV4(0x7f460001).value()));
  EXPECT_FALSE(p->Contains(IpAddress::FromV4(0x7f470001).value()));
  auto none = ParseScanPolicy({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST(ScanPolicy, BadInputIsRefusedNamingTheToken) {
  for (const auto& [list, why] : std::vector<std::pair<std::string, std::string>>{
           {"scanme.example", "scanme.example"},
           {"10.0.0.0/33", "prefix length"},
           {"10.0.0.9-10.0.0.1", "ends before"},
           {"1.2.3", "1.2.3"}}) {
    auto p = ParseScanPolicy({list});
    ASSERT_FALSE(p.ok()) << list;
    EXPECT_EQ(p.status().code(), Status::Code::kInvalidArgument) << list;
    EXPECT_TRUE(Contains(p.status(), "--allow")) << p.status().ToString();
    EXPECT_TRUE(Contains(p.status(), why)) << p.status().ToString();
  }
}

TEST(ScanPolicy, AtMost32IPv4Or8IPv6Ranges) {
  std::string list;
  for (int i = 0; i < 32; ++i) list += (i ? "," : "") + std::string("10.0.") + std::to_string(2 * i) + ".1";
  EXPECT_TRUE(ParseScanPolicy({list}).ok());
  auto over = ParseScanPolicy({list + ",10.1.0.1"});
  ASSERT_FALSE(over.ok());
  EXPECT_TRUE(Contains(over.status(), "at most 32 IPv4 or 8 IPv6 ranges")) << over.status().ToString();
  std::string v6;
  for (int i = 0; i < 8; ++i) v6 += (i ? "," : "") + std::string("2001:db8::") + std::to_string(2 * i + 1);
  EXPECT_TRUE(ParseScanPolicy({v6}).ok());
  EXPECT_FALSE(ParseScanPolicy({v6 + ",2001:db8::100"}).ok());
}

TEST(ScanPolicy, EncodingRoundTripsAndIsCanonical) {
  IntervalSet p = Parse("127.70.0.0/24,10.0.0.1,2001:db8::/112");
  std::string bytes = EncodeScanPolicy(p);
  EXPECT_EQ(bytes.size(), ScanPolicyBytes(p));
  EXPECT_EQ(bytes.size(), 9u + 9u + 33u);
  auto back = DecodeScanPolicy(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ranges(), p.ranges());
  EXPECT_TRUE(DecodeScanPolicy("")->empty());

  // Anything but the one encoding of a set is refused.
  IntervalSet a = Parse("10.0.0.1"), b = Parse("10.0.0.2");
  std::string adjacent = EncodeScanPolicy(a) + EncodeScanPolicy(b);  // one range, written as two
  std::string reversed = EncodeScanPolicy(b) + EncodeScanPolicy(a);
  for (const std::string& bad : {adjacent, reversed, bytes.substr(0, bytes.size() - 1), std::string("\x05", 1),
                                 std::string(kMaxPolicyBytes + 1, '\x04')}) {
    auto d = DecodeScanPolicy(bad);
    EXPECT_FALSE(d.ok());
    EXPECT_EQ(d.status().code(), Status::Code::kCorruption);
  }
  // An IPv4 range written with the IPv6 tag: a second encoding of it.
  std::string v4_as_v6(1, '\x06');
  for (u128 v : {a.ranges()[0].first, a.ranges()[0].last})
    for (int i = 15; i >= 0; --i) v4_as_v6 += static_cast<char>(static_cast<uint8_t>(v >> (8 * i)));
  EXPECT_FALSE(DecodeScanPolicy(v4_as_v6).ok());
}

TEST(ScanPolicy, TravelsInMemberRecordsWithinTheDatagramBounds) {
  auto info = std::make_shared<MemberInfo>();
  info->id = {1, 2};
  info->name = std::string(kMaxNameBytes, 'n');
  info->vantage = std::string(kMaxVantageBytes, 'v');
  info->address = "127.0.0.1:7946";
  std::string list;
  for (int i = 0; i < 32; ++i) list += (i ? "," : "") + std::string("127.") + std::to_string(i) + ".1.0-127." +
                                       std::to_string(i) + ".2.255";
  info->allow = Parse(list);
  ASSERT_EQ(ScanPolicyBytes(info->allow), kMaxPolicyBytes);
  Message m;
  m.type = Message::Type::kGossip;
  m.sender = {1, 2};
  Update u;
  u.info = info;
  u.incarnation = 3;
  size_t bound = MessageSizeBound(m) + UpdateSizeBound(u);
  m.updates.push_back(u);
  auto bytes = EncodeMessage(m);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  EXPECT_LE(bytes->size(), bound);
  EXPECT_LE(bound, kMaxDatagramBytes) << "a member record at its largest fits a datagram";
  auto back = DecodeMessage(*bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->updates[0].info->allow.ranges(), info->allow.ranges());

  // In push-pull states too; and a record without one reads back without one.
  PushPull pp;
  pp.sender = {1, 2};
  pp.state = {u};
  auto none = std::make_shared<MemberInfo>(*info);
  none->id = {3, 4};
  none->allow = IntervalSet();
  pp.state.push_back({Update::Kind::kAlive, none, 1, {}});
  auto frame = EncodePushPull(pp);
  ASSERT_TRUE(frame.ok());
  auto pp_back = DecodePushPull(*frame);
  ASSERT_TRUE(pp_back.ok()) << pp_back.status().ToString();
  EXPECT_EQ(pp_back->state[0].info->allow.ranges(), info->allow.ranges());
  EXPECT_TRUE(pp_back->state[1].info->allow.empty());

  // A record whose policy is over the bound is not sent.
  info->allow.Add({IpAddress::FromV4(0x0a000001).value(), IpAddress::FromV4(0x0a000001).value()});
  EXPECT_FALSE(ValidateMemberInfo(*info).ok());
}

}  // namespace
}  // namespace ndo::mesh
