#include "host/vmm_pidfile.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace nimbus::host {

namespace {

struct flock whole_file(short type) {
  struct flock l {};
  l.l_type = type;
  l.l_whence = SEEK_SET;
  l.l_start = 0;
  l.l_len = 0;  // to the end, however long the file grows
  l.l_pid = 0;  // must be 0 for OFD locks
  return l;
}

}  // namespace

int pidfile_lock_in_child(const char* path) noexcept {
  // No O_TRUNC: the pid of a live holder must survive a failed attempt.
  const int fd = ::open(path, O_RDWR | O_CREAT, 0644);
  if (fd < 0) return errno;
  struct flock l = whole_file(F_WRLCK);
  if (::fcntl(fd, F_OFD_SETLK, &l) != 0) {
    const int err = errno;
    ::close(fd);
    return err;
  }
  char rev[16];
  char text[17];
  int n = 0;
  auto v = static_cast<unsigned long>(::getpid());
  do {
    rev[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && n < 15);
  for (int i = 0; i < n; i++) text[i] = rev[n - 1 - i];
  text[n++] = '\n';
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text, static_cast<size_t>(n), 0) != n) {
    const int err = errno;
    ::close(fd);
    return err != 0 ? err : EIO;
  }
  return 0;
}

std::optional<pid_t> pidfile_holder(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  // F_OFD_GETLK reports a conflicting lock without taking one; a read lock conflicts with
  // the holder's write lock.
  struct flock l = whole_file(F_RDLCK);
  const bool locked = ::fcntl(fd, F_OFD_GETLK, &l) == 0 && l.l_type != F_UNLCK;
  char buf[24] = {};
  const ssize_t n = locked ? ::pread(fd, buf, sizeof buf - 1, 0) : -1;
  ::close(fd);
  if (!locked || n <= 0) return std::nullopt;
  char* end = nullptr;
  const long pid = std::strtol(buf, &end, 10);
  if (end == buf || pid <= 0 || (*end != '\n' && *end != '\0')) return std::nullopt;
  return static_cast<pid_t>(pid);
}

}  // namespace nimbus::host
