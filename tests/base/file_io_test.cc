// Small files written atomically with mode 0600 and read whole, bounded
// (base/file_io.h): the cluster's keys, certificates and keyring go through
// these.
#include "base/file_io.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace ndo {
namespace {

template <typename T>
T Must(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(*r) : T{};
}

class FileIoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "ndo_file_io_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    for (const std::string& name : Entries()) ::unlink((dir_ + "/" + name).c_str());
    ::rmdir(dir_.c_str());
  }
  std::vector<std::string> Entries() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(dir_.c_str())) {
      while (dirent* e = ::readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.push_back(e->d_name);
      ::closedir(d);
    }
    return out;
  }
  static mode_t Mode(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0);
    return st.st_mode & 07777;
  }
  std::string dir_;
};

TEST_F(FileIoTest, WritePrivateFileCreatesMode0600) {
  std::string path = dir_ + "/node.key";
  mode_t old = ::umask(0);  // even with a permissive umask
  Status s = WritePrivateFile(path, "secret bytes");
  ::umask(old);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Mode(path), 0600u);
  EXPECT_EQ(Must(ReadSmallFile(path, 1024)), "secret bytes");
  EXPECT_EQ(Entries(), std::vector<std::string>{"node.key"});  // no temporary left
}

TEST_F(FileIoTest, WritePrivateFileReplacesAtomically) {
  std::string path = dir_ + "/ca.key";
  // An existing, world-readable file.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "old", 3), 3);
  ::close(fd);
  ::chmod(path.c_str(), 0644);
  struct stat before {};
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  int reader = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(reader, 0);

  std::string big(100000, 'x');
  ASSERT_TRUE(WritePrivateFile(path, big).ok());
  struct stat after {};
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  EXPECT_NE(after.st_ino, before.st_ino);  // a new file renamed over, not rewritten in place
  EXPECT_EQ(after.st_mode & 07777, 0600u);
  EXPECT_EQ(Must(ReadSmallFile(path, big.size())), big);
  char buf[8] = {};
  EXPECT_EQ(::read(reader, buf, sizeof buf), 3);  // whoever had it open still sees the old file whole
  EXPECT_EQ(std::string(buf, 3), "old");
  ::close(reader);

  ASSERT_TRUE(WritePrivateFile(path, "").ok());
  EXPECT_EQ(Must(ReadSmallFile(path, 10)), "");
  EXPECT_EQ(Entries(), std::vector<std::string>{"ca.key"});
}

TEST_F(FileIoTest, WritePrivateFileReplacesAStaleTemporary) {
  std::string path = dir_ + "/k";
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ASSERT_TRUE(WritePrivateFile(path, "v").ok());
  EXPECT_EQ(Must(ReadSmallFile(path, 10)), "v");
  EXPECT_EQ(Mode(path), 0600u);
  EXPECT_EQ(Entries(), std::vector<std::string>{"k"});
}

TEST_F(FileIoTest, WritePrivateFileFailsCleanly) {
  auto s = WritePrivateFile(dir_ + "/missing/dir/file", "x");
  EXPECT_EQ(s.code(), Status::Code::kIoError);
  // Renaming over a directory fails, and the temporary is removed.
  ASSERT_EQ(::mkdir((dir_ + "/adir").c_str(), 0700), 0);
  ::close(::open((dir_ + "/adir/inner").c_str(), O_WRONLY | O_CREAT, 0600));
  s = WritePrivateFile(dir_ + "/adir", "x");
  EXPECT_EQ(s.code(), Status::Code::kIoError);
  EXPECT_EQ(Entries(), std::vector<std::string>{"adir"});
  ::unlink((dir_ + "/adir/inner").c_str());
  ::rmdir((dir_ + "/adir").c_str());
}

TEST_F(FileIoTest, ReadSmallFileBounds) {
  EXPECT_EQ(ReadSmallFile(dir_ + "/nope", 10).status().code(), Status::Code::kNotFound);
  std::string path = dir_ + "/f";
  ASSERT_TRUE(WritePrivateFile(path, std::string(100, 'z')).ok());
  EXPECT_EQ(Must(ReadSmallFile(path, 100)).size(), 100u);
  auto r = ReadSmallFile(path, 99);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument);
  EXPECT_FALSE(ReadSmallFile(path, 0).ok());
  EXPECT_FALSE(ReadSmallFile(dir_, 100).ok());  // a directory
}

}  // namespace
}  // namespace ndo
