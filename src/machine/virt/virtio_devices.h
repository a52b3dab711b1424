// The board's virtio device table: one row per kind of virtio device, in slot order. A row
// says how many devices of its kind a VirtConfig asks for and builds each of them from
// that configuration (opening its backend). VirtMachine fills the virtio-mmio slots by
// walking the table and names no device itself; adding a device type is its folder under
// devices/virtio/, its field in VirtConfig and a row here (docs/machine.md).
//
// The order of the rows is the order of the slots (slot i at kVirtio.base + i * 0x1000,
// PLIC source kVirtioIrqBase + i), which the guest sees (vda before eth0 before hwrng) and
// which snapshots record: append new kinds at the end.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string_view>

#include "common/status.h"
#include "devices/virtio/virtio_mmio.h"
#include "machine/virt/virt_machine.h"

namespace nimbus::machine::virt {

struct VirtioKind {
  // The devices' VirtioDevice::name() ("virtio-blk"): their snapshot sections are
  // "<name>-mmio" and "<name>", so a kind keeps its name.
  std::string_view name;
  // How many devices of this kind `config` asks for.
  size_t (*count)(const VirtConfig& config);
  // Builds the index-th of them (0 <= index < count). Errors name the option at fault
  // ("--disk: ..."), as the user wrote it.
  Result<std::unique_ptr<devices::VirtioDevice>> (*create)(const VirtConfig& config, size_t index);
};

// Every kind, in slot order.
std::span<const VirtioKind> virtio_kinds();

// How many virtio devices `config` asks for in all.
size_t virtio_device_count(const VirtConfig& config);

}  // namespace nimbus::machine::virt
