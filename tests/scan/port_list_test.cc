#include "scan/port_list.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace ndo {
namespace {

TEST(PortList, ListsAndRanges) {
  auto p = ParsePortList("80,22,8000-8003,22");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, (std::vector<uint16_t>{22, 80, 8000, 8001, 8002, 8003}));
  EXPECT_EQ(ParsePortList("-")->size(), 65535u);
  EXPECT_EQ(ParsePortList("-100")->size(), 100u);
  EXPECT_EQ(ParsePortList("65530-")->size(), 6u);
}

TEST(PortList, OverlappingAndNestedRangesInAnyOrder) {
  auto p = ParsePortList("100-200,150,1-3,2,50-60,55-70,300-,-2,65535");
  ASSERT_TRUE(p.ok());
  std::vector<uint16_t> want;
  for (uint32_t port = 1; port <= 65535; ++port)
    if (port <= 3 || (port >= 50 && port <= 70) || (port >= 100 && port <= 200) || port >= 300)
      want.push_back(static_cast<uint16_t>(port));
  EXPECT_EQ(*p, want);
  EXPECT_EQ(FormatPortList(*ParsePortList("9,8,7,1-5,4-6")), "1-9");
}

// Found by tests/fuzz/fuzz_port_list (a timeout): every item used to be
// expanded to its ports before sorting, so a list repeating a wide range
// cost 65535 ports per item; a 4 KB "-,-,-,..." took 6.7 s and 260 MB, a
// 32 KB one a minute and 2 GB. Now it costs its length.
TEST(PortList, RepeatedWideRangesCostTheirLengthNotTheirPorts) {
  std::string spec = "-";
  for (int i = 0; i < 20000; ++i) spec += i % 2 ? ",1-65535" : ",-";
  auto start = std::chrono::steady_clock::now();
  auto p = ParsePortList(spec);
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(p.ok());
  ASSERT_EQ(p->size(), 65535u);
  EXPECT_EQ(p->front(), 1);
  EXPECT_EQ(p->back(), 65535);
  // Milliseconds now, even under the sanitizers; minutes before.
  EXPECT_LT(elapsed, std::chrono::seconds(10));
}

TEST(PortList, BadInput) {
  for (const char* bad : {"", "0", "65536", "80,", "a", "90-80", "1-2-3", "80,,81"}) {
    auto p = ParsePortList(bad);
    EXPECT_FALSE(p.ok()) << bad;
    if (!p.ok()) {
      EXPECT_NE(p.status().message().find("port"), std::string::npos) << p.status().message();
    }
  }
}

TEST(PortList, TopPortsFollowNmapFrequencies) {
  auto top50 = TopPorts(50);
  ASSERT_TRUE(top50.ok());
  // Nmap 7.93: nmap --top-ports 50 scans exactly these.
  EXPECT_EQ(FormatPortList(*top50),
            "21-23,25-26,53,80-81,110-111,113,135,139,143,179,199,443,445,465,514-515,548,554,587,646,993,995,"
            "1025-1027,1433,1720,1723,2000-2001,3306,3389,5060,5666,5900,6001,8000,8008,8080,8443,8888,10000,"
            "32768,49152,49154");
  EXPECT_EQ(TopPorts(1)->front(), 80);
  EXPECT_EQ(TopPorts(1000)->size(), 1000u);
  EXPECT_FALSE(TopPorts(0).ok());
  EXPECT_FALSE(TopPorts(1001).ok());
}

TEST(PortList, ServiceNames) {
  EXPECT_EQ(ServiceName(22), "ssh");
  EXPECT_EQ(ServiceName(443), "https");
  EXPECT_EQ(ServiceName(3389), "ms-wbt-server");
  EXPECT_EQ(ServiceName(1), "tcpmux");
  EXPECT_EQ(ServiceName(6379), "redis");
  EXPECT_EQ(ServiceName(64999), "unknown");
}

}  // namespace
}  // namespace ndo
