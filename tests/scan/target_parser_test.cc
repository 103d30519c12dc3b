#include "scan/target_parser.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace ndo {
namespace {

Resolver FakeResolver() {
  return [](const std::string& host) -> Result<std::vector<IpAddress>> {
    if (host == "dual.test") return std::vector<IpAddress>{*IpAddress::Parse("192.0.2.1"), *IpAddress::Parse("2001:db8::1")};
    return Status::NotFound("cannot resolve '" + host + "'");
  };
}

TargetSet Parse(const std::string& list) {
  TargetSet t;
  Status s = AddTargetList(list, FakeResolver(), t);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return t;
}

std::string ErrorOf(const std::string& list) {
  TargetSet t;
  Status s = AddTargetList(list, FakeResolver(), t);
  EXPECT_FALSE(s.ok()) << list;
  return s.message();
}

TEST(TargetParser, AddressesBlocksAndRanges) {
  EXPECT_EQ(Parse("192.0.2.7").addresses.size(), static_cast<u128>(1));
  EXPECT_EQ(Parse("192.0.2.0/24").addresses.size(), static_cast<u128>(256));
  EXPECT_EQ(Parse("192.0.2.77/24").addresses.ranges()[0].first, IpAddress::Parse("192.0.2.0")->value());
  EXPECT_EQ(Parse("10.0.0.5-10.0.1.20").addresses.size(), static_cast<u128>(256 - 5 + 21));
  EXPECT_EQ(Parse("10.0.0.10-20").addresses.size(), static_cast<u128>(11));
  EXPECT_EQ(Parse("2001:db8::1").addresses.size(), static_cast<u128>(1));
  EXPECT_EQ(Parse("2001:db8::/112").addresses.size(), static_cast<u128>(65536));
  EXPECT_EQ(Parse("0.0.0.0/0").addresses.size(), static_cast<u128>(1) << 32);
}

TEST(TargetParser, OverlapsAndDuplicatesCollapse) {
  TargetSet t = Parse("192.0.2.0/25, 192.0.2.0/24 192.0.2.7,192.0.2.200-210");
  EXPECT_EQ(t.addresses.size(), static_cast<u128>(256));
  EXPECT_EQ(t.addresses.ranges().size(), 1u);
}

TEST(TargetParser, HostnamesResolveToEveryRecord) {
  TargetSet t = Parse("dual.test");
  EXPECT_EQ(t.addresses.size(), static_cast<u128>(2));
  ASSERT_EQ(t.names.size(), 2u);
  EXPECT_EQ(t.names[0].hostname, "dual.test");
}

TEST(TargetParser, BadInputGetsClearErrors) {
  EXPECT_NE(ErrorOf("192.0.2.0/33").find("prefix length above 32"), std::string::npos);
  EXPECT_NE(ErrorOf("2001:db8::/64").find("at most 2^16"), std::string::npos);
  EXPECT_NE(ErrorOf("10.0.0.20-10").find("ends before it starts"), std::string::npos);
  EXPECT_NE(ErrorOf("10.0.0.1-300").find("above 255"), std::string::npos);
  EXPECT_NE(ErrorOf("10.0.0.1-2001:db8::1").find("mixes"), std::string::npos);
  EXPECT_NE(ErrorOf("nosuch.test").find("cannot resolve"), std::string::npos);
  EXPECT_NE(ErrorOf("bad!host").find("neither"), std::string::npos);
  EXPECT_NE(ErrorOf("192.0.2.0/abc").find("not a number"), std::string::npos);
  EXPECT_NE(ErrorOf("999.1.1.1/8").find("not an address"), std::string::npos);
}

TEST(TargetParser, ScopeListsRejectHostnames) {
  EXPECT_TRUE(ParseAddressList("127.0.0.0/8,::1").ok());
  auto r = ParseAddressList("localhost");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not allowed"), std::string::npos);
}

TEST(TargetParser, FilesWithCommentsAndLineNumbersInErrors) {
  std::string path = ::testing::TempDir() + "/targets.txt";
  {
    std::ofstream f(path);
    f << "# lab\n192.0.2.1 192.0.2.2  # two\n\n192.0.2.10-12\n";
  }
  TargetSet t;
  ASSERT_TRUE(AddTargetFile(path, FakeResolver(), t).ok());
  EXPECT_EQ(t.addresses.size(), static_cast<u128>(5));
  {
    std::ofstream f(path);
    f << "192.0.2.1\n192.0.2.0/40\n";
  }
  Status s = AddTargetFile(path, FakeResolver(), t);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("targets.txt:2"), std::string::npos) << s.message();
  EXPECT_FALSE(AddTargetFile("/nonexistent/file", FakeResolver(), t).ok());
  std::remove(path.c_str());
}

TEST(IpAddress, TextRoundTrip) {
  for (const char* text : {"0.0.0.0", "127.0.0.1", "255.255.255.255", "::1", "2001:db8::ff00:42:8329", "fe80::"}) {
    auto a = IpAddress::Parse(text);
    ASSERT_TRUE(a.ok()) << text;
    EXPECT_EQ(a->ToString(), text);
  }
  EXPECT_TRUE(IpAddress::Parse("127.0.0.1")->is_v4());
  EXPECT_FALSE(IpAddress::Parse("::1")->is_v4());
  EXPECT_FALSE(IpAddress::Parse("1.2.3").ok());
  EXPECT_FALSE(IpAddress::Parse(std::string(100, '1')).ok());
}

}  // namespace
}  // namespace ndo
