#include "base/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ndo {

namespace {

std::string Errno(int e) { return std::strerror(e); }

Status WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(Errno(errno));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

}  // namespace

Status WritePrivateFile(const std::string& path, std::string_view bytes) {
  if (path.empty()) return Status::InvalidArgument("empty file name");
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) {
    // Left by an earlier process of the same pid that died mid-write.
    ::unlink(tmp.c_str());
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  }
  if (fd < 0) return Status::IoError("cannot create " + tmp + ": " + Errno(errno));
  auto fail = [&](const std::string& what, int e) {
    ::unlink(tmp.c_str());
    return Status::IoError(what + " " + tmp + ": " + Errno(e));
  };
  // The umask may only have narrowed 0600; make it exactly that.
  if (::fchmod(fd, 0600) != 0) {
    int e = errno;
    ::close(fd);
    return fail("cannot chmod", e);
  }
  if (Status s = WriteAll(fd, bytes); !s.ok()) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return Status::IoError("cannot write " + tmp + ": " + s.message());
  }
  if (::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    return fail("cannot sync", e);
  }
  if (::close(fd) != 0) return fail("cannot close", errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return Status::IoError("cannot rename " + tmp + " to " + path + ": " + Errno(e));
  }
  // Make the rename durable too (best effort: the file itself is synced).
  std::string dir = ".";
  if (auto slash = path.rfind('/'); slash != std::string::npos) dir = slash == 0 ? "/" : path.substr(0, slash);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

Result<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return Status::NotFound(path + ": no such file");
    return Status::IoError("cannot open " + path + ": " + Errno(e));
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::IoError("cannot stat " + path + ": " + Errno(errno));
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(path + " is not a regular file");
  auto too_big = [&] { return Status::InvalidArgument(path + " is larger than " + std::to_string(max_bytes) + " bytes"); };
  if (static_cast<uint64_t>(st.st_size) > max_bytes) return too_big();
  std::string out;
  out.reserve(static_cast<size_t>(st.st_size));
  // Read to the end: the file may have grown since fstat.
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IoError("cannot read " + path + ": " + Errno(errno));
    }
    if (n == 0) break;
    if (static_cast<size_t>(n) > max_bytes - out.size()) return too_big();
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace ndo
