// Instruction decoding generated from instructions.inc.
#pragma once

#include <cstdint>

namespace nimbus::cpu::isa {

// One dispatch target per 32-bit instruction row (compressed rows reuse their base's).
enum class Op : uint16_t {
#define INSN(name, mnemonic, mask, match, fmt, ops, ext, cls, jit) name,
#include "cpu/isa/instructions.inc"
  illegal,  // no row matches, or a reserved compressed encoding
  count
};

// A row of the table, as data (for the disassembler and tests).
struct Row {
  const char* name;
  const char* mnemonic;
  uint32_t mask;
  uint32_t match;
  const char* operands;
  const char* extension;  // for 32-bit rows; "C" for compressed ones
  Op op;
  bool compressed;
};
extern const Row kRows[];
extern const unsigned kRowCount;
constexpr uint16_t kNoRow = 0xffff;

// A decoded instruction: the fields every body needs, extracted once.
struct Decoded {
  uint32_t raw;  // the instruction bits (16-bit ones zero-extended)
  Op op;
  uint16_t row;  // index into kRows, or kNoRow for illegal
  uint8_t rd, rs1, rs2, rs3;
  uint8_t rm;   // funct3 (rounding mode for FP rows)
  uint8_t len;  // 2 or 4
  int32_t imm;  // every RV64GC immediate fits in 32 bits, sign-extended on use
};
static_assert(sizeof(Decoded) == 20, "keep decoded instructions small: the cache holds 64K");

// Decodes one instruction. `raw` holds 32 bits fetched at pc; if its low two bits are not
// 0b11 only the low 16 bits are an instruction.
Decoded decode(uint32_t raw);

// True if the instruction starting with these low 16 bits is 16 bits long.
constexpr bool is_compressed(uint32_t raw) { return (raw & 3) != 3; }

}  // namespace nimbus::cpu::isa
