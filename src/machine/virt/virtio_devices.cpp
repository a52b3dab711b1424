#include "machine/virt/virtio_devices.h"

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "backends/block/block_backend.h"
#include "backends/net/net_backend.h"
#include "devices/virtio/blk/virtio_blk.h"
#include "devices/virtio/console/virtio_console.h"
#include "devices/virtio/net/virtio_net.h"
#include "devices/virtio/rng/virtio_rng.h"

namespace nimbus::machine::virt {

namespace {

using DeviceResult = Result<std::unique_ptr<devices::VirtioDevice>>;

// virtio-blk: one per --disk, vda, vdb, ... GET_ID answers "nimbus-diskN".
size_t blk_count(const VirtConfig& c) { return c.disks.size(); }
DeviceResult blk_create(const VirtConfig& c, size_t i) {
  auto disk = backends::open_disk(c.disks[i]);
  if (!disk.ok()) return Status::error("--disk: " + disk.message());
  return std::unique_ptr<devices::VirtioDevice>(
      std::make_unique<devices::VirtioBlk>(std::move(*disk), fmt::format("nimbus-disk{}", i)));
}

// virtio-net: one per --net, eth0, eth1, ...; its backend starts receiving at once.
size_t net_count(const VirtConfig& c) { return c.nics.size(); }
DeviceResult net_create(const VirtConfig& c, size_t i) {
  auto backend = backends::open_net(c.nics[i].spec);
  if (!backend.ok()) return Status::error("--net: " + backend.message());
  auto net = std::make_unique<devices::VirtioNet>(std::move(*backend), c.nics[i].mac);
  if (Status s = net->start(); !s.ok()) return Status::error("--net: " + s.message());
  return std::unique_ptr<devices::VirtioDevice>(std::move(net));
}

size_t rng_count(const VirtConfig& c) { return c.rng ? 1 : 0; }
DeviceResult rng_create(const VirtConfig&, size_t) {
  return std::unique_ptr<devices::VirtioDevice>(std::make_unique<devices::VirtioRng>());
}

// virtio-console: output to virtio_console_sink if set (the VMM's agent channel), else
// appended to the file virtio_console names.
size_t console_count(const VirtConfig& c) {
  return c.virtio_console_sink || !c.virtio_console.empty() ? 1 : 0;
}
DeviceResult console_create(const VirtConfig& c, size_t) {
  if (c.virtio_console_sink) {
    return std::unique_ptr<devices::VirtioDevice>(
        std::make_unique<devices::VirtioConsole>(c.virtio_console_sink));
  }
  std::FILE* f = std::fopen(c.virtio_console.c_str(), "ae");
  if (f == nullptr) {
    return Status::error(fmt::format("--virtio-console: cannot write '{}': {}", c.virtio_console,
                                     std::strerror(errno)));
  }
  // The sink owns the file: the device destroys (joins) its IoThread before its sink, so
  // the file closes after the last write.
  std::shared_ptr<std::FILE> out(f, [](std::FILE* p) { std::fclose(p); });
  return std::unique_ptr<devices::VirtioDevice>(
      std::make_unique<devices::VirtioConsole>([out](const uint8_t* data, size_t len) {
        std::fwrite(data, 1, len, out.get());
        std::fflush(out.get());
      }));
}

constexpr std::array<VirtioKind, 4> kKinds = {{
    {devices::VirtioBlk::kName, blk_count, blk_create},
    {devices::VirtioNet::kName, net_count, net_create},
    {devices::VirtioRng::kName, rng_count, rng_create},
    {devices::VirtioConsole::kName, console_count, console_create},
}};

}  // namespace

std::span<const VirtioKind> virtio_kinds() { return kKinds; }

size_t virtio_device_count(const VirtConfig& config) {
  size_t n = 0;
  for (const VirtioKind& k : kKinds) n += k.count(config);
  return n;
}

}  // namespace nimbus::machine::virt
