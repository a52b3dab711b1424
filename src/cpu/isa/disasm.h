// Disassembly of decoded instructions, driven by the operand strings of the table.
#pragma once

#include <cstdint>
#include <string>

#include "cpu/isa/decode.h"

namespace nimbus::cpu::isa {

// ABI names: "zero", "ra", ... and "ft0", ... for the FP registers.
const char* xreg_name(unsigned r);
const char* freg_name(unsigned r);

// "addi a0, a0, 1", "jal ra, 0x80000010", "unknown 0x0000" for an illegal encoding.
std::string disassemble(const Decoded& d, uint64_t pc);

}  // namespace nimbus::cpu::isa
