// The flattened device tree the virt board hands to firmware and kernel, built with libfdt.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace nimbus::machine::virt {

struct DeviceTreeConfig {
  unsigned harts = 1;
  uint64_t ram_size = 0;
  std::string bootargs;
  uint64_t initrd_start = 0, initrd_end = 0;  // both zero: no initrd
  std::string isa = "rv64imafdc_zicntr_zicsr_zifencei_zba_zbb_zbs";
  std::string mmu_type = "riscv,sv48";
  unsigned virtio_slots = 0;  // how many virtio-mmio slots to describe
};

// Builds the blob. Fails only if libfdt reports an error (a bug, or an absurd config).
Result<std::vector<uint8_t>> build_device_tree(const DeviceTreeConfig& config);

}  // namespace nimbus::machine::virt
