#include "backends/block/disk_lock.h"

#include <fcntl.h>
#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace nimbus::backends {

namespace {

constexpr off_t kPermBase = 100;    // byte 100+p: "I hold permission p"
constexpr off_t kSharedBase = 200;  // byte 200+p: "nobody else may hold p"
constexpr unsigned kConsistentRead = 1u << 0;
constexpr unsigned kWrite = 1u << 1;
constexpr unsigned kWriteUnchanged = 1u << 2;
constexpr unsigned kResize = 1u << 3;
constexpr unsigned kAllPerms = kConsistentRead | kWrite | kWriteUnchanged | kResize;
constexpr int kPermCount = 4;

// Errors that mean "this filesystem cannot do OFD locks" rather than "someone holds it".
bool unsupported(int err) {
  return err == EINVAL || err == ENOLCK || err == EOPNOTSUPP || err == ENOSYS;
}

int set_read_lock(int fd, off_t byte) {
  struct flock fl {};
  fl.l_type = F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = byte;
  fl.l_len = 1;
  return ::fcntl(fd, F_OFD_SETLK, &fl);
}

// 1 when another open file description holds a lock on `byte`, 0 when none does, -1 on error.
int held_by_others(int fd, off_t byte) {
  struct flock fl {};
  fl.l_type = F_WRLCK;  // conflicts with any lock, so GETLK reports any holder
  fl.l_whence = SEEK_SET;
  fl.l_start = byte;
  fl.l_len = 1;
  if (::fcntl(fd, F_OFD_GETLK, &fl) != 0) return -1;
  return fl.l_type == F_UNLCK ? 0 : 1;
}

}  // namespace

Status lock_disk_image(int fd, const std::string& path, bool write) {
  // A writer's metadata updates and size changes must not happen under a reader, and the
  // reader must not see a changing image: both exclude others' write and resize.
  const unsigned perm = write ? kAllPerms : kConsistentRead;
  const unsigned shared = kConsistentRead | kWriteUnchanged;
  auto os_error = [&](const char* what) {
    return Status::error(
        fmt::format("disk image '{}': cannot {}: {}", path, what, std::strerror(errno)));
  };
  for (int p = 0; p < kPermCount; ++p) {
    const unsigned bit = 1u << p;
    for (off_t byte : {(perm & bit) ? kPermBase + p : -1, (shared & bit) ? -1 : kSharedBase + p}) {
      if (byte < 0 || set_read_lock(fd, byte) == 0) continue;
      if (unsupported(errno)) return Status();
      if (errno == EAGAIN || errno == EACCES) {  // an F_WRLCK from some other program
        return Status::error(
            fmt::format("disk image '{}' is in use by another process (locked)", path));
      }
      return os_error("lock it");
    }
  }
  // Someone holds a permission we refuse to share (first, so that a writer is named as
  // one), or refuses to share one we want.
  for (bool theirs_held : {true, false}) {
    for (int p = 0; p < kPermCount; ++p) {
      const unsigned bit = 1u << p;
      const bool test = theirs_held ? !(shared & bit) : (perm & bit) != 0;
      if (!test) continue;
      const off_t byte = (theirs_held ? kPermBase : kSharedBase) + p;
      const int held = held_by_others(fd, byte);
      if (held < 0) return unsupported(errno) ? Status() : os_error("test its locks");
      if (held == 0) continue;
      const char* how = !theirs_held ? " for reading" : bit == kWrite ? " for writing" : "";
      return Status::error(
          fmt::format("disk image '{}' is in use by another process (locked{})", path, how));
    }
  }
  return Status();
}

}  // namespace nimbus::backends
