#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "backends/block/block_backend.h"
#include "backends/block/qcow2.h"
#include "backends/block/raw_file.h"

namespace nimbus::backends {

Result<DiskFormat> probe_disk_format(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    return Status::error(
        fmt::format("cannot open disk image '{}': {}", path, std::strerror(errno)));
  }
  uint8_t magic[4] = {};
  Status s = pread_full(fd, path, 0, magic, sizeof(magic));
  ::close(fd);
  if (!s.ok()) return s;
  static constexpr uint8_t kQcow2Magic[4] = {'Q', 'F', 'I', 0xfb};
  return std::memcmp(magic, kQcow2Magic, 4) == 0 ? DiskFormat::kQcow2 : DiskFormat::kRaw;
}

Result<std::unique_ptr<BlockBackend>> open_disk(const DiskOptions& options,
                                                const BackingChain& chain) {
  DiskFormat format = options.format;
  if (format == DiskFormat::kAuto) {
    auto probed = probe_disk_format(options.path);
    if (!probed.ok()) return probed.status();
    format = *probed;
  }
  if (format == DiskFormat::kQcow2) {
    auto image = Qcow2Image::open(options.path, options.read_only, &chain);
    if (!image.ok()) return image.status();
    return std::unique_ptr<BlockBackend>(std::move(*image));
  }
  auto raw = RawFile::open(options.path, options.read_only);
  if (!raw.ok()) return raw.status();
  return std::unique_ptr<BlockBackend>(std::move(*raw));
}

Result<std::unique_ptr<BlockBackend>> open_disk(const DiskOptions& options) {
  return open_disk(options, BackingChain{});
}

}  // namespace nimbus::backends
