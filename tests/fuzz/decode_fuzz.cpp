// libFuzzer target: the instruction decoder and disassembler on arbitrary 32-bit words.
// Every word must decode (possibly to `illegal`) and disassemble without crashing, and a
// 16-bit instruction must decode the same whatever its upper half holds.
#include <cstdint>
#include <cstring>

#include "cpu/isa/decode.h"
#include "cpu/isa/disasm.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace nimbus::cpu::isa;
  for (size_t i = 0; i + 4 <= size; i += 4) {
    uint32_t raw;
    std::memcpy(&raw, data + i, 4);
    Decoded d = decode(raw);
    if (d.len != 2 && d.len != 4) __builtin_trap();
    if (d.row != kNoRow && d.row >= kRowCount) __builtin_trap();
    (void)disassemble(d, 0x80000000);
    if (is_compressed(raw)) {
      Decoded low = decode(raw & 0xffff);
      if (low.op != d.op || low.imm != d.imm || low.rd != d.rd) __builtin_trap();
    }
  }
  return 0;
}
