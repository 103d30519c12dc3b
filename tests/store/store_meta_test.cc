// Metadata accessors: named opaque values beside the scans.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "store/store.h"

namespace ndo {
namespace {

TEST(StoreMeta, PutGetOverwriteDeleteAndSurviveReopen) {
  std::string dir = ::testing::TempDir() + "/ndo-store-meta-" + std::to_string(getpid());
  std::filesystem::remove_all(dir);
  {
    auto store = Store::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status().message();
    auto missing = (*store)->GetMeta("mesh.node");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.status().code(), Status::Code::kNotFound);
    ASSERT_TRUE((*store)->PutMeta("mesh.node", std::string("a\0b", 3)).ok());
    ASSERT_TRUE((*store)->PutMeta("other", "x").ok());
    ASSERT_TRUE((*store)->PutMeta("mesh.node", std::string("v2\0", 3)).ok());
    EXPECT_EQ((*store)->PutMeta("", "x").code(), Status::Code::kInvalidArgument);
    // Metadata never shows up as scans.
    auto scans = (*store)->ListScans();
    ASSERT_TRUE(scans.ok());
    EXPECT_TRUE(scans->empty());
  }
  auto store = Store::Open(dir);
  ASSERT_TRUE(store.ok());
  auto v = (*store)->GetMeta("mesh.node");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, std::string("v2\0", 3));
  EXPECT_EQ(*(*store)->GetMeta("other"), "x");
  ASSERT_TRUE((*store)->DeleteMeta("other").ok());
  EXPECT_EQ((*store)->GetMeta("other").status().code(), Status::Code::kNotFound);
  store = Status::NotFound("closed");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ndo
