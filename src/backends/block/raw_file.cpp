#include "backends/block/raw_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "backends/block/disk_lock.h"

namespace nimbus::backends {

Status pread_full(int fd, const std::string& path, uint64_t offset, uint8_t* buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, buf + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::error(fmt::format("{}: read error at offset {}: {}", path, offset + done,
                                       std::strerror(errno)));
    }
    if (n == 0) {  // end of file: a sparse or shrunk file reads as zeros
      std::memset(buf + done, 0, len - done);
      break;
    }
    done += static_cast<size_t>(n);
  }
  return Status();
}

Status pwrite_full(int fd, const std::string& path, uint64_t offset, const uint8_t* buf,
                   size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd, buf + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::error(fmt::format("{}: write error at offset {}: {}", path, offset + done,
                                       std::strerror(errno)));
    }
    if (n == 0) {
      return Status::error(
          fmt::format("{}: write at offset {} made no progress", path, offset + done));
    }
    done += static_cast<size_t>(n);
  }
  return Status();
}

Result<std::unique_ptr<RawFile>> RawFile::open(const std::string& path, bool read_only) {
  // O_NONBLOCK so that a FIFO named as a disk cannot hang us before the type check below;
  // it has no effect on regular files and block devices and is cleared anyway.
  int fd = ::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    return Status::error(
        fmt::format("cannot open disk image '{}': {}", path, std::strerror(errno)));
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Status::error(fmt::format("cannot stat '{}': {}", path, std::strerror(err)));
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd, BLKGETSIZE64, &size) != 0) {
      int err = errno;
      ::close(fd);
      return Status::error(
          fmt::format("cannot get the size of '{}': {}", path, std::strerror(err)));
    }
  } else if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::error(fmt::format("'{}' is not a regular file or block device", path));
  }
  if (Status s = lock_disk_image(fd, path, !read_only); !s.ok()) {
    ::close(fd);
    return s;
  }
  return std::unique_ptr<RawFile>(new RawFile(fd, path, size, read_only));
}

RawFile::~RawFile() { ::close(fd_); }

Status RawFile::check_range(uint64_t offset, uint64_t len) const {
  if (offset > size_ || len > size_ - offset) {
    return Status::error(fmt::format("{}: access at offset {} length {} is past the end ({} bytes)",
                                     path_, offset, len, size_));
  }
  return Status();
}

Status RawFile::read(uint64_t offset, uint8_t* buf, size_t len) {
  if (Status s = check_range(offset, len); !s.ok()) return s;
  return pread_full(fd_, path_, offset, buf, len);
}

Status RawFile::write(uint64_t offset, const uint8_t* buf, size_t len) {
  if (read_only_) return Status::error(fmt::format("{}: the disk is read-only", path_));
  if (Status s = check_range(offset, len); !s.ok()) return s;
  return pwrite_full(fd_, path_, offset, buf, len);
}

Status RawFile::flush() {
  if (read_only_) return Status();
  if (::fdatasync(fd_) != 0 && ::fsync(fd_) != 0) {
    return Status::error(fmt::format("{}: flush failed: {}", path_, std::strerror(errno)));
  }
  return Status();
}

Status RawFile::discard(uint64_t offset, uint64_t len) {
  if (read_only_) return Status::error(fmt::format("{}: the disk is read-only", path_));
  if (Status s = check_range(offset, len); !s.ok()) return s;
  if (len == 0) return Status();
  if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(len)) != 0) {
    // Discard is advisory: filesystems and block devices without hole punching keep the data.
    if (errno == EOPNOTSUPP || errno == ENOSYS || errno == ENODEV) return Status();
    return Status::error(fmt::format("{}: discard failed: {}", path_, std::strerror(errno)));
  }
  return Status();
}

}  // namespace nimbus::backends

namespace nimbus::backends {

Result<std::vector<std::pair<uint64_t, uint64_t>>> RawFile::own_extents() {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  uint64_t at = 0;
  while (at < size_) {
    const off_t data = ::lseek(fd_, static_cast<off_t>(at), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // no data past `at`
      // A file system (or block device) that cannot tell: all of it.
      return std::vector<std::pair<uint64_t, uint64_t>>{{0, size_}};
    }
    if (static_cast<uint64_t>(data) >= size_) break;
    off_t hole = ::lseek(fd_, data, SEEK_HOLE);
    if (hole < 0) hole = static_cast<off_t>(size_);
    const uint64_t end = std::min<uint64_t>(static_cast<uint64_t>(hole), size_);
    if (end <= static_cast<uint64_t>(data)) break;
    out.emplace_back(static_cast<uint64_t>(data), end - static_cast<uint64_t>(data));
    at = end;
  }
  return out;
}

}  // namespace nimbus::backends
