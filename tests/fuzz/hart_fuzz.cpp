// libFuzzer target: a hart runs arbitrary bytes as code. The input fills the start of a
// small RAM (the rest is zero) and becomes the initial register file; the hart runs a
// bounded number of instructions in M-mode with traps vectored back into the input. A
// hostile program may do anything architectural; it must never crash the VMM, read or
// write outside guest RAM, or hang.
#include <cstdint>
#include <cstring>

#include "cpu/hart.h"
#include "mem/bus.h"

namespace {
constexpr uint64_t kBase = 0x80000000;
constexpr uint64_t kRam = 64 * 1024;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nimbus;
  mem::Bus bus(kBase, kRam);
  std::memcpy(bus.ram(), data, size < kRam ? size : kRam);
  cpu::Hart hart(bus, 0);
  hart.reset(kBase);
  // Registers from the input's first bytes, so addresses and CSR values vary too.
  for (unsigned r = 1; r < 32 && (r + 1) * 8 <= size; r++) std::memcpy(&hart.x[r], data + r * 8, 8);
  hart.mtvec = kBase + 0x40;
  hart.mstatus_ |= 1ull << 13;  // FP on
  for (int i = 0; i < 64 && !hart.waiting; i++) hart.run(64);
  return 0;
}
