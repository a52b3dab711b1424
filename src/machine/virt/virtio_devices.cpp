#include "machine/virt/virtio_devices.h"

#include <fmt/format.h>

#include <array>

#include "backends/block/block_backend.h"
#include "backends/net/net_backend.h"
#include "devices/virtio/blk/virtio_blk.h"
#include "devices/virtio/console/virtio_console.h"
#include "devices/virtio/net/virtio_net.h"
#include "devices/virtio/rng/virtio_rng.h"

namespace nimbus::machine::virt {

namespace {

using DeviceResult = Result<std::unique_ptr<devices::VirtioDevice>>;

// virtio-blk: one per disk, vda, vdb, ... GET_ID answers "nimbus-diskN".
size_t blk_count(const VirtConfig&, const VirtBackends& b) { return b.disks.size(); }
DeviceResult blk_create(const VirtConfig&, VirtBackends& b, size_t i) {
  if (b.disks[i] == nullptr) return Status::error(fmt::format("--disk: disk {} has no backend", i));
  return std::unique_ptr<devices::VirtioDevice>(
      std::make_unique<devices::VirtioBlk>(std::move(b.disks[i]), fmt::format("nimbus-disk{}", i)));
}

// virtio-net: one per NIC, eth0, eth1, ...; its backend starts receiving at once.
size_t net_count(const VirtConfig&, const VirtBackends& b) { return b.nics.size(); }
DeviceResult net_create(const VirtConfig&, VirtBackends& b, size_t i) {
  if (b.nics[i].backend == nullptr)
    return Status::error(fmt::format("--net: NIC {} has no backend", i));
  auto net = std::make_unique<devices::VirtioNet>(std::move(b.nics[i].backend), b.nics[i].mac,
                                                  b.nics[i].mtu);
  if (Status s = net->start(); !s.ok()) return Status::error("--net: " + s.message());
  return std::unique_ptr<devices::VirtioDevice>(std::move(net));
}

size_t rng_count(const VirtConfig& c, const VirtBackends&) { return c.rng ? 1 : 0; }
DeviceResult rng_create(const VirtConfig&, VirtBackends&, size_t) {
  return std::unique_ptr<devices::VirtioDevice>(std::make_unique<devices::VirtioRng>());
}

// virtio-console: its output goes to the function the VMM gave (the guest-agent channel,
// or a file the VMM opened).
size_t console_count(const VirtConfig&, const VirtBackends& b) { return b.virtio_console ? 1 : 0; }
DeviceResult console_create(const VirtConfig&, VirtBackends& b, size_t) {
  return std::unique_ptr<devices::VirtioDevice>(
      std::make_unique<devices::VirtioConsole>(b.virtio_console));
}

constexpr std::array<VirtioKind, 4> kKinds = {{
    {devices::VirtioBlk::kName, blk_count, blk_create},
    {devices::VirtioNet::kName, net_count, net_create},
    {devices::VirtioRng::kName, rng_count, rng_create},
    {devices::VirtioConsole::kName, console_count, console_create},
}};

}  // namespace

std::span<const VirtioKind> virtio_kinds() { return kKinds; }

size_t virtio_device_count(const VirtConfig& config, const VirtBackends& backends) {
  size_t n = 0;
  for (const VirtioKind& k : kKinds) n += k.count(config, backends);
  return n;
}

}  // namespace nimbus::machine::virt
