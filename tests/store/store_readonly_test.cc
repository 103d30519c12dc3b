// Store::OpenReadOnly (a RocksDB secondary, readable while a primary holds
// the database) and Store::ForEachMeta.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "store/store.h"

namespace ndo {
namespace {

class StoreReadOnlyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/ndo-store-ro-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

ScanRecord Record() {
  ScanRecord rec;
  rec.spec.arguments = {"ndo", "scan", "127.0.0.1", "-p", "22,80"};
  rec.spec.targets.addresses.Add({IpAddress::FromV4(0x7f000001).value(), IpAddress::FromV4(0x7f000001).value()});
  rec.spec.ports = {22, 80};
  rec.spec.shard_count = 1;
  rec.created_us = 1'700'000'000'000'000;
  rec.id = MakeScanId(rec.spec, rec.created_us);
  return rec;
}

ResultBatch OpenPort(uint16_t port) {
  ProbeResult r;
  r.address = IpAddress::FromV4(0x7f000001);
  r.port = port;
  r.state = PortState::kOpen;
  r.attempts = 1;
  r.time_us = 1'700'000'000'000'001;
  ResultBatch b;
  b.results.push_back(r);
  return b;
}

std::vector<uint16_t> StoredPorts(Store& store, const ScanId& id) {
  std::vector<uint16_t> ports;
  EXPECT_TRUE(store.ForEachResult(id, [&](const ProbeResult& r) {
                ports.push_back(r.port);
                return true;
              }).ok());
  return ports;
}

TEST_F(StoreReadOnlyTest, ReadsWhatALivePrimaryWrote) {
  auto primary = Store::Open(dir_);
  ASSERT_TRUE(primary.ok()) << primary.status().message();
  ScanRecord rec = Record();
  ASSERT_TRUE((*primary)->PutScan(rec).ok());
  ASSERT_TRUE((*primary)->WriteBatch(rec.id, OpenPort(22), false).ok());
  ASSERT_TRUE((*primary)->PutMeta("pool.x", "state").ok());

  // The primary is still open (it holds the lock): a second Open fails,
  // a reader does not.
  EXPECT_EQ(Store::Open(dir_).status().code(), Status::Code::kUnavailable);
  auto reader = Store::OpenReadOnly(dir_);
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  EXPECT_TRUE((*reader)->read_only());
  auto found = (*reader)->FindScan(ScanIdToHex(rec.id));
  ASSERT_TRUE(found.ok()) << found.status().message();
  EXPECT_EQ(found->spec.arguments, rec.spec.arguments);
  EXPECT_EQ(StoredPorts(**reader, rec.id), std::vector<uint16_t>{22});
  EXPECT_EQ(*(*reader)->GetMeta("pool.x"), "state");

  // A later write of the primary is seen by a reader opened after it, and
  // results merge by the primary's rule.
  ASSERT_TRUE((*primary)->WriteBatch(rec.id, OpenPort(80), false).ok());
  auto later = Store::OpenReadOnly(dir_);
  ASSERT_TRUE(later.ok()) << later.status().message();
  EXPECT_EQ(StoredPorts(**later, rec.id), (std::vector<uint16_t>{22, 80}));
}

TEST_F(StoreReadOnlyTest, ReadsAClosedStoreAndRefusesAMissingOne) {
  ScanRecord rec = Record();
  {
    auto primary = Store::Open(dir_);
    ASSERT_TRUE(primary.ok());
    ASSERT_TRUE((*primary)->PutScan(rec).ok());
    ASSERT_TRUE((*primary)->WriteBatch(rec.id, OpenPort(443), false).ok());
  }
  auto reader = Store::OpenReadOnly(dir_);
  ASSERT_TRUE(reader.ok()) << reader.status().message();
  EXPECT_EQ(StoredPorts(**reader, rec.id), std::vector<uint16_t>{443});
  // With a reader open, the primary can still be opened.
  EXPECT_TRUE(Store::Open(dir_).ok());

  auto missing = Store::OpenReadOnly(dir_ + "/nothing-here");
  EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/nothing-here"));  // a reader creates nothing
}

TEST_F(StoreReadOnlyTest, RefusesWritesAndRemovesItsScratchDirectory) {
  std::string tmp = dir_ + "/tmp";
  std::filesystem::create_directories(tmp);
  std::string saved = getenv("TMPDIR") ? getenv("TMPDIR") : "";
  setenv("TMPDIR", tmp.c_str(), 1);
  ScanRecord rec = Record();
  {
    auto primary = Store::Open(dir_ + "/db");
    ASSERT_TRUE(primary.ok());
    ASSERT_TRUE((*primary)->PutMeta("keep", "1").ok());
    auto reader = Store::OpenReadOnly(dir_ + "/db");
    ASSERT_TRUE(reader.ok()) << reader.status().message();
    EXPECT_FALSE(std::filesystem::is_empty(tmp));  // the secondary's scratch directory
    Store& r = **reader;
    ServiceEvidence ev;
    ev.address = IpAddress::FromV4(0x7f000001);
    ev.port = 22;
    for (Status s : {r.PutScan(rec), r.WriteBatch(rec.id, OpenPort(22), true), r.WriteEvidence(rec.id, {ev}),
                     r.PutMeta("keep", "2"), r.DeleteMeta("keep")}) {
      EXPECT_EQ(s.code(), Status::Code::kUnavailable);
      EXPECT_NE(s.message().find("read-only"), std::string::npos) << s.message();
    }
    EXPECT_EQ(*r.GetMeta("keep"), "1");
    EXPECT_EQ(*(*primary)->GetMeta("keep"), "1");
    EXPECT_TRUE((*primary)->ListScans()->empty());
  }
  EXPECT_TRUE(std::filesystem::is_empty(tmp));
  if (saved.empty()) unsetenv("TMPDIR");
  else setenv("TMPDIR", saved.c_str(), 1);
}

TEST_F(StoreReadOnlyTest, ForEachMetaVisitsAPrefixInOrderWithoutTheInternalPrefix) {
  auto store = Store::Open(dir_);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->PutScan(Record()).ok());  // other kinds never show up
  ASSERT_TRUE((*store)->PutMeta("pool.bb", "2").ok());
  ASSERT_TRUE((*store)->PutMeta("pool.aa", std::string("1\0x", 3)).ok());
  ASSERT_TRUE((*store)->PutMeta("poolside", "no").ok());
  ASSERT_TRUE((*store)->PutMeta("mesh.node", "no").ok());
  ASSERT_TRUE((*store)->PutMeta("pool.cc", "3").ok());

  std::vector<std::pair<std::string, std::string>> seen;
  auto collect = [&](std::string_view k, std::string_view v) {
    seen.emplace_back(k, v);
    return true;
  };
  ASSERT_TRUE((*store)->ForEachMeta("pool.", collect).ok());
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, std::string>>{
                      {"pool.aa", std::string("1\0x", 3)}, {"pool.bb", "2"}, {"pool.cc", "3"}}));

  seen.clear();
  ASSERT_TRUE((*store)->ForEachMeta("", collect).ok());
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen.front().first, "mesh.node");

  size_t visits = 0;
  ASSERT_TRUE((*store)->ForEachMeta("pool.", [&](std::string_view, std::string_view) { return ++visits < 2; }).ok());
  EXPECT_EQ(visits, 2u);

  // The same through a reader.
  auto reader = Store::OpenReadOnly(dir_);
  ASSERT_TRUE(reader.ok());
  seen.clear();
  ASSERT_TRUE((*reader)->ForEachMeta("pool.b", collect).ok());
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, std::string>>{{"pool.bb", "2"}}));
}

}  // namespace
}  // namespace ndo
