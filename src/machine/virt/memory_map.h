// The "virt" board's memory map, compatible with QEMU's riscv64 virt machine so that the
// same kernels and firmware run on both. The bus mapping and the device tree are built
// from these constants.
#pragma once

#include <cstdint>

namespace nimbus::machine::virt {

struct Region {
  uint64_t base;
  uint64_t size;
};

constexpr Region kTest = {0x00100000, 0x1000};    // sifive,test: poweroff/reboot (syscon)
constexpr Region kRtc = {0x00101000, 0x1000};     // google,goldfish-rtc
constexpr Region kClint = {0x02000000, 0x10000};  // CLINT (ACLINT MSWI + MTIMER)
constexpr Region kPlic = {0x0c000000, 0x600000};  // PLIC, 2 contexts per hart, 8 harts
constexpr Region kUart = {0x10000000, 0x100};     // NS16550A
constexpr Region kVirtio = {0x10001000, 0x1000};  // first of kVirtioSlots virtio-mmio slots
constexpr unsigned kVirtioSlots = 8;
constexpr uint64_t kRamBase = 0x80000000;

// PLIC interrupt sources (QEMU's numbers).
constexpr unsigned kVirtioIrqBase = 1;  // slot i uses kVirtioIrqBase + i
constexpr unsigned kUartIrq = 10;
constexpr unsigned kRtcIrq = 11;
constexpr unsigned kPlicSources = 96;  // riscv,ndev = 95

constexpr uint64_t kTimebaseHz = 10'000'000;  // mtime ticks per second
constexpr unsigned kMaxHarts = 8;

}  // namespace nimbus::machine::virt
