#include "backends/block/disk_resize.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "backends/block/block_backend.h"
#include "backends/block/disk_lock.h"
#include "backends/block/qcow2.h"

namespace nimbus::backends {

Result<uint64_t> disk_size(const std::string& path) {
  auto probed = probe_disk_format(path);
  if (!probed.ok()) return probed.status();
  if (*probed == DiskFormat::kQcow2) {
    auto image = Qcow2Image::open(path, true);
    if (!image.ok()) return image.status();
    return (*image)->size();
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return Status::error(fmt::format("cannot stat '{}': {}", path, std::strerror(errno)));
  return static_cast<uint64_t>(st.st_size);
}

Status resize_disk(const std::string& path, uint64_t new_size) {
  auto probed = probe_disk_format(path);
  if (!probed.ok()) return probed.status();
  if (*probed == DiskFormat::kQcow2) {
    auto image = Qcow2Image::open(path, false);
    if (!image.ok()) return image.status();
    if (new_size == (*image)->size()) return {};
    if (new_size < (*image)->size()) {
      return Status::error(fmt::format("'{}': shrinking is not supported ({} < {} bytes)", path,
                                       new_size, (*image)->size()));
    }
    return (*image)->resize(new_size);
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Status::error(fmt::format("cannot open '{}': {}", path, std::strerror(errno)));
  if (Status s = lock_disk_image(fd, path, true); !s.ok()) {
    ::close(fd);
    return s;
  }
  struct stat st {};
  ::fstat(fd, &st);
  const uint64_t current = static_cast<uint64_t>(st.st_size);
  Status s;
  if (new_size < current) {
    s = Status::error(
        fmt::format("'{}': shrinking is not supported ({} < {} bytes)", path, new_size, current));
  } else if (new_size > current && ::ftruncate(fd, static_cast<off_t>(new_size)) != 0) {
    s = Status::error(fmt::format("cannot resize '{}': {}", path, std::strerror(errno)));
  }
  ::close(fd);
  return s;
}

}  // namespace nimbus::backends
