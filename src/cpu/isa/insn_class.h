// What each instruction is, for the engines: its class and whether the JIT compiles it,
// both read from the table's rows (instructions.inc), and the rules derived from them.
// Nothing here is a hand-written list of instructions: a new row brings its own answers.
#pragma once

#include <cstdint>
#include <iterator>

#include "cpu/isa/decode.h"

namespace nimbus::cpu::isa {

// The class column of the table (the names are the column's tokens).
enum class Class : uint8_t {
  RR,       // rd = f(rs1, rs2)  } integer, writes only x[rd] and cannot trap: an OP
  RI,       // rd = f(rs1, imm)  } body, and a no-op when rd = x0
  R1,       // rd = f(rs1)       }
  UP,       // rd = f(imm, pc): lui, auipc (same rules)
  LD,       // integer load: an OPM body (traps only through its slow path)
  ST,       // integer store: an OPM body
  BR,       // conditional branch: an OP body; a block goes on along its fall-through
  JAL,      // } jumps: OP bodies that set next_pc, and end a block
  JALR,     // }
  FENCE,    // an OP body with no effect here (every access is ordered on the host)
  FENCEI,   // an OP body; ends a block (blocks check their bytes on entry)
  CSR,      // OPX; ends a block (may change privilege, translation, interrupts, counters)
  SYS,      // OPX: ecall, ebreak, xRET, wfi, sfence.vma; ends a block
  AMO,      // OPX: LR/SC and AMOs
  FP,       // OPX: F and D, their loads and stores included
  ILLEGAL,  // Op::illegal (and Op::count): OPX, traps, ends a block
};

// The body kinds of interp_ops.inc (OP, OPM, OPX): how the block loop runs a body.
enum class Body : uint8_t { kOp, kMem, kX };

namespace table {
// The jit column's tokens.
inline constexpr bool yes = true;
inline constexpr bool no = false;
}  // namespace table

inline constexpr Class kClassOf[] = {
#define INSN(name, mnemonic, mask, match, fmt, ops, ext, cls, jit) Class::cls,
#include "cpu/isa/instructions.inc"
    Class::ILLEGAL,  // Op::illegal
    Class::ILLEGAL,  // Op::count (never decoded)
};
static_assert(std::size(kClassOf) == static_cast<unsigned>(Op::count) + 1);

inline constexpr bool kJitCompiled[] = {
#define INSN(name, mnemonic, mask, match, fmt, ops, ext, cls, jit) table::jit,
#include "cpu/isa/instructions.inc"
    false,
    false,
};
static_assert(std::size(kJitCompiled) == std::size(kClassOf));

constexpr Class class_of(Op op) { return kClassOf[static_cast<unsigned>(op)]; }

// The body kind each class must have in interp_ops.inc (checked there at compile time).
constexpr Body body_of(Class c) {
  switch (c) {
    case Class::LD:
    case Class::ST:
      return Body::kMem;
    case Class::CSR:
    case Class::SYS:
    case Class::AMO:
    case Class::FP:
    case Class::ILLEGAL:
      return Body::kX;
    default:
      return Body::kOp;
  }
}

// Instructions whose only effect is writing x[rd]: with rd = x0 they do nothing, and the
// block builder gives them a no-op handler (so the threaded loop never writes x[0] from
// them); the JIT emits nothing for them.
constexpr bool writes_only_rd(Op op) {
  const Class c = class_of(op);
  return c == Class::RR || c == Class::RI || c == Class::R1 || c == Class::UP;
}

// Instructions after which a block ends: jumps, and everything that may change privilege,
// translation, interrupt enables or the counters (CSR accesses), so the run loop can look
// at interrupts again and each block keeps one translation context. Conditional branches
// do not end blocks. The JIT's compiled code ends at the same instructions.
constexpr bool ends_block(Op op) {
  switch (class_of(op)) {
    case Class::JAL:
    case Class::JALR:
    case Class::FENCEI:
    case Class::CSR:
    case Class::SYS:
    case Class::ILLEGAL:
      return true;
    default:
      return false;
  }
}

// True if the JIT compiles the instruction (its row says jit = yes).
constexpr bool jit_compiled(Op op) { return kJitCompiled[static_cast<unsigned>(op)]; }

// The classes the JIT's compiler knows how to place in a block (register use, exits):
// a row in another class cannot say jit = yes.
constexpr bool jit_class(Class c) {
  switch (c) {
    case Class::RR:
    case Class::RI:
    case Class::R1:
    case Class::UP:
    case Class::LD:
    case Class::ST:
    case Class::BR:
    case Class::JAL:
    case Class::JALR:
    case Class::FENCE:
    case Class::FP:
      return true;
    default:
      return false;
  }
}

constexpr bool jit_rows_valid() {
  for (unsigned i = 0; i < std::size(kClassOf); i++) {
    if (kJitCompiled[i] && !jit_class(kClassOf[i])) return false;
  }
  return true;
}
static_assert(jit_rows_valid(), "a row says jit = yes for a class the JIT cannot compile");

}  // namespace nimbus::cpu::isa
