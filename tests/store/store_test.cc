#include "store/store.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace ndo {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/ndo-store-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

ScanRecord MakeRecord() {
  ScanRecord rec;
  rec.spec.arguments = {"ndo", "scan", "127.0.0.0/30", "-p", "22,80"};
  rec.spec.targets.addresses.Add({IpAddress::FromV4(0x7f000000).value(), IpAddress::FromV4(0x7f000003).value()});
  rec.spec.targets.names.push_back({IpAddress::FromV4(0x7f000001), "localhost"});
  rec.spec.ports = {22, 80};
  rec.spec.has_scope = true;
  rec.spec.scope.Add({IpAddress::FromV4(0x7f000000).value(), IpAddress::FromV4(0x7fffffff).value()});
  rec.spec.seed = 99;
  rec.spec.shard_count = 2;
  rec.spec.store_all = true;
  rec.spec.probe.rate = 1500.5;
  rec.spec.probe.max_retries = 3;
  rec.created_us = 1'700'000'000'000'000;
  rec.id = MakeScanId(rec.spec, rec.created_us);
  rec.counters.open = 7;
  rec.state = ScanState::kInterrupted;
  return rec;
}

TEST_F(StoreTest, ScanRecordsRoundTripWithFullSpec) {
  auto store = Store::Open(dir_);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  ScanRecord rec = MakeRecord();
  ASSERT_TRUE((*store)->PutScan(rec).ok());
  auto back = (*store)->FindScan(ScanIdToHex(rec.id).substr(0, 6));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->id, rec.id);
  EXPECT_EQ(back->spec.arguments, rec.spec.arguments);
  EXPECT_EQ(back->spec.targets.addresses.ranges(), rec.spec.targets.addresses.ranges());
  ASSERT_EQ(back->spec.targets.names.size(), 1u);
  EXPECT_EQ(back->spec.targets.names[0].hostname, "localhost");
  EXPECT_EQ(back->spec.ports, rec.spec.ports);
  EXPECT_TRUE(back->spec.has_scope);
  EXPECT_EQ(back->spec.scope.ranges(), rec.spec.scope.ranges());
  EXPECT_EQ(back->spec.seed, 99u);
  EXPECT_EQ(back->spec.shard_count, 2u);
  EXPECT_TRUE(back->spec.store_all);
  EXPECT_DOUBLE_EQ(back->spec.probe.rate, 1500.5);
  EXPECT_EQ(back->spec.probe.max_retries, 3);
  EXPECT_EQ(back->counters.open, 7u);
  EXPECT_EQ(back->state, ScanState::kInterrupted);
  EXPECT_EQ((*store)->ListScans()->size(), 1u);
  EXPECT_EQ((*store)->FindScan("ffffffff").status().code(), Status::Code::kNotFound);
  EXPECT_EQ((*store)->FindScan("ab").status().code(), Status::Code::kInvalidArgument);
}

TEST_F(StoreTest, ResultsAndProgressSurviveReopenAndMergeByPreference) {
  ScanRecord rec = MakeRecord();
  {
    auto store = Store::Open(dir_);
    ASSERT_TRUE(store.ok());
    ResultBatch b;
    b.results.push_back({IpAddress::FromV4(0x7f000002), 80, PortState::kOpen, 1, 50, 10});
    b.results.push_back({IpAddress::FromV4(0x7f000001), 22, PortState::kClosed, 1, 40, 11});
    b.results.push_back({IpAddress::FromV4(0x7f000001), 80, PortState::kFiltered, 3, 0, 12});
    b.progress.push_back({0, 17, false});
    b.progress.push_back({1, 40, true});
    ASSERT_TRUE((*store)->WriteBatch(rec.id, b, /*store_all=*/true).ok());
    // A rerun of the same probe that timed out must not erase the open port.
    ResultBatch again;
    again.results.push_back({IpAddress::FromV4(0x7f000002), 80, PortState::kFiltered, 3, 0, 99});
    again.progress.push_back({0, 20, false});
    ASSERT_TRUE((*store)->WriteBatch(rec.id, again, true).ok());
  }
  auto store = Store::Open(dir_);
  ASSERT_TRUE(store.ok());
  std::vector<ProbeResult> got;
  ASSERT_TRUE((*store)->ForEachResult(rec.id, [&](const ProbeResult& r) {
    got.push_back(r);
    return true;
  }).ok());
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].address.ToString(), "127.0.0.1");  // sorted by address, then port
  EXPECT_EQ(got[0].port, 22);
  EXPECT_EQ(got[1].port, 80);
  EXPECT_EQ(got[2].address.ToString(), "127.0.0.2");
  EXPECT_EQ(got[2].state, PortState::kOpen);
  auto progress = (*store)->LoadProgress(rec.id);
  ASSERT_TRUE(progress.ok());
  ASSERT_EQ(progress->size(), 2u);
  EXPECT_EQ((*progress)[0].next_position, 20u);
  EXPECT_FALSE((*progress)[0].done);
  EXPECT_TRUE((*progress)[1].done);
}

TEST_F(StoreTest, OpenOnlyByDefault) {
  auto store = Store::Open(dir_);
  ScanId id{9};
  ResultBatch b;
  b.results.push_back({IpAddress::FromV4(1), 1, PortState::kOpen, 1, 1, 1});
  b.results.push_back({IpAddress::FromV4(2), 1, PortState::kClosed, 1, 1, 1});
  b.results.push_back({IpAddress::FromV4(3), 1, PortState::kFiltered, 1, 1, 1});
  ASSERT_TRUE((*store)->WriteBatch(id, b, false).ok());
  int n = 0;
  (*store)->ForEachResult(id, [&](const ProbeResult& r) {
    EXPECT_EQ(r.state, PortState::kOpen);
    ++n;
    return true;
  });
  EXPECT_EQ(n, 1);
}

TEST_F(StoreTest, SecondOpenOfTheSameDirectoryIsRefusedClearly) {
  auto first = Store::Open(dir_);
  ASSERT_TRUE(first.ok());
  auto second = Store::Open(dir_);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use"), std::string::npos) << second.status().message();
}

TEST_F(StoreTest, CorruptRecordsAreReportedNotCrashed) {
  EXPECT_EQ(DecodeScanRecord("garbage!").status().code(), Status::Code::kCorruption);
  EXPECT_EQ(DecodeScanRecord(std::string(64, '\xff')).status().code(), Status::Code::kCorruption);
  std::string good = EncodeScanRecord(MakeRecord());
  for (size_t cut = 8; cut < good.size(); cut += 8)
    EXPECT_FALSE(DecodeScanRecord(std::string_view(good).substr(0, cut)).ok()) << cut;
}

}  // namespace
}  // namespace ndo
