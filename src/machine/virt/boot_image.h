// Loading what the virt board boots: a Linux kernel Image, an initrd, an optional M-mode
// firmware (OpenSBI's fw_jump/fw_dynamic as ELF or raw binary), and where each goes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "mem/bus.h"

namespace nimbus::machine::virt {

struct BootFiles {
  std::string kernel;    // raw RISC-V Linux Image (arch/riscv/boot/Image)
  std::string initrd;    // optional
  std::string firmware;  // optional: M-mode firmware; empty means the built-in SBI
};

struct BootLayout {
  uint64_t kernel_entry = 0;
  uint64_t kernel_end = 0;
  uint64_t firmware_entry = 0;  // 0 when booting with the built-in SBI
  uint64_t initrd_start = 0, initrd_end = 0;
  uint64_t dtb_addr = 0;         // where the device tree goes (filled in by place_dtb)
  uint64_t fw_dynamic_info = 0;  // OpenSBI fw_dynamic_info struct, when firmware is used
};

// Reads the files and copies them into RAM: the kernel at RAM base + the Image header's
// text_offset, the initrd high in RAM below a 2 MiB area for the device tree, the
// firmware at its ELF addresses (a raw binary at RAM base). Every error names the file
// and what is wrong. Each file must be a regular file that fits where it goes (see
// check_boot_files); nothing larger than RAM is ever read.
Result<BootLayout> load_boot_files(const BootFiles& files, mem::Bus& bus);

// The checks load_boot_files makes, for a VM of `ram_size` bytes, without loading
// anything: each file exists and is a regular file (not /dev/zero, a FIFO or a
// directory), the kernel is a whole RISC-V Linux Image, and kernel, initrd and firmware
// fit where they go in RAM with the device tree. Reads the kernel's header and the
// firmware (bounded by `ram_size`), nothing else. An empty `kernel` checks the other files
// on their own. For configuration time, so a bad file is refused before a VM is built.
Status check_boot_files(const BootFiles& files, uint64_t ram_size);

// Places the device tree at the top of RAM; fails if it does not fit above the kernel
// and initrd.
Status place_dtb(const std::vector<uint8_t>& dtb, mem::Bus& bus, BootLayout& layout);

}  // namespace nimbus::machine::virt
