#include "vmm/machine_backends.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "backends/block/block_backend.h"
#include "backends/net/net_backend.h"
#include "common/mac.h"

namespace nimbus::vmm {

namespace {

backends::DiskFormat disk_format(const std::string& format) {
  return format == "raw"     ? backends::DiskFormat::kRaw
         : format == "qcow2" ? backends::DiskFormat::kQcow2
                             : backends::DiskFormat::kAuto;
}

}  // namespace

Result<machine::virt::VirtBackends> open_backends(
    const VmConfig& config, std::shared_ptr<backends::MetadataLink> metadata) {
  machine::virt::VirtBackends b;
  for (const DriveConfig& d : config.drives) {
    backends::DiskOptions o;
    o.path = d.path;
    o.read_only = d.read_only;
    o.format = disk_format(d.format);
    auto disk = backends::open_disk(o);
    if (!disk.ok())
      return Status::error(fmt::format("--disk: drive '{}': {}", d.id, disk.message()));
    b.disks.push_back(std::move(*disk));
  }
  for (const NetConfig& n : config.nics) {
    auto mac = parse_mac(n.mac);
    if (!mac.ok())
      return Status::error(fmt::format("--net: network interface '{}': {}", n.id, mac.message()));
    auto backend = backends::open_net(n, metadata);
    if (!backend.ok())
      return Status::error(
          fmt::format("--net: network interface '{}': {}", n.id, backend.message()));
    b.nics.push_back({std::move(*backend), *mac, static_cast<uint16_t>(n.mtu)});
  }
  return b;
}

Result<std::function<void(const uint8_t*, size_t)>> open_console_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "ae");
  if (f == nullptr) {
    return Status::error(
        fmt::format("--virtio-console: cannot write '{}': {}", path, std::strerror(errno)));
  }
  // The sink owns the file: the device destroys (joins) its IoThread before its sink, so
  // the file closes after the last write.
  std::shared_ptr<std::FILE> out(f, [](std::FILE* p) { std::fclose(p); });
  return std::function<void(const uint8_t*, size_t)>([out](const uint8_t* data, size_t len) {
    std::fwrite(data, 1, len, out.get());
    std::fflush(out.get());
  });
}

}  // namespace nimbus::vmm
