// The board's virtio device table: one row per kind of virtio device, in slot order. A row
// says how many devices of its kind a VirtConfig and its VirtBackends ask for and builds
// each of them around its backend (opened by the VMM: the machine opens no host file).
// VirtMachine fills the virtio-mmio slots by walking the table and names no device itself;
// adding a device type is its folder under devices/virtio/, its field in VirtConfig or
// VirtBackends and a row here (docs/machine.md).
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
  // How many devices of this kind `config` and `backends` ask for.
  size_t (*count)(const VirtConfig& config, const VirtBackends& backends);
  // Builds the index-th of them (0 <= index < count), moving its backend out of
  // `backends`. Errors name the option at fault ("--net: ..."), as the user wrote it.
  Result<std::unique_ptr<devices::VirtioDevice>> (*create)(const VirtConfig& config,
                                                           VirtBackends& backends, size_t index);
};

// Every kind, in slot order.
std::span<const VirtioKind> virtio_kinds();

// How many virtio devices `config` and `backends` ask for in all.
size_t virtio_device_count(const VirtConfig& config, const VirtBackends& backends);

}  // namespace nimbus::machine::virt
