#include "mesh/membership/address.h"

#include <gtest/gtest.h>

namespace ndo::mesh {
namespace {

TEST(HostPort, ParsesIpv4AndBracketedIpv6) {
  auto a = ParseHostPort("127.0.0.1:7946");
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_TRUE(a->ip.is_v4());
  EXPECT_EQ(a->port, 7946);
  EXPECT_EQ(a->ToString(), "127.0.0.1:7946");

  auto b = ParseHostPort("[2001:DB8:0::1]:65535");
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->ToString(), "[2001:db8::1]:65535");  // canonical: one spelling per node
  EXPECT_EQ(ParseHostPort("[::1]:1")->ToString(), "[::1]:1");
}

TEST(HostPort, Ipv4MappedIpv6PrintsAsIpv4) {
  auto a = ParseHostPort("[::ffff:192.0.2.7]:80");
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->ToString(), "192.0.2.7:80");
}

TEST(HostPort, Unspecified) {
  EXPECT_TRUE(ParseHostPort("0.0.0.0:1")->unspecified());
  EXPECT_TRUE(ParseHostPort("[::]:1")->unspecified());
  EXPECT_FALSE(ParseHostPort("127.0.0.1:1")->unspecified());
}

TEST(HostPort, RejectsBadInputWithReasons) {
  struct Case {
    const char* text;
    const char* reason;
  };
  for (const Case& c : {Case{"", "expected IP:PORT"}, Case{"127.0.0.1", "missing ':PORT'"},
                        Case{"127.0.0.1:", "missing port"}, Case{":80", "missing IP"},
                        Case{"127.0.0.1:0", "1-65535"}, Case{"127.0.0.1:65536", "1-65535"},
                        Case{"127.0.0.1:99999999999999999999", "1-65535"}, Case{"127.0.0.1:8o", "not a number"},
                        Case{"localhost:80", "hostnames are not accepted"}, Case{"::1:80", "brackets"},
                        Case{"[::1]80", "expected [IPv6]:PORT"}, Case{"[::1:80", "missing ']'"},
                        Case{"256.1.1.1:80", "not an IP address"},
                        Case{"[::1]:", "missing port"}, Case{"127.0.0.1:-5", "not a number"}}) {
    auto r = ParseHostPort(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.reason), std::string::npos) << c.text << ": " << r.status().message();
    EXPECT_NE(r.status().message().find("bad address"), std::string::npos);
  }
  std::string huge(200, '1');
  EXPECT_FALSE(ParseHostPort(huge).ok());
}

}  // namespace
}  // namespace ndo::mesh
